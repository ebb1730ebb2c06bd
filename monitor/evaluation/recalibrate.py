"""``run_calibration``: re-calibrate the estimates on a site's own labelled cases (``cmr-monitor calibrate``).

The site's predictions are paired with their ground truth, scored without a calibration, turned into
feature rows with their real Dice and HD (mm), and then:

- ``stack`` (the default for fewer than ``REFIT_VOLUMES`` volumes): a robust linear correction of the
  base (shipped) calibration's estimates with cross-conformal intervals (``fit_correction``);
- ``refit``: a calibration fitted from scratch on the site's rows (``fit_calibration``).

Both are cross-validated by patient against the base calibration on the same rows (the base never saw
them), and the new version is written with a report: ``calibration.skops`` (+ ``.sha256``),
``report.json`` and ``report.md``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monitor.evaluation.pairing import pair_cases
from monitor.evaluation.realized import record_realized_files
from monitor.io.calibration import dump_calibration
from monitor.io.nifti import Limits, load_mask
from monitor.qc.calibration.features import feature_rows, mask_features
from monitor.qc.calibration.figures import estimate_figures
from monitor.qc.calibration.fit import (
    LabelledRows,
    cross_predict,
    fit_calibration,
    fit_correction,
    group_folds,
)
from monitor.qc.calibration.model import Calibration
from monitor.qc.calibration.targets import Target
from monitor.qc.labels import ACDC, STRUCTURES, LabelMap, Structure
from monitor.qc.scores import compare_structures

if TYPE_CHECKING:
    from monitor.model.scorer import Scorer

__all__ = ["MODES", "REFIT_VOLUMES", "CalibrationRun", "labelled_rows", "run_calibration"]

log = logging.getLogger(__name__)

#: How a site calibration is built.
MODES = ("auto", "stack", "refit")
#: From this many labelled volumes ``auto`` refits instead of stacking.
REFIT_VOLUMES = 300
#: Fewest labelled volumes accepted.
MIN_VOLUMES = 12


@dataclass(frozen=True, kw_only=True)
class CalibrationRun:
    """What ``run_calibration`` wrote."""

    calibration: Calibration  #: the new calibration
    path: Path  #: its file
    sha256: str  #: the file's SHA-256
    report: dict[str, Any]  #: the figures written to ``report.json``


def labelled_rows(
    gt_dir: Path | str,
    pred_dirs: Mapping[str, Path | str],
    scorer: Scorer,
    *,
    label_map: LabelMap = ACDC,
    limits: Limits | None = None,
    batch_volumes: int = 8,
) -> tuple[LabelledRows, dict[str, dict[Structure, tuple[float, float]]]]:
    """Feature rows and real metrics of every paired prediction (structures present in the mask), and
    per prediction file its real (Dice, HD mm) of every structure.

    Raises: ValueError when no prediction pairs with a ground truth.
    """
    pairing = pair_cases(gt_dir, pred_dirs)
    if not pairing.pairs:
        raise ValueError(f"no prediction pairs with a ground truth under {gt_dir}")
    raw = copy.copy(scorer)  # the same loaded model, scoring without a calibration
    raw.calibration = None
    rows, structures, dsc, hd, groups, segmenters, cases = [], [], [], [], [], [], []
    realized: dict[str, dict[Structure, tuple[float, float]]] = {}
    pairs = list(pairing.pairs)
    for start in range(0, len(pairs), batch_volumes):
        chunk = pairs[start : start + batch_volumes]
        preds = [load_mask(p.pred_path, label_map, limits) for p in chunk]
        gts = [load_mask(p.gt_path, label_map, limits) for p in chunk]
        for pair, pred, gt, result in zip(chunk, preds, gts, raw.score_batch(preds), strict=True):
            if pred.shape != gt.shape:
                log.warning("skipped %s: prediction %s vs ground truth %s", pair.case, pred.shape, gt.shape)
                continue
            features = feature_rows(result.score, mask_features(pred.labels, result.pgt, pred.spacing_mm))
            real = compare_structures(pred.labels, gt.labels, gt.spacing_mm)
            realized[str(pair.pred_path)] = {t.structure: (t.dice, t.hd_mm) for t in real}
            for item, truth in zip(result.score.structures, real, strict=True):
                if item.mask_voxels == 0:
                    continue
                rows.append(features[item.structure])
                structures.append(item.structure)
                dsc.append(truth.dice)
                hd.append(truth.hd_mm)
                groups.append(pair.patient)
                segmenters.append(pair.segmenter)
                cases.append(f"{pair.segmenter}/{pair.case}")
    return LabelledRows(
        rows=rows,
        structures=structures,
        dsc=np.array(dsc, dtype=float),
        hd_mm=np.array(hd, dtype=float),
        groups=np.array(groups),
        segmenters=np.array(segmenters),
        extra={"volume": np.array(cases)},
    ), realized


def _figures(data: LabelledRows, predicted: Mapping[Target, tuple[np.ndarray, ...]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for s in STRUCTURES:
        sel = np.array([x == s for x in data.structures])
        out[s.value] = {
            "edsc": estimate_figures(data.dsc[sel], *(v[sel] for v in predicted[Target.DSC])).as_dict(),
            "ehd_mm": estimate_figures(data.hd_mm[sel], *(v[sel] for v in predicted[Target.HD])).as_dict(),
        }
    return out


def _mean_mae(figures: Mapping[str, Any], key: str) -> float:
    values = [f[key]["mae"] for f in figures.values() if math.isfinite(f[key]["mae"])]
    return float(np.mean(values)) if values else math.nan


def run_calibration(
    gt_dir: Path | str,
    pred_dirs: Mapping[str, Path | str],
    scorer: Scorer,
    out_dir: Path | str,
    *,
    base: Calibration,
    mode: str = "auto",
    version: str | None = None,
    folds: int = 5,
    label_map: LabelMap = ACDC,
    limits: Limits | None = None,
    database_url: str | None = None,
) -> CalibrationRun:
    """Re-calibrate on labelled cases and write the new calibration with its cross-validated report.

    Args:
        gt_dir, pred_dirs: as for ``pair_cases``.
        scorer: a loaded scorer (its own calibration is not used).
        out_dir: where ``calibration.skops``, ``report.json`` and ``report.md`` go.
        base: the calibration to stack on and compare with (the shipped one).
        mode: ``auto``, ``stack`` or ``refit``.
        version: the new version string; None = ``<base>+site-<UTC time>``.
        folds: cross-validation folds by patient.
        database_url: when given, the real metrics of every labelled prediction already scored in
            that database (found by content hash) are recorded there (``realized_metrics``).
    Raises: ValueError for an unknown mode, fewer than ``MIN_VOLUMES`` labelled volumes or too few
        patients.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    data, realized = labelled_rows(gt_dir, pred_dirs, scorer, label_map=label_map, limits=limits)
    n_volumes = len(set(data.extra["volume"].tolist()))
    if n_volumes < MIN_VOLUMES:
        raise ValueError(f"need at least {MIN_VOLUMES} labelled volumes, got {n_volumes}")
    chosen = mode if mode != "auto" else ("refit" if n_volumes >= REFIT_VOLUMES else "stack")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M")
    version = version or f"{base.version}+site-{stamp}"[:64]

    def fit(rows: LabelledRows) -> Calibration:
        if chosen == "refit":
            return fit_calibration(rows, version=version, feature_names=base.feature_names)
        return fit_correction(base, rows, version=version)

    new_cv = cross_predict(data, fit, group_folds(data.groups, folds))
    base_pred = base.predict(base.matrix(data.rows, data.structures))
    figures = {"base": _figures(data, base_pred), "site_cv": _figures(data, new_cv)}
    calibration = fit(data)
    out = Path(out_dir)
    path = out / "calibration.skops"
    digest = dump_calibration(calibration, path)
    report = {
        "version": calibration.version,
        "base_version": base.version,
        "mode": chosen,
        "volumes": n_volumes,
        "rows": len(data),
        "patients": len(set(data.groups.tolist())),
        "segmenters": sorted(set(data.segmenters.tolist())),
        "folds": folds,
        "sha256": digest,
        "figures": figures,
        "mae_mean": {
            "base": {
                "edsc": _mean_mae(figures["base"], "edsc"),
                "ehd_mm": _mean_mae(figures["base"], "ehd_mm"),
            },
            "site_cv": {
                "edsc": _mean_mae(figures["site_cv"], "edsc"),
                "ehd_mm": _mean_mae(figures["site_cv"], "ehd_mm"),
            },
        },
    }
    if database_url is not None:
        recorded = record_realized_files(database_url, realized, source="calibrate")
        report["realized_recorded"] = len(recorded.recorded)
    (out / "report.json").write_text(json.dumps(report, indent=1, allow_nan=True))
    (out / "report.md").write_text(_markdown(report))
    return CalibrationRun(calibration=calibration, path=path, sha256=digest, report=report)


