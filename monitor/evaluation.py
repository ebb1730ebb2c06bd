"""Pseudo vs real metrics: pairing, per-case table, correlations, rankings, flag quality, plots, report.

Given ground-truth masks and the predictions of one or more segmenters, this module computes for every
predicted volume and structure the real Dice and Hausdorff distance (mm) against the ground truth
(``monitor.metrics``: Dice 0 when exactly one mask is empty, nan when both are; HD nan when either is
empty) and the pseudo ones from the ``Scorer`` (pDSC, pHD in mm, flag), then summarises how well the
pseudo metrics stand in for the real ones:

- correlation of real vs pseudo (Pearson, Spearman, mean absolute error) per structure and phase;
- ranking of the segmenters by mean real and mean pseudo metric, with Spearman's r_s between the two
  rankings (the paper's Table 1);
- flag quality: ``erroneous`` vs structures really missing from the prediction, ``suspicious or
  erroneous`` vs real failures, false alarms on the ground-truth masks themselves (scored as the extra
  pseudo-segmenter ``ground_truth``);
- risk-coverage curves with pDSC as the confidence and their area (AURC).

Pure functions take and return pandas/numpy objects and plain dicts; only ``pair_cases`` (reads folder
listings), ``evaluate_cases`` (reads masks) and ``write_report`` (writes files) touch the disk.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from scipy import stats

from monitor import __version__
from monitor.errors import InvalidMask
from monitor.labels import ACDC, CANONICAL_CHANNEL, STRUCTURES, LabelMap
from monitor.metrics import dice, hausdorff_mm
from monitor.nifti import Limits, MaskVolume, load_mask
from monitor.records import VolumeScore

if TYPE_CHECKING:
    from monitor.scoring import Scorer

__all__ = [
    "CASE_COLUMNS",
    "GROUND_TRUTH",
    "METRICS",
    "PHASES",
    "CasePair",
    "Pairing",
    "SkippedCase",
    "aurc",
    "correlate",
    "correlation_table",
    "evaluate_cases",
    "failures",
    "false_alarms",
    "flag_quality",
    "pair_cases",
    "precision_recall",
    "rank_segmenters",
    "risk_coverage",
    "risk_coverage_table",
    "run_evaluation",
    "summarise",
    "write_report",
    "zero_filled",
]

log = logging.getLogger(__name__)

#: Name of the pseudo-segmenter whose "predictions" are the ground-truth masks themselves.
GROUND_TRUTH = "ground_truth"
#: Phase keys of the summary; "all" pools every volume (including those of unknown phase).
PHASES: tuple[str, ...] = ("ED", "ES", "all")
#: Summary metric key -> (real column, pseudo column, True when higher is better).
METRICS: dict[str, tuple[str, str, bool]] = {
    "dice": ("dice", "pdsc", True),
    "hd_mm": ("hd_mm", "phd_mm", False),
}
#: Columns of the cases table (one row per volume and structure), in order.
CASE_COLUMNS: tuple[str, ...] = (
    "segmenter",
    "patient",
    "phase",
    "structure",
    "dice",
    "hd_mm",
    "pdsc",
    "phd_mm",
    "flag",
    "reasons",
    "missing",
    "case",
    "volume_flag",
    "mask_voxels",
    "gt_voxels",
    "pgt_voxels",
    "pred_file",
    "gt_file",
)
#: Real failure of a structure: Dice below this ...
FAILURE_DICE = 0.5
#: ... or Hausdorff distance above this (mm).
FAILURE_HD_MM = 50.0

_NIFTI_RE = re.compile(r"\.nii(\.gz)?$", re.IGNORECASE)
_INFO_RE = re.compile(r"^\s*(ED|ES)\s*:\s*(\d+)\s*$", re.MULTILINE | re.IGNORECASE)
_FRAME_RE = re.compile(r"^(?P<patient>.+)_frame(?P<frame>\d+)$")
_PHASE_RE = re.compile(r"^(?P<patient>.+)_(?P<phase>ED|ES)$", re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# Pairing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CasePair:
    """One predicted volume and its ground truth."""

    segmenter: str  #: segmenter name (``ground_truth`` for the GT scored as a prediction)
    case: str  #: case key of the ground truth: ``patient001_ED`` in ACDC layout, else the file name stem
    patient: str  #: patient identifier, e.g. ``patient001``
    phase: str  #: ``ED``, ``ES`` or "" when unknown
    pred_path: Path  #: predicted mask
    gt_path: Path  #: ground-truth mask


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedCase:
    """A volume that was not evaluated, and why."""

    segmenter: str  #: segmenter name
    case: str  #: case key (file name without extension)
    path: Path  #: the file concerned (prediction, or ground truth for ``no_prediction``)
    reason: str  #: stable code: ``no_ground_truth``, ``no_prediction``, ``geometry_mismatch`` or an
    #: ``InvalidMask`` reason such as ``corrupt``
    detail: str = ""  #: one sentence


@dataclass(frozen=True, slots=True, kw_only=True)
class Pairing:
    """Result of ``pair_cases``."""

    pairs: tuple[CasePair, ...]  #: predictions with a ground truth, by segmenter then case
    unpaired: tuple[SkippedCase, ...]  #: predictions without a ground truth (reason ``no_ground_truth``)
    missing: tuple[SkippedCase, ...]  #: ground truths a segmenter has no prediction for (``no_prediction``)


@dataclass(frozen=True, slots=True)
class _GtEntry:
    case: str  # preferred case key: patient_phase when the phase is known
    patient: str
    phase: str
    path: Path


def _stem(path: Path) -> str:
    return _NIFTI_RE.sub("", path.name)


def _nifti_files(root: Path) -> list[Path]:
    """NIfTI files under ``root`` (recursive, sorted), skipping hidden files and folders."""
    found = [
        p
        for p in root.rglob("*")
        if _NIFTI_RE.search(p.name)
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found)


def _info_frames(folder: Path) -> dict[str, int]:
    """ED/ES frame numbers from ``folder/Info.cfg`` ({} when absent)."""
    info = folder / "Info.cfg"
    if not info.is_file():
        return {}
    return {k.upper(): int(v) for k, v in _INFO_RE.findall(info.read_text(errors="replace"))}


def _split_phase(base: str) -> tuple[str, str]:
    match = _PHASE_RE.match(base)
    return (match["patient"], match["phase"].upper()) if match else (base, "")


def _index_ground_truth(gt_dir: Path) -> dict[str, _GtEntry]:
    """Case key -> ground truth.

    When any ``*_gt.nii(.gz)`` exists, only those files are ground truth (the images beside them are
    ignored) and each is reachable as ``X`` for ``X_gt``; an ACDC ``patientNNN_frameFF_gt`` whose frame
    ``Info.cfg`` names as ED or ES is also reachable as ``patientNNN_ED`` / ``patientNNN_ES``. Otherwise
    every NIfTI file ``X`` is the ground truth of case ``X``.
    """
    files = _nifti_files(gt_dir)
    gt_files = [p for p in files if _stem(p).endswith("_gt")]
    index: dict[str, _GtEntry] = {}

    def add(key: str, entry: _GtEntry) -> None:
        if key in index and index[key].path != entry.path:
            raise ValueError(f"ambiguous ground truth for case {key!r}: {index[key].path} and {entry.path}")
        index[key] = entry

    for path in gt_files or files:
        base = _stem(path).removesuffix("_gt") if gt_files else _stem(path)
        frame_match = _FRAME_RE.match(base)
        frames = _info_frames(path.parent) if frame_match else {}
        phase = next((ph for ph, fr in frames.items() if frame_match and fr == int(frame_match["frame"])), "")
        if phase and frame_match:
            case = f"{frame_match['patient']}_{phase}"
            entry = _GtEntry(case=case, patient=frame_match["patient"], phase=phase, path=path)
            add(case, entry)
        else:
            patient, phase = _split_phase(base)
            entry = _GtEntry(case=base, patient=patient, phase=phase, path=path)
        add(base, entry)
    return index


def pair_cases(gt_dir: Path | str, pred_dirs: Mapping[str, Path | str]) -> Pairing:
    """Pair each segmenter's predicted masks with their ground truth, by file name.

    Ground truth in ACDC layout (``patientNNN/patientNNN_frameFF_gt.nii.gz`` + ``Info.cfg``) pairs with
    predictions ``patientNNN_ED.nii.gz`` / ``patientNNN_ES.nii.gz`` (or ``patientNNN_frameFF.nii.gz``);
    a plain folder pairs ``X.nii.gz`` or ``X_gt.nii.gz`` with the prediction ``X.nii.gz``. Prediction
    folders are searched recursively; hidden files are ignored.

    Args:
        gt_dir: ground-truth folder.
        pred_dirs: segmenter name -> prediction folder.
    Returns: a ``Pairing``; predictions without ground truth are in ``unpaired``, ground truths a
        segmenter did not predict are in ``missing`` (nothing is dropped silently).
    Raises: FileNotFoundError for a missing folder or a ground-truth folder without NIfTI files;
        ValueError for a reserved or empty segmenter name, two ground truths or two predictions of one
        segmenter claiming the same case.
    """
    gt_root = Path(gt_dir)
    if not gt_root.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {gt_root}")
    index = _index_ground_truth(gt_root)
    if not index:
        raise FileNotFoundError(f"no ground-truth masks (*.nii, *.nii.gz) under {gt_root}")
    pairs: list[CasePair] = []
    unpaired: list[SkippedCase] = []
    missing: list[SkippedCase] = []
    for name, folder in pred_dirs.items():
        if not name or name == GROUND_TRUTH:
            raise ValueError(f"segmenter name must be non-empty and not {GROUND_TRUTH!r}, got {name!r}")
        root = Path(folder)
        if not root.is_dir():
            raise FileNotFoundError(f"prediction folder of {name!r} not found: {root}")
        seen: dict[str, Path] = {}
        used: set[Path] = set()
        for path in _nifti_files(root):
            case = _stem(path)
            if case in seen:
                raise ValueError(f"two predictions of {name!r} for case {case!r}: {seen[case]} and {path}")
            seen[case] = path
            entry = index.get(case)
            if entry is None:
                unpaired.append(
                    SkippedCase(
                        segmenter=name,
                        case=case,
                        path=path,
                        reason="no_ground_truth",
                        detail=f"no ground truth named {case}.nii.gz, {case}_gt.nii.gz or in ACDC layout",
                    )
                )
                continue
            if entry.path in used:
                raise ValueError(f"two predictions of {name!r} pair with the same ground truth {entry.path}")
            used.add(entry.path)
            pairs.append(
                CasePair(
                    segmenter=name,
                    case=entry.case,
                    patient=entry.patient,
                    phase=entry.phase,
                    pred_path=path,
                    gt_path=entry.path,
                )
            )
        entries = {e.path: e for e in index.values()}
        for path in sorted(set(entries) - used):
            missing.append(
                SkippedCase(
                    segmenter=name,
                    case=entries[path].case,
                    path=path,
                    reason="no_prediction",
                    detail=f"{name} has no prediction for this ground truth",
                )
            )
    return Pairing(pairs=tuple(pairs), unpaired=tuple(unpaired), missing=tuple(missing))


# --------------------------------------------------------------------------------------------------
# Cases table
# --------------------------------------------------------------------------------------------------


def _ground_truth_pairs(pairs: Sequence[CasePair]) -> list[CasePair]:
    """Each distinct ground truth of ``pairs`` as a prediction of the ``ground_truth`` pseudo-segmenter."""
    seen: dict[Path, CasePair] = {}
    for pair in pairs:
        if pair.gt_path not in seen:
            seen[pair.gt_path] = CasePair(
                segmenter=GROUND_TRUTH,
                case=pair.case,
                patient=pair.patient,
                phase=pair.phase,
                pred_path=pair.gt_path,
                gt_path=pair.gt_path,
            )
    return sorted(seen.values(), key=lambda p: (p.patient, p.phase, p.case))


def _load_pair(
    pair: CasePair, label_map: LabelMap, limits: Limits | None
) -> tuple[MaskVolume, MaskVolume] | SkippedCase:
    try:
        pred = load_mask(pair.pred_path, label_map, limits)
        gt = pred if pair.gt_path == pair.pred_path else load_mask(pair.gt_path, label_map, limits)
    except InvalidMask as exc:
        path = exc.path or pair.pred_path
        return SkippedCase(
            segmenter=pair.segmenter, case=pair.case, path=path, reason=exc.reason, detail=exc.detail
        )
    if pred.shape != gt.shape or not np.allclose(pred.spacing_mm, gt.spacing_mm, rtol=1e-3):
        return SkippedCase(
            segmenter=pair.segmenter,
            case=pair.case,
            path=pair.pred_path,
            reason="geometry_mismatch",
            detail=f"prediction {pred.shape} at {pred.spacing_mm} mm vs ground truth {gt.shape} "
            f"at {gt.spacing_mm} mm",
        )
    return pred, gt


def evaluate_cases(
    pairs: Sequence[CasePair],
    scorer: Scorer,
    *,
    label_map: LabelMap = ACDC,
    batch_volumes: int = 8,
    include_ground_truth: bool = True,
    limits: Limits | None = None,
) -> tuple[pd.DataFrame, list[SkippedCase]]:
    """Real and pseudo metrics of every paired volume, one row per volume and structure.

    Each segmenter's volumes are scored ``batch_volumes`` at a time. Real Dice and HD (mm) use
    ``monitor.metrics`` at the ground truth's voxel spacing.

    Args:
        pairs: from ``pair_cases``.
        scorer: a loaded ``Scorer``.
        label_map: label values of both predictions and ground truth.
        batch_volumes: volumes per ``score_batch`` call.
        include_ground_truth: also score each ground truth as the pseudo-segmenter ``ground_truth``
            (its real Dice is 1 and HD 0; used for the false-alarm rate).
        limits: size limits for loading; ``Limits()`` when None.
    Returns: (cases table with ``CASE_COLUMNS``, volumes skipped because a file was unreadable or the
        geometries differ).
    Raises: ValueError if ``batch_volumes`` < 1.
    """
    if batch_volumes < 1:
        raise ValueError(f"batch_volumes must be at least 1, got {batch_volumes}")
    work = list(pairs) + (_ground_truth_pairs(pairs) if include_ground_truth else [])
    order = list(dict.fromkeys(p.segmenter for p in work))
    rows: list[dict[str, Any]] = []
    skipped: list[SkippedCase] = []
    for name in order:
        mine = [p for p in work if p.segmenter == name]
        for start in range(0, len(mine), batch_volumes):
            loaded: list[tuple[CasePair, MaskVolume, MaskVolume]] = []
            for pair in mine[start : start + batch_volumes]:
                volumes = _load_pair(pair, label_map, limits)
                if isinstance(volumes, SkippedCase):
                    log.warning("skipped a volume of %s: %s", name, volumes.reason)
                    skipped.append(volumes)
                else:
                    loaded.append((pair, *volumes))
            scored = scorer.score_batch([pred for _, pred, _ in loaded]) if loaded else []
            for (pair, pred, gt), result in zip(loaded, scored, strict=True):
                rows.extend(_case_rows(pair, pred, gt, result.score))
            log.info("%s: %d/%d volumes evaluated", name, min(start + batch_volumes, len(mine)), len(mine))
    cases = pd.DataFrame(rows, columns=list(CASE_COLUMNS))
    return cases.astype({"missing": bool}), skipped


def _case_rows(pair: CasePair, pred: MaskVolume, gt: MaskVolume, score: VolumeScore) -> list[dict[str, Any]]:
    rows = []
    for structure in STRUCTURES:
        channel = CANONICAL_CHANNEL[structure]
        p, g = pred.labels == channel, gt.labels == channel
        pseudo = score.structure(structure)
        n_gt = int(np.count_nonzero(g))
        rows.append(
            {
                "segmenter": pair.segmenter,
                "patient": pair.patient,
                "phase": pair.phase,
                "structure": structure.value,
                "dice": dice(p, g),
                "hd_mm": hausdorff_mm(p, g, gt.spacing_mm),
                "pdsc": pseudo.pdsc,
                "phd_mm": pseudo.phd_mm,
                "flag": pseudo.flag.value,
                "reasons": "; ".join(pseudo.reasons),
                "missing": pseudo.mask_voxels == 0 and n_gt > 0,
                "case": pair.case,
                "volume_flag": score.flag.value,
                "mask_voxels": pseudo.mask_voxels,
                "gt_voxels": n_gt,
                "pgt_voxels": pseudo.pgt_voxels,
                "pred_file": str(pair.pred_path),
                "gt_file": str(pair.gt_path),
            }
        )
    return rows


# --------------------------------------------------------------------------------------------------
# Pure summaries
# --------------------------------------------------------------------------------------------------


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.pearsonr(x, y)[0])


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(stats.spearmanr(x, y)[0])


def correlate(real: Iterable[float], pseudo: Iterable[float]) -> dict[str, float | int]:
    """Agreement of paired real and pseudo values; pairs with a nan on either side are dropped.

    Returns: ``pearson``, ``spearman`` (nan when fewer than 2 pairs or a side is constant), ``mae``
        (mean absolute difference, in the metric's unit; nan when no pairs), ``n`` (pairs used) and
        ``n_dropped``.
    """
    x = np.asarray(list(real), dtype=float)
    y = np.asarray(list(pseudo), dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"real and pseudo must have the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    return {
        "pearson": _pearson(x, y),
        "spearman": _spearman(x, y),
        "mae": float(np.mean(np.abs(x - y))) if len(x) else float("nan"),
        "n": int(keep.sum()),
        "n_dropped": int((~keep).sum()),
    }


def _segmenter_rows(cases: pd.DataFrame) -> pd.DataFrame:
    return cases[cases["segmenter"] != GROUND_TRUTH]


def _phase_rows(cases: pd.DataFrame, phase: str) -> pd.DataFrame:
    return cases if phase == "all" else cases[cases["phase"] == phase]


def correlation_table(cases: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, float | int]]]]:
    """``correlate`` of real vs pseudo for each metric, structure and phase (``ground_truth`` rows left out).

    Returns: ``{metric: {structure: {phase: correlate(...)}}}`` with metric in ``METRICS``.
    """
    data = _segmenter_rows(cases)
    out: dict[str, dict[str, dict[str, dict[str, float | int]]]] = {}
    for metric, (real, pseudo, _) in METRICS.items():
        out[metric] = {}
        for structure in STRUCTURES:
            rows = data[data["structure"] == structure.value]
            out[metric][structure.value] = {
                phase: correlate(_phase_rows(rows, phase)[real], _phase_rows(rows, phase)[pseudo])
                for phase in PHASES
            }
    return out


def _ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return stats.rankdata(-values if higher_is_better else values, method="average")


def rank_segmenters(cases: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Rank the segmenters by mean real and by mean pseudo metric (1 = best), per structure and phase.

    Means skip nan values (e.g. HD of a missing structure); a segmenter whose real or pseudo mean is nan
    is left out of that ranking and listed in ``excluded``. ``spearman`` is Spearman's r_s between the
    two rankings (nan with fewer than 2 ranked segmenters). ``ground_truth`` rows are left out.

    Returns: ``{metric: {structure: {phase: {"spearman", "n_segmenters", "excluded",
        "segmenters": {name: {"real_mean", "pseudo_mean", "real_rank", "pseudo_rank", "n_real",
        "n_pseudo"}}}}}}``; ranks are nan for excluded segmenters.
    """
    data = _segmenter_rows(cases)
    names = list(dict.fromkeys(data["segmenter"]))
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for metric, (real, pseudo, higher) in METRICS.items():
        out[metric] = {}
        for structure in STRUCTURES:
            out[metric][structure.value] = {}
            by_structure = data[data["structure"] == structure.value]
            for phase in PHASES:
                rows = _phase_rows(by_structure, phase)
                table = {}
                for name in names:
                    mine = rows[rows["segmenter"] == name]
                    r, p = mine[real].to_numpy(float), mine[pseudo].to_numpy(float)
                    table[name] = {
                        "real_mean": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
                        "pseudo_mean": float(np.nanmean(p)) if np.isfinite(p).any() else float("nan"),
                        "real_rank": float("nan"),
                        "pseudo_rank": float("nan"),
                        "n_real": int(np.isfinite(r).sum()),
                        "n_pseudo": int(np.isfinite(p).sum()),
                    }
                ranked = [
                    n
                    for n in names
                    if math.isfinite(table[n]["real_mean"]) and math.isfinite(table[n]["pseudo_mean"])
                ]
                real_means = np.array([table[n]["real_mean"] for n in ranked])
                pseudo_means = np.array([table[n]["pseudo_mean"] for n in ranked])
                if ranked:
                    for n, rr, pr in zip(
                        ranked, _ranks(real_means, higher), _ranks(pseudo_means, higher), strict=True
                    ):
                        table[n]["real_rank"], table[n]["pseudo_rank"] = float(rr), float(pr)
                out[metric][structure.value][phase] = {
                    "spearman": _spearman(real_means, pseudo_means),
                    "n_segmenters": len(ranked),
                    "excluded": [n for n in names if n not in ranked],
                    "segmenters": table,
                }
    return out


def precision_recall(predicted: Iterable[bool], actual: Iterable[bool]) -> dict[str, float | int]:
    """Precision and recall of a binary detector.

    Returns: ``precision`` = tp / (tp + fp), ``recall`` = tp / (tp + fn) (nan when the denominator is
        0), and the counts ``tp``, ``fp``, ``fn``, ``tn``, ``n``.
    """
    pred = np.asarray(list(predicted), dtype=bool)
    act = np.asarray(list(actual), dtype=bool)
    if pred.shape != act.shape:
        raise ValueError(f"predicted and actual must have the same length, got {pred.shape} and {act.shape}")
    tp, fp = int((pred & act).sum()), int((pred & ~act).sum())
    fn, tn = int((~pred & act).sum()), int((~pred & ~act).sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": int(pred.size),
    }


def failures(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> pd.Series:
    """Real failure of each row: Dice < ``failure_dice`` or HD > ``failure_hd_mm`` (nan compares False)."""
    d = cases["dice"].astype(float)
    h = cases["hd_mm"].astype(float)
    return (d < failure_dice) | (h > failure_hd_mm)


def _by_structure(cases: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(s.value, cases[cases["structure"] == s.value]) for s in STRUCTURES] + [("all", cases)]


def flag_quality(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Structure-level quality of the flags on the segmenters' predictions (``ground_truth`` left out).

    - ``erroneous_vs_missing``: flag ``erroneous`` against the structure being absent from the prediction
      while present in the ground truth (column ``missing``);
    - ``flagged_vs_failure``: flag ``suspicious`` or ``erroneous`` against a real failure (``failures``).

    Returns: ``{name: {structure or "all": precision_recall(...)}}``.
    """
    data = _segmenter_rows(cases)
    out: dict[str, dict[str, dict[str, float | int]]] = {"erroneous_vs_missing": {}, "flagged_vs_failure": {}}
    for key, rows in _by_structure(data):
        out["erroneous_vs_missing"][key] = precision_recall(rows["flag"] == "erroneous", rows["missing"])
        out["flagged_vs_failure"][key] = precision_recall(
            rows["flag"] != "ok", failures(rows, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm)
        )
    return out


def false_alarms(cases: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """How often the ground-truth masks themselves (segmenter ``ground_truth``) get flagged.

    Returns: ``{structure or "all": {"rate", "flagged", "erroneous", "n"}}`` over structures (``rate`` =
        flagged / n, flagged = suspicious or erroneous; nan when n = 0) and ``"volume_any"`` over volumes
        (a volume counts when any of its structures is flagged).
    """
    gt = cases[cases["segmenter"] == GROUND_TRUTH]
    out: dict[str, dict[str, float | int]] = {}
    for key, rows in _by_structure(gt):
        flagged = int((rows["flag"] != "ok").sum())
        out[key] = {
            "rate": flagged / len(rows) if len(rows) else float("nan"),
            "flagged": flagged,
            "erroneous": int((rows["flag"] == "erroneous").sum()),
            "n": len(rows),
        }
    volumes = gt.groupby("case", sort=False)["flag"].agg(lambda f: bool((f != "ok").any()))
    erroneous = gt.groupby("case", sort=False)["flag"].agg(lambda f: bool((f == "erroneous").any()))
    out["volume_any"] = {
        "rate": float(volumes.mean()) if len(volumes) else float("nan"),
        "flagged": int(volumes.sum()),
        "erroneous": int(erroneous.sum()),
        "n": len(volumes),
    }
    return out


def risk_coverage(confidence: Iterable[float], risk: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Risk-coverage curve: mean risk of the k most confident items, for k = 1..n.

    Items with nan risk are dropped; nan confidence counts as the lowest. Items of equal confidence
    share their mean risk, which is the expected curve over every order of the ties.

    Returns: (coverage k/n, selective risk), both float [n]; empty arrays when nothing is left.
    """
    conf = np.asarray(list(confidence), dtype=float)
    r = np.asarray(list(risk), dtype=float)
    if conf.shape != r.shape:
        raise ValueError(f"confidence and risk must have the same length, got {conf.shape} and {r.shape}")
    keep = np.isfinite(r)
    conf, r = np.where(np.isfinite(conf[keep]), conf[keep], -np.inf), r[keep]
    if r.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    conf, r = conf[order], r[order]
    _, group, counts = np.unique(-conf, return_inverse=True, return_counts=True)
    r = np.bincount(group, weights=r)[group] / counts[group]
    k = np.arange(1, r.size + 1)
    return k / r.size, np.cumsum(r) / k


def aurc(confidence: Iterable[float], risk: Iterable[float]) -> dict[str, float | int]:
    """Area under the risk-coverage curve (mean of the selective risks over k = 1..n; lower is better).

    Returns: ``aurc``; ``optimal`` (an oracle ordering by risk); ``random`` (the expected value for a
        random ordering, i.e. the mean risk); ``excess`` = aurc - optimal; ``n`` (items used) and
        ``n_dropped`` (nan risk). Areas are nan when nothing is left.
    """
    conf = np.asarray(list(confidence), dtype=float)
    r = np.asarray(list(risk), dtype=float)
    _, selective = risk_coverage(conf, r)
    kept = np.sort(r[np.isfinite(r)])
    if kept.size == 0:
        nan = float("nan")
        return {"aurc": nan, "optimal": nan, "random": nan, "excess": nan, "n": 0, "n_dropped": int(r.size)}
    area = float(selective.mean())
    optimal = float((np.cumsum(kept) / np.arange(1, kept.size + 1)).mean())
    return {
        "aurc": area,
        "optimal": optimal,
        "random": float(kept.mean()),
        "excess": area - optimal,
        "n": int(kept.size),
        "n_dropped": int(r.size - kept.size),
    }


def _risk_inputs(
    cases: pd.DataFrame, failure_dice: float, failure_hd_mm: float
) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Scope -> (confidence, {risk name: risk}) for LV, RV, MYO, all structures and whole volumes."""
    data = _segmenter_rows(cases).copy()
    data["failure"] = failures(data, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm).astype(float)
    out = {}
    for key, rows in _by_structure(data):
        out[key] = (
            rows["pdsc"].to_numpy(float),
            {"dice": 1.0 - rows["dice"].to_numpy(float), "failure": rows["failure"].to_numpy(float)},
        )
    volumes = data.groupby(["segmenter", "case"], sort=False).agg(
        pdsc=("pdsc", "mean"), dice=("dice", "mean"), failure=("failure", "max")
    )
    out["volume"] = (
        volumes["pdsc"].to_numpy(float),
        {"dice": 1.0 - volumes["dice"].to_numpy(float), "failure": volumes["failure"].to_numpy(float)},
    )
    return out


def risk_coverage_table(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, dict[str, dict[str, float | int]]]:
    """AURC with pDSC as confidence, per scope and risk (``ground_truth`` rows left out).

    Scopes: ``LV``, ``RV``, ``MYO``, ``all`` (every structure row) and ``volume`` (confidence = mean pDSC
    of the volume's structures, risk = 1 - mean real Dice, or any structure failing). Risks: ``dice``
    (1 - real Dice) and ``failure`` (0/1, ``failures``).

    Returns: ``{scope: {risk: aurc(...)}}``.
    """
    return {
        scope: {name: aurc(conf, risk) for name, risk in risks.items()}
        for scope, (conf, risks) in _risk_inputs(cases, failure_dice, failure_hd_mm).items()
    }


def _per_segmenter(
    cases: pd.DataFrame, failure_dice: float, failure_hd_mm: float
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(cases["segmenter"]):
        rows = cases[cases["segmenter"] == name]
        volume_flags = rows.groupby("case", sort=False)["volume_flag"].first()
        out[name] = {
            "n_volumes": int(rows["case"].nunique()),
            "mean": {
                structure: {column: _nan_mean(part[column]) for column in ("dice", "pdsc", "hd_mm", "phd_mm")}
                for structure, part in _by_structure(rows)
            },
            "structure_flags": {
                lvl: int((rows["flag"] == lvl).sum()) for lvl in ("ok", "suspicious", "erroneous")
            },
            "volume_flags": {
                lvl: int((volume_flags == lvl).sum()) for lvl in ("ok", "suspicious", "erroneous")
            },
            "missing_structures": int(rows["missing"].sum()),
            "failed_structures": int(
                failures(rows, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm).sum()
            ),
        }
    return out


def _nan_mean(values: pd.Series) -> float:
    v = values.to_numpy(float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def zero_filled(cases: pd.DataFrame) -> pd.DataFrame:
    """The paper's convention for erroneous structures: pDSC = 0 where it is undefined.

    When a structure is missing from both the mask and its pGT, pDSC is nan here (nothing to
    compare), while the real DSC is 0 (the reference has the structure). The paper scores such cases
    pDSC = pHD = 0; this copy sets pDSC to 0 for erroneous rows with a nan pDSC, so that correlations
    can be compared with the paper's. HD columns are left as they are (the real HD is undefined there).
    """
    out = cases.copy()
    fill = (out["flag"] == "erroneous") & out["pdsc"].isna()
    out.loc[fill, "pdsc"] = 0.0
    return out


def summarise(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, Any]:
    """Every figure of the evaluation from the cases table (pure; nan stays nan).

    Returns: a dict with ``n_volumes`` (segmenters' volumes), ``n_ground_truth_volumes``, ``segmenters``,
        ``thresholds``, ``per_segmenter``, ``correlation`` (``correlation_table``), ``ranking``
        (``rank_segmenters``), ``flags`` (``flag_quality`` plus ``false_alarm``: ``false_alarms``) and
        ``aurc`` (``risk_coverage_table``).
    """
    data = _segmenter_rows(cases)
    gt = cases[cases["segmenter"] == GROUND_TRUTH]
    return {
        "n_volumes": int(data.groupby(["segmenter", "case"]).ngroups) if len(data) else 0,
        "n_ground_truth_volumes": int(gt["case"].nunique()),
        "segmenters": list(dict.fromkeys(data["segmenter"])),
        "thresholds": {"failure_dice": failure_dice, "failure_hd_mm": failure_hd_mm},
        "per_segmenter": _per_segmenter(cases, failure_dice, failure_hd_mm),
        "correlation": correlation_table(cases),
        "correlation_zero_filled": {"dice": correlation_table(zero_filled(cases))["dice"]},
        "ranking": rank_segmenters(cases),
        "flags": {
            **flag_quality(cases, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm),
            "false_alarm": false_alarms(cases),
        },
        "aurc": risk_coverage_table(cases, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm),
    }


# --------------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain JSON types; nan/inf become null, numpy scalars and paths become Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _nan_to_none(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "–" if not math.isfinite(value) else f"{value:.{digits}f}"
    return str(value)


def _plot_scatter(cases: pd.DataFrame, metric: str, path: Path) -> None:
    from matplotlib.figure import Figure

    real, pseudo, _ = METRICS[metric]
    label = {"dice": ("DSC", "pDSC"), "hd_mm": ("HD (mm)", "pHD (mm)")}[metric]
    data = _segmenter_rows(cases)
    names = list(dict.fromkeys(data["segmenter"]))
    fig = Figure(figsize=(4.2 * len(STRUCTURES), 4.4), layout="constrained")
    axes = fig.subplots(1, len(STRUCTURES))
    colours = _colours(len(names))
    for ax, structure in zip(axes, STRUCTURES, strict=True):
        rows = data[data["structure"] == structure.value]
        x_all, y_all = rows[real].to_numpy(float), rows[pseudo].to_numpy(float)
        ok = np.isfinite(x_all) & np.isfinite(y_all)
        for name, colour in zip(names, colours, strict=True):
            mine = rows[(rows["segmenter"] == name)]
            ax.scatter(mine[real], mine[pseudo], s=12, alpha=0.7, color=colour, label=name, linewidths=0)
        top = (
            1.0
            if metric == "dice"
            else float(max(np.max(x_all[ok], initial=1.0), np.max(y_all[ok], initial=1.0)))
        )
        lim = (0.0, top * 1.03)
        ax.plot(lim, lim, color="0.3", lw=1, ls="--", label="identity")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        stats = correlate(x_all, y_all)
        ax.set_title(f"{structure.value}: r = {_fmt(stats['pearson'])}, n = {stats['n']}")
        ax.set_xlabel(f"real {label[0]}")
        ax.set_ylabel(label[1])
        ax.grid(alpha=0.3)
    axes[-1].legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=110)


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _plot_risk_coverage(cases: pd.DataFrame, path: Path, failure_dice: float, failure_hd_mm: float) -> None:
    from matplotlib.figure import Figure

    inputs = _risk_inputs(cases, failure_dice, failure_hd_mm)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    titles = {"dice": "risk = 1 - real DSC", "failure": "risk = real failure (0/1)"}
    for ax, risk_name in zip(axes, ("dice", "failure"), strict=True):
        for (scope, label), colour in zip(
            (("all", "structures"), ("volume", "volumes")), _colours(2), strict=True
        ):
            conf, risks = inputs[scope]
            coverage, selective = risk_coverage(conf, risks[risk_name])
            if coverage.size == 0:
                continue
            area = aurc(conf, risks[risk_name])
            ax.plot(coverage, selective, color=colour, label=f"{label} by pDSC (AURC {area['aurc']:.3f})")
            kept = np.sort(risks[risk_name][np.isfinite(risks[risk_name])])
            optimal = np.cumsum(kept) / np.arange(1, kept.size + 1)
            ax.plot(coverage, optimal, color=colour, ls=":", label=f"{label} optimal ({area['optimal']:.3f})")
        ax.set_xlabel("coverage")
        ax.set_ylabel("selective risk")
        ax.set_xlim(0, 1)
        ax.set_title(titles[risk_name])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def _report_markdown(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    lines = ["# cmr-monitor evaluation: pseudo vs real metrics", ""]
    meta = summary.get("inputs", {})
    if meta:
        lines += [f"- ground truth: `{meta.get('gt_dir', '')}`"]
        lines += [f"- predictions: {', '.join(f'{k} = `{v}`' for k, v in meta.get('pred_dirs', {}).items())}"]
    lines += [
        f"- checkpoint: `{summary.get('checkpoint', '')}` (sha256 `{summary.get('checkpoint_sha256', '')}`)",
        f"- volumes evaluated: {summary['n_volumes']} predicted, {summary['n_ground_truth_volumes']} "
        "ground truth scored as a pseudo-segmenter",
        f"- real failure: DSC < {summary['thresholds']['failure_dice']:g} or HD > "
        f"{summary['thresholds']['failure_hd_mm']:g} mm",
        "",
    ]
    pairing = summary.get("pairing", {})
    problems = [*pairing.get("unpaired", []), *pairing.get("skipped", [])]
    lines += ["## Pairing", ""]
    lines += [
        f"{len(pairing.get('unpaired', []))} predictions without ground truth (not evaluated), "
        f"{len(pairing.get('skipped', []))} volumes skipped (unreadable or geometry mismatch), "
        f"{sum(pairing.get('missing_predictions', {}).values())} ground truths without a prediction.",
        "",
    ]
    if problems:
        lines += _md_table(
            ["segmenter", "case", "reason", "detail"],
            ([p["segmenter"], p["case"], p["reason"], p["detail"]] for p in problems),
        )
    missing = {k: v for k, v in pairing.get("missing_predictions", {}).items() if v}
    if missing:
        lines += _md_table(["segmenter", "ground truths without a prediction"], missing.items())

    lines += [
        "## Per segmenter",
        "",
        "Means over volumes (nan values skipped); flags counted per structure.",
        "",
    ]
    rows = []
    for name, item in summary["per_segmenter"].items():
        mean = item["mean"]["all"]
        flags = item["structure_flags"]
        rows.append(
            [
                name,
                item["n_volumes"],
                mean["dice"],
                mean["pdsc"],
                _fmt(mean["hd_mm"], 1),
                _fmt(mean["phd_mm"], 1),
                f"{flags['ok']} / {flags['suspicious']} / {flags['erroneous']}",
                item["missing_structures"],
                item["failed_structures"],
            ]
        )
    lines += _md_table(
        ["segmenter", "volumes", "DSC", "pDSC", "HD mm", "pHD mm", "ok / susp. / err.", "missing", "failed"],
        rows,
    )

    lines += ["## Real vs pseudo metrics", ""]
    lines += [
        "Pearson and Spearman correlation, mean absolute error (MAE, DSC units or mm) and pairs used "
        "(pairs with a nan on either side dropped). The `ground_truth` pseudo-segmenter is left out.",
        "",
    ]
    rows = []
    for metric, by_structure in summary["correlation"].items():
        for structure, by_phase in by_structure.items():
            for phase, c in by_phase.items():
                rows.append(
                    [metric, structure, phase, c["pearson"], c["spearman"], c["mae"], c["n"], c["n_dropped"]]
                )
    lines += _md_table(
        ["metric", "structure", "phase", "Pearson r", "Spearman ρ", "MAE", "n", "dropped"], rows
    )
    rows = [
        [structure, phase, c["pearson"], c["spearman"], c["mae"], c["n"], c["n_dropped"]]
        for structure, by_phase in summary.get("correlation_zero_filled", {}).get("dice", {}).items()
        for phase, c in by_phase.items()
    ]
    if rows:
        lines += [
            "DSC vs pDSC with the paper's convention (pDSC = 0 for an erroneous structure that is missing "
            "from both mask and pGT, where it is otherwise undefined and dropped):",
            "",
        ]
        lines += _md_table(["structure", "phase", "Pearson r", "Spearman ρ", "MAE", "n", "dropped"], rows)
    for metric in METRICS:
        if plots.get(f"scatter_{metric}"):
            lines += [f"![{metric}: real vs pseudo]({plots[f'scatter_{metric}']})", ""]

    lines += ["## Ranking of the segmenters", ""]
    lines += [
        "Rank 1 = best (highest mean DSC, lowest mean HD); r_s = Spearman correlation of the ranking by "
        "the real metric with the ranking by the pseudo metric.",
        "",
    ]
    rows = []
    for metric, by_structure in summary["ranking"].items():
        for structure, by_phase in by_structure.items():
            rows.append([metric, structure, *(by_phase[p]["spearman"] for p in PHASES)])
    lines += _md_table(["metric", "structure", *(f"r_s {p}" for p in PHASES)], rows)
    for metric, by_structure in summary["ranking"].items():
        names = list(summary["per_segmenter"])
        names = [n for n in names if n != GROUND_TRUTH]
        header = ["segmenter"]
        for structure in by_structure:
            header += [f"{structure} real (rank)", f"{structure} pseudo (rank)"]
        rows = []
        for name in names:
            row = [name]
            for by_phase in by_structure.values():
                s = by_phase["all"]["segmenters"].get(name, {})
                digits = 3 if metric == "dice" else 1
                row += [
                    f"{_fmt(s.get('real_mean'), digits)} ({_fmt(s.get('real_rank'), 1)})",
                    f"{_fmt(s.get('pseudo_mean'), digits)} ({_fmt(s.get('pseudo_rank'), 1)})",
                ]
            rows.append(row)
        rows.append(["r_s", *[x for b in by_structure.values() for x in (_fmt(b["all"]["spearman"]), "")]])
        lines += [f"### {metric}, all phases", "", *_md_table(header, rows)]

    flags = summary["flags"]
    lines += ["## Flags", "", "Structure level, `ground_truth` left out.", ""]
    rows = []
    for name, title in (
        ("erroneous_vs_missing", "erroneous vs structure missing"),
        ("flagged_vs_failure", "suspicious or erroneous vs real failure"),
    ):
        for key, pr in flags[name].items():
            rows.append([title, key, pr["precision"], pr["recall"], pr["tp"], pr["fp"], pr["fn"], pr["n"]])
    lines += _md_table(["detector", "structure", "precision", "recall", "tp", "fp", "fn", "n"], rows)
    lines += ["False alarms on the ground-truth masks (flag suspicious or erroneous):", ""]
    lines += _md_table(
        ["structure", "rate", "flagged", "erroneous", "n"],
        ([k, v["rate"], v["flagged"], v["erroneous"], v["n"]] for k, v in flags["false_alarm"].items()),
    )

    lines += ["## Risk-coverage", ""]
    lines += [
        "Confidence = pDSC (volume: mean pDSC of its structures); lower AURC is better; `optimal` orders by "
        "the real risk, `random` is the mean risk.",
        "",
    ]
    rows = []
    for scope, by_risk in summary["aurc"].items():
        for risk, a in by_risk.items():
            rows.append([scope, risk, a["aurc"], a["optimal"], a["random"], a["excess"], a["n"]])
    lines += _md_table(["scope", "risk", "AURC", "optimal", "random", "excess", "n"], rows)
    if plots.get("risk_coverage"):
        lines += [f"![risk-coverage]({plots['risk_coverage']})", ""]
    if plots.get("error"):
        lines += [f"Plots not written: {plots['error']}", ""]
    versions = summary.get("versions", {})
    if versions:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)


def write_report(
    cases: pd.DataFrame,
    summary: Mapping[str, Any],
    out_dir: Path | str,
    *,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``cases.csv``, ``summary.json``, the PNG plots and ``report.md`` (linking them) to ``out_dir``.

    Args:
        cases: from ``evaluate_cases``.
        summary: from ``summarise`` (optionally extended with ``inputs``, ``pairing``, ``checkpoint``,
            ``checkpoint_sha256`` and ``versions`` as ``run_evaluation`` does).
        out_dir: created if needed; files of the same names are replaced.
        plots: draw the PNG plots (needs matplotlib; when it is missing the report says so).
    Returns: name -> path of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    cases.to_csv(out / "cases.csv", index=False)
    written["cases"] = out / "cases.csv"
    (out / "summary.json").write_text(json.dumps(_jsonable(dict(summary)), indent=2, allow_nan=False) + "\n")
    written["summary"] = out / "summary.json"
    links: dict[str, str | None] = {}
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            links["error"] = "matplotlib is not installed"
            log.warning("matplotlib is not installed: evaluation plots skipped")
        else:
            for metric in METRICS:
                name = f"scatter_{metric}"
                _plot_scatter(cases, metric, out / f"{name}.png")
                written[name], links[name] = out / f"{name}.png", f"{name}.png"
            thresholds = summary.get("thresholds", {})
            _plot_risk_coverage(
                cases,
                out / "risk_coverage.png",
                float(thresholds.get("failure_dice", FAILURE_DICE)),
                float(thresholds.get("failure_hd_mm", FAILURE_HD_MM)),
            )
            written["risk_coverage"], links["risk_coverage"] = out / "risk_coverage.png", "risk_coverage.png"
    (out / "report.md").write_text(_report_markdown(_jsonable(dict(summary)), links))
    written["report"] = out / "report.md"
    return written


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
) -> dict[str, Any]:
    """Pair, score, summarise and write the report: the whole ``cmr-monitor evaluate``.

    Arguments as in ``pair_cases``, ``evaluate_cases``, ``summarise`` and ``write_report``.

    Returns: the summary written to ``summary.json`` (nan as float nan), with ``inputs``, ``pairing``
        (``unpaired``, ``skipped``, ``missing_predictions`` per segmenter), ``checkpoint``,
        ``checkpoint_sha256``, ``checkpoint_meta`` and ``versions`` added.
    Raises: FileNotFoundError / ValueError from ``pair_cases``; ValueError when no prediction pairs
        with a ground truth.
    """
    pairing = pair_cases(gt_dir, pred_dirs)
    if not pairing.pairs:
        raise ValueError(
            f"no prediction pairs with a ground truth under {gt_dir} "
            f"({len(pairing.unpaired)} predictions without ground truth)"
        )
    for item in pairing.unpaired:
        log.warning("prediction of %s without ground truth: %s", item.segmenter, item.path.name)
    cases, skipped = evaluate_cases(
        pairing.pairs,
        scorer,
        label_map=label_map,
        batch_volumes=batch_volumes,
        include_ground_truth=include_ground_truth,
        limits=limits,
    )
    summary = summarise(cases, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm)
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
            },
            "versions": _versions(),
        }
    )
    write_report(cases, summary, out_dir, plots=plots)
    return summary
