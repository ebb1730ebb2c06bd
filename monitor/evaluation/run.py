"""``run_evaluation``: pair, score, summarise and write the report, the whole ``cmr-monitor evaluate``."""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitor import __version__
from monitor.evaluation.cases import evaluate_cases
from monitor.evaluation.clinical import ClinicalVolume, clinical_table, summarise_clinical, write_clinical
from monitor.evaluation.estimates import estimate_summary
from monitor.evaluation.families import FamilySet, family_table
from monitor.evaluation.pairing import SkippedCase, pair_cases
from monitor.evaluation.realized import realized_from_cases, record_realized_files
from monitor.evaluation.refined import plain_vs_refined
from monitor.evaluation.report import write_cases, write_report
from monitor.evaluation.statistics import FAILURE_DICE, FAILURE_HD_MM, summarise
from monitor.io.nifti import Limits
from monitor.qc.clinical import ClinicalCalibration, ClinicalPolicy
from monitor.qc.labels import ACDC, LabelMap

if TYPE_CHECKING:
    from monitor.model.scorer import Scorer

__all__ = ["run_evaluation"]

log = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    import scipy

    versions = {
        "cmr_monitor": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "pandas": pd.__version__,
    }
    for module in ("torch", "matplotlib"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = "not installed"
    return versions


def _skipped_record(item: SkippedCase) -> dict[str, str]:
    return {
        "segmenter": item.segmenter,
        "case": item.case,
        "path": str(item.path),
        "reason": item.reason,
        "detail": item.detail,
    }


def run_evaluation(
    gt_dir: Path | str,
    pred_dirs: Mapping[str, Path | str],
    scorer: Scorer,
    out_dir: Path | str,
    *,
    label_map: LabelMap = ACDC,
    batch_volumes: int = 8,
    include_ground_truth: bool = True,
    failure_dice: float = FAILURE_DICE,
    failure_hd_mm: float = FAILURE_HD_MM,
    plots: bool = True,
    limits: Limits | None = None,
    families: Sequence[FamilySet] = (),
    images: bool = True,
    clinical_calibration: ClinicalCalibration | None = None,
    clinical_policy: ClinicalPolicy | None = None,
    database_url: str | None = None,
) -> dict[str, Any]:
    """Pair, score, summarise and write the report: the whole ``cmr-monitor evaluate``.

    Arguments as in ``pair_cases``, ``evaluate_cases``, ``summarise`` and ``write_report``; each set of
    ``families`` (``read_manifest``) is evaluated as one more segmenter, named after the set, and
    summarised in the family table; when real segmenters are given too, the segmenter figures
    (correlations, rankings, flags, risk-coverage) are theirs alone. ``cases.csv`` (every row) is written
    as soon as the volumes are scored, before anything is summarised. ``clinical_policy`` (None: no
    clinical section) and ``clinical_calibration`` give the per-patient indices
    (``monitor.evaluation.clinical``: ``patients.csv``, ``clinical_bland_altman.png`` and the
    ``clinical`` section of the summary), of the real segmenters only. With ``database_url``, the real
    Dice and HD (mm) of every evaluated prediction that the database holds as scored (by content hash)
    are recorded there (source ``evaluate``; ``monitor.evaluation.realized``).

    Returns: the summary written to ``summary.json`` (nan as float nan), with ``inputs``, ``pairing``
        (``unpaired``, ``skipped``, ``missing_predictions`` per segmenter), ``checkpoint``,
        ``checkpoint_sha256``, ``checkpoint_meta``, ``versions``, ``images`` (volumes scored with
        their MR image), the plain-vs-refined figures (``plain_vs_refined``: ``correlation_refined``,
        ``flags_plain``, ``volume_failure``) and, with ``families``, ``families`` (``family_table``),
        with ``database_url``, ``realized`` (``recorded``, ``not_in_database``: prediction files)
        added.
    Raises: FileNotFoundError / ValueError from ``pair_cases``; ValueError when no prediction pairs
        with a ground truth or a family set's name is also a segmenter's.
    """
    pred_dirs = dict(pred_dirs)
    for item in families:
        if item.name in pred_dirs:
            raise ValueError(f"failure set {item.name!r} has the name of a segmenter")
        pred_dirs[item.name] = item.folder
    pairing = pair_cases(gt_dir, pred_dirs)
    if not pairing.pairs:
        raise ValueError(
            f"no prediction pairs with a ground truth under {gt_dir} "
            f"({len(pairing.unpaired)} predictions without ground truth)"
        )
    for item in pairing.unpaired:
        log.warning("prediction of %s without ground truth: %s", item.segmenter, item.path.name)
    clinical: list[ClinicalVolume] | None = [] if clinical_policy is not None else None
    cases, skipped = evaluate_cases(
        pairing.pairs,
        scorer,
        label_map=label_map,
        batch_volumes=batch_volumes,
        include_ground_truth=include_ground_truth,
        limits=limits,
        images=images,
        clinical=clinical,
    )
    write_cases(cases, out_dir)
    realized = (
        record_realized_files(database_url, realized_from_cases(cases), source="evaluate")
        if database_url is not None
        else None
    )
    limits_kw = {"failure_dice": failure_dice, "failure_hd_mm": failure_hd_mm}
    # With real segmenters beside a failure set, the segmenter figures are theirs alone: the edits of
    # the ground truth are summarised in the family table, not pooled into the correlations and flags.
    set_names = {item.name for item in families}
    real = set(pred_dirs) - set_names
    segmenters = cases[~cases["segmenter"].isin(set_names)] if real else cases
    summary = summarise(segmenters, **limits_kw)
    summary.update(plain_vs_refined(segmenters, **limits_kw))
    if families:
        summary["families"] = family_table(cases, families, **limits_kw)
    volumes = cases.groupby(["segmenter", "case"], sort=False)["image_used"].first()
    summary["images"] = {
        "paired": bool(images),
        "volumes_with_image": int(volumes.sum()),
        "volumes": len(volumes),
    }
    summary["estimates"] = estimate_summary(segmenters)
    patients = None
    if clinical is not None and clinical_policy is not None:
        patients = clinical_table(clinical, calibration=clinical_calibration, policy=clinical_policy)
        summary["clinical"] = summarise_clinical(
            patients,
            limit_pct=clinical_policy.lvef_error_limit_pct,
            segmenters=sorted(real) if real else list(pred_dirs),
        )
        summary["clinical"]["calibration_version"] = (
            clinical_calibration.version if clinical_calibration is not None else None
        )
    missing_counts = {name: 0 for name in pred_dirs}
    for item in pairing.missing:
        missing_counts[item.segmenter] += 1
    meta = scorer.meta
    summary.update(
        {
            "inputs": {
                "gt_dir": str(gt_dir),
                "pred_dirs": {k: str(v) for k, v in pred_dirs.items()},
                "label_map": label_map.name,
                "families": [item.name for item in families],
            },
            "pairing": {
                "n_pairs": len(pairing.pairs),
                "unpaired": [_skipped_record(s) for s in pairing.unpaired],
                "skipped": [_skipped_record(s) for s in skipped],
                "missing_predictions": missing_counts,
            },
            "checkpoint": str(scorer.checkpoint_path),
            "checkpoint_sha256": scorer.checkpoint_sha256,
            "checkpoint_meta": {
                "epochs": meta.epochs,
                "best_epoch": meta.best_epoch,
                "val_dice": dict(meta.val_dice),
                "data_fingerprint": meta.data_fingerprint,
            },
            "policy": {
                "suspicious_dice": scorer.policy.suspicious_dice,
                "suspicious_hd_mm": scorer.policy.suspicious_hd_mm,
                "basis": scorer.policy.basis if scorer.calibration is not None else "paper",
                "fail_probability": scorer.policy.fail_probability,
            },
            "calibration_version": scorer.calibration.version if scorer.calibration is not None else None,
            "versions": _versions(),
        }
    )
    if realized is not None:
        summary["realized"] = {
            "recorded": len(realized.recorded),
            "not_in_database": len(realized.not_in_database),
        }
    write_report(cases, summary, out_dir, plots=plots)
    if patients is not None:
        write_clinical(patients, out_dir, plots=plots)
    return summary