def _markdown(report: Mapping[str, Any]) -> str:
    def cell(f: Mapping[str, float], digits: int) -> str:
        return f"r {f['r']:.3f}, MAE {f['mae']:.{digits}f}, coverage {f['coverage']:.2f}"

    lines = [
        f"# Calibration {report['version']}",
        "",
        f"Built by `{report['mode']}` on {report['volumes']} labelled volumes ({report['rows']} structures, "
        f"{report['patients']} patients; segmenters {', '.join(report['segmenters'])}), on top of "
        f"`{report['base_version']}`. SHA-256 `{report['sha256']}`.",
        "",
        f"Out of fold by patient ({report['folds']} folds) against the base calibration on the same cases "
        "(the base never saw them):",
        "",
        "| structure | eDSC base | eDSC site (CV) | eHD base (mm) | eHD site (CV, mm) |",
        "| --- | --- | --- | --- | --- |",
    ]
    base, site = report["figures"]["base"], report["figures"]["site_cv"]
    for s in base:
        lines.append(
            f"| {s} | {cell(base[s]['edsc'], 3)} | {cell(site[s]['edsc'], 3)} | {cell(base[s]['ehd_mm'], 1)} "
            f"| {cell(site[s]['ehd_mm'], 1)} |"
        )
    return "\n".join(lines) + "\n"
