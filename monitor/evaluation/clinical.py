"""Clinical indices on labelled data: the real error of each index (prediction minus ground truth)
beside the monitor's estimated error, per segmenter.

``evaluate_cases`` hands over each scored volume's ``VolumeIndices`` (prediction with its pGT) and the
ground truth's (``ClinicalVolume``); ``clinical_table`` pairs ED and ES per segmenter and patient and
assesses them as the daemon does; ``summarise_clinical`` gives, per index, the Pearson r of real vs
estimated absolute error, the MAE of the estimate, the 90 % interval's coverage, and the LVEF flag's
precision and recall against a real |LVEF error| above the limit (5 points by default).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.evaluation.pairing import GROUND_TRUTH
from monitor.evaluation.statistics import correlate, precision_recall
from monitor.qc.clinical import (
    INDEX_COLUMNS,
    INDICES,
    ClinicalCalibration,
    ClinicalPolicy,
    ClinicalReason,
    VolumeIndices,
    assess_patient,
    clinical_values,
    pair_phases,
    patient_row,
)

__all__ = ["ClinicalVolume", "clinical_table", "summarise_clinical", "write_clinical"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalVolume:
    """One evaluated volume's clinical volumes, and those of its ground truth."""

    segmenter: str
    patient: str  #: the case key
    phase: str | None  #: ``ED``, ``ES`` or another frame
    pred: VolumeIndices  #: the prediction (mask) with its pGT
    gt: VolumeIndices  #: the ground truth (its own volumes in the mask fields)


def clinical_table(
    volumes: Iterable[ClinicalVolume], *, calibration: ClinicalCalibration | None, policy: ClinicalPolicy
) -> pd.DataFrame:
    """One row per segmenter and patient with ED and ES: ``patient_row`` columns, then ``gt_<c>`` (the
    ground truth's index) and ``real_error_<c>`` (prediction minus ground truth) per index column ``c``.
    """
    items = list(volumes)
    rows: list[dict[str, Any]] = []
    for segmenter in dict.fromkeys(v.segmenter for v in items):
        mine = [v for v in items if v.segmenter == segmenter]
        for pair in pair_phases((v.patient, v.phase, v) for v in mine):
            if pair.ed is None or pair.es is None:
                continue
            assessment = assess_patient(
                pair.__class__(case_key=pair.case_key, ed=pair.ed.pred, es=pair.es.pred),
                calibration=calibration,
                policy=policy,
            )
            truth = clinical_values(pair.ed.gt, pair.es.gt)
            row: dict[str, Any] = {"segmenter": segmenter, **patient_row(assessment)}
            for index in INDICES:
                column = INDEX_COLUMNS[index]
                row[f"gt_{column}"] = truth.get(index)
                row[f"real_error_{column}"] = row[column] - truth.get(index)
            rows.append(row)
    return pd.DataFrame(rows)


def _index_figures(table: pd.DataFrame, index: str) -> dict[str, float | int]:
    column = INDEX_COLUMNS[index]
    real = np.abs(table[f"real_error_{column}"].to_numpy(dtype=float))
    est = table[f"est_error_{column}"].to_numpy(dtype=float)
    lo = table[f"est_error_{column}_lo"].to_numpy(dtype=float)
    hi = table[f"est_error_{column}_hi"].to_numpy(dtype=float)
    pseudo = np.abs(table[f"pseudo_error_{column}"].to_numpy(dtype=float))
    agreement = correlate(real, est)
    covered = np.isfinite(real) & np.isfinite(lo) & np.isfinite(hi)
    return {
        "pearson_abs_error": agreement["pearson"],
        "spearman_abs_error": agreement["spearman"],
        "mae": agreement["mae"],
        "coverage": float(np.mean((real[covered] >= lo[covered]) & (real[covered] <= hi[covered])))
        if covered.any()
        else math.nan,
        "median_interval_width": float(np.median(hi[covered] - lo[covered])) if covered.any() else math.nan,
        "pearson_abs_pseudo_error": correlate(real, pseudo)["pearson"],
        "mean_abs_real_error": float(np.nanmean(real)) if np.isfinite(real).any() else math.nan,
        "n": agreement["n"],
    }


