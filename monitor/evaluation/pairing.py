"""Pairing predictions with their ground truth, by file name (``pair_cases``).

Ground truth in ACDC layout (``patientNNN/patientNNN_frameFF_gt.nii.gz`` + ``Info.cfg``) pairs with
predictions ``patientNNN_ED.nii.gz`` / ``patientNNN_ES.nii.gz`` (or ``patientNNN_frameFF.nii.gz``); a
plain folder pairs ``X.nii.gz`` or ``X_gt.nii.gz`` with the prediction ``X.nii.gz``. The names are read
by ``monitor.io.layouts``. Nothing is dropped silently: predictions without a ground truth and ground
truths without a prediction are listed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitor.io.layouts import (
    ground_truth_base,
    mask_stem,
    nifti_files,
    phase_of_frame,
    read_info_cfg,
    split_frame,
    split_phase,
)

__all__ = ["GROUND_TRUTH", "CasePair", "Pairing", "SkippedCase", "ground_truth_files", "pair_cases"]

#: Name of the pseudo-segmenter whose "predictions" are the ground-truth masks themselves.
GROUND_TRUTH = "ground_truth"


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


def _index_ground_truth(gt_dir: Path) -> dict[str, _GtEntry]:
    """Case key -> ground truth.

    When any ``*_gt.nii(.gz)`` exists, only those files are ground truth (the images beside them are
    ignored) and each is reachable as ``X`` for ``X_gt``; an ACDC ``patientNNN_frameFF_gt`` whose frame
    ``Info.cfg`` names as ED or ES is also reachable as ``patientNNN_ED`` / ``patientNNN_ES``. Otherwise
    every NIfTI file ``X`` is the ground truth of case ``X``.
    """
    files = nifti_files(gt_dir)
    gt_files = [p for p in files if ground_truth_base(p.name) is not None]
    index: dict[str, _GtEntry] = {}

    def add(key: str, entry: _GtEntry) -> None:
        if key in index and index[key].path != entry.path:
            raise ValueError(f"ambiguous ground truth for case {key!r}: {index[key].path} and {entry.path}")
        index[key] = entry

    for path in gt_files or files:
        base = (ground_truth_base(path.name) if gt_files else None) or mask_stem(path.name)
        frame = split_frame(base)
        phase = phase_of_frame(read_info_cfg(path.parent), frame[1]) if frame else None
        if phase and frame:
            case = f"{frame[0]}_{phase}"
            entry = _GtEntry(case=case, patient=frame[0], phase=phase, path=path)
            add(case, entry)
        else:
            patient, phase = split_phase(base)
            entry = _GtEntry(case=base, patient=patient, phase=phase, path=path)
        add(base, entry)
    return index


def ground_truth_files(gt_dir: Path | str) -> dict[str, Path]:
    """Every ground-truth mask of a folder by its case key (``patient001_ED`` in ACDC layout, else the stem).

    The same reading as ``pair_cases``: a prediction named after the key pairs with that file.

    Raises: FileNotFoundError for a missing folder or one without NIfTI files; ValueError for two ground
        truths claiming one case.
    """
    root = Path(gt_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"ground-truth folder not found: {root}")
    entries = {e.path: e for e in _index_ground_truth(root).values()}
    if not entries:
        raise FileNotFoundError(f"no ground-truth masks (*.nii, *.nii.gz) under {root}")
    return {e.case: path for path, e in sorted(entries.items(), key=lambda item: item[1].case)}


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
        for path in nifti_files(root):
            case = mask_stem(path.name)
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