def _flag_figures(table: pd.DataFrame, limit_pct: float) -> dict[str, float | int]:
    real = np.abs(table["real_error_lv_ef_pct"].to_numpy(dtype=float))
    keep = np.isfinite(real)
    flagged = table["reasons"].fillna("").str.contains(str(ClinicalReason.LVEF_ERROR_HIGH)).to_numpy()
    quality = precision_recall(flagged[keep], real[keep] > limit_pct)
    return {
        "flag_precision": quality["precision"],
        "flag_recall": quality["recall"],
        **{f"flag_{k}": v for k, v in quality.items() if k not in ("precision", "recall")},
    }


def _figures(table: pd.DataFrame, limit_pct: float) -> dict[str, Any]:
    out: dict[str, Any] = {index: _index_figures(table, index) for index in INDICES}
    out["lv_ef"].update(_flag_figures(table, limit_pct))
    out["n_patients"] = len(table)
    out["n_suspicious"] = int((table["flag"] == "suspicious").sum())
    return out


def summarise_clinical(
    table: pd.DataFrame, *, limit_pct: float = 5.0, segmenters: Sequence[str] | None = None
) -> dict[str, Any]:
    """The ``clinical`` section of ``summary.json``.

    Keys: ``<index>.pearson_abs_error``, ``.spearman_abs_error``, ``.mae``, ``.coverage``,
    ``.median_interval_width``, ``.pearson_abs_pseudo_error`` (the raw pseudo error, for comparison),
    ``.mean_abs_real_error``, ``.n``; ``lv_ef.flag_precision`` and ``lv_ef.flag_recall`` (flag vs real
    |LVEF error| > ``limit_pct``), pooled over the real segmenters (the ground truth scored as a
    segmenter is left out: its real error is 0), then the same per segmenter under ``by_segmenter``;
    ``ground_truth_flag_rate``: share of ground-truth patients flagged.
    """
    if table.empty:
        return {"n_patients": 0}
    names = (
        list(segmenters)
        if segmenters is not None
        else [s for s in table["segmenter"].unique() if s != GROUND_TRUTH]
    )
    real = table[table["segmenter"].isin(names)]
    summary = _figures(real, limit_pct) if len(real) else {"n_patients": 0}
    summary["by_segmenter"] = {name: _figures(table[table["segmenter"] == name], limit_pct) for name in names}
    truth = table[table["segmenter"] == GROUND_TRUTH]
    summary["ground_truth_flag_rate"] = (
        float((truth["flag"] == "suspicious").mean()) if len(truth) else math.nan
    )
    summary["limit_pct"] = limit_pct
    return summary


def _bland_altman(table: pd.DataFrame, path: Path) -> None:
    """LVEF Bland-Altman (prediction vs ground truth) and estimated vs real |LVEF error|, per segmenter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 5))
    for name, rows in table.groupby("segmenter", sort=False):
        if name == GROUND_TRUTH:
            continue
        pred, truth = rows["lv_ef_pct"].to_numpy(float), rows["gt_lv_ef_pct"].to_numpy(float)
        left.scatter((pred + truth) / 2, pred - truth, s=10, label=str(name), alpha=0.7)
        right.scatter(np.abs(pred - truth), rows["est_error_lv_ef_pct"].to_numpy(float), s=10, alpha=0.7)
    diff = (table["lv_ef_pct"] - table["gt_lv_ef_pct"])[table["segmenter"] != GROUND_TRUTH].to_numpy(float)
    diff = diff[np.isfinite(diff)]
    if diff.size:
        bias, spread = float(np.mean(diff)), 1.96 * float(np.std(diff))
        for y, style in ((bias, "-"), (bias - spread, "--"), (bias + spread, "--")):
            left.axhline(y, color="grey", linestyle=style, linewidth=1)
    left.set(xlabel="mean of predicted and true LVEF (%)", ylabel="predicted - true LVEF (points)")
    left.set_title("LVEF: Bland-Altman")
    left.legend(fontsize=7)
    top = float(np.nanmax(np.abs(diff))) if diff.size else 1.0
    right.plot([0, top], [0, top], color="grey", linewidth=1)
    right.set(xlabel="real |LVEF error| (points)", ylabel="estimated |LVEF error| (points)")
    right.set_title("estimated vs real error")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_clinical(table: pd.DataFrame, out_dir: Path | str, *, plots: bool = True) -> dict[str, Path]:
    """Write ``patients.csv`` and (with matplotlib) ``clinical_bland_altman.png`` to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {"patients": out / "patients.csv"}
    table.to_csv(written["patients"], index=False)
    if plots and not table.empty:
        try:
            _bland_altman(table, out / "clinical_bland_altman.png")
            written["bland_altman"] = out / "clinical_bland_altman.png"
        except ImportError:
            pass
    return written
