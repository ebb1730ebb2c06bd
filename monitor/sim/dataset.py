"""A simulated dataset in the acdc-dev layout: phantoms, their simulated predictions and real metrics.

``write_dataset`` writes ``gt/patientNNN/`` (ACDC layout with ``Info.cfg``) and
``predictions/<segmenter>/`` with a ``metrics.csv`` of the real Dice, Hausdorff distance (mm), volumes
(ml) and ejection fraction of every prediction, the same columns as the acdc-dev tree.
"""

from __future__ import annotations

import csv
import math
import time
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.io.layouts import INFO_CFG
from monitor.io.nifti import save_labels
from monitor.qc.labels import ACDC
from monitor.qc.metrics import voxels_ml
from monitor.qc.scores import compare_structures
from monitor.sim.phantoms import make_image, make_patient
from monitor.sim.segmenters import DEFAULT_SEGMENTERS, SEGMENTERS, SimulatedSegmenter
from monitor.typing import Spacing3

__all__ = ["METRICS_COLUMNS", "DatasetSummary", "write_dataset"]

#: Columns of ``predictions/<segmenter>/metrics.csv`` (the same as the acdc-dev tree).
METRICS_COLUMNS: tuple[str, ...] = (
    "patient",
    "phase",
    "frame",
    "group",
    "ssl4mis_split",
    "pred_file",
    "gt_file",
    "slice_thickness_mm",
    "dice_lv",
    "dice_rv",
    "dice_myo",
    "dice_mean",
    "hd_lv_mm",
    "hd_rv_mm",
    "hd_myo_mm",
    "gt_lv_ml",
    "pred_lv_ml",
    "gt_rv_ml",
    "pred_rv_ml",
    "gt_myo_ml",
    "pred_myo_ml",
    "gt_lv_ef_pct",
    "pred_lv_ef_pct",
    "pred_missing_structures",
    "perturbation",
)
_GROUP = "SYN"
_SPLIT = "synthetic"


@dataclass(frozen=True, slots=True, kw_only=True)
class DatasetSummary:
    """What ``write_dataset`` wrote."""

    out_dir: Path  #: root of the tree (holds ``gt/`` and ``predictions/``)
    patients: tuple[str, ...]  #: patient ids, e.g. ("patient001", ...)
    segmenters: tuple[str, ...]  #: prediction folders written
    n_volumes: int  #: ground-truth volumes (patients x 2 phases)
    metrics_files: dict[str, Path]  #: segmenter -> its metrics.csv
    mean_dice: dict[str, float]  #: segmenter -> mean of dice_mean over its volumes
    duration_s: float  #: wall time of the whole write, seconds


def _volume_seed(seed: int, *parts: str) -> np.random.Generator:
    """Generator keyed by the dataset seed and names, independent of which other items are written."""
    return np.random.default_rng([seed, *(zlib.crc32(p.encode()) for p in parts)])


def _fmt(value: float | int | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return "" if not math.isfinite(value) else f"{value:.4f}"


def _ef(edv: float, esv: float) -> float:
    return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")


def _compare(pred: np.ndarray, gt: np.ndarray, spacing: Spacing3) -> dict[str, float | str]:
    """Metric columns of one volume: Dice, HD (mm) and volumes (ml) per structure, missing structures.

    Dice is 1 when both masks are empty, as in acdc-dev's metrics.csv (``compare_structures`` gives nan).
    """
    row: dict[str, float | str] = {}
    missing = []
    for c in compare_structures(pred, gt, spacing):
        key = c.structure.value.lower()
        row[f"dice_{key}"] = 1.0 if math.isnan(c.dice) else c.dice
        row[f"hd_{key}_mm"] = c.hd_mm
        row[f"gt_{key}_ml"] = voxels_ml(c.ref_voxels, spacing)
        row[f"pred_{key}_ml"] = voxels_ml(c.mask_voxels, spacing)
        if c.mask_voxels == 0:
            missing.append(c.structure.value)
    row["dice_mean"] = float(np.mean([row["dice_lv"], row["dice_rv"], row["dice_myo"]]))
    row["pred_missing_structures"] = " ".join(missing)
    return row


def write_dataset(
    out_dir: Path | str,
    *,
    patients: int = 10,
    seed: int = 0,
    segmenters: Sequence[str | SimulatedSegmenter] = DEFAULT_SEGMENTERS,
    images: bool = True,
) -> DatasetSummary:
    """Write synthetic patients and simulated predictions in the acdc-dev layout.

    Writes ``gt/patientNNN/patientNNN_frameFF_gt.nii.gz`` (ED frame 01, ES frame 09-16),
    ``gt/patientNNN/Info.cfg`` (``ED: 1`` / ``ES: <frame>`` / ``Group: SYN``), optionally the image
    ``gt/patientNNN/patientNNN_frameFF.nii.gz``, and for each segmenter
    ``predictions/<name>/patientNNN_{ED,ES}.nii.gz`` plus ``predictions/<name>/metrics.csv`` (columns
    ``METRICS_COLUMNS``; 4 decimals; nan written as an empty field; Dice 0 when exactly one mask is
    empty and 1 when both are; HD empty when either is). Labels are written with the ACDC map, affine
    diag(dx, dy, dz, 1). Existing files of the same names are replaced; nothing else is removed. Each
    patient and each (segmenter, patient, phase) draws from its own generator, so a patient's files do
    not depend on how many patients or which segmenters are written.

    Args:
        out_dir: root folder (created if needed).
        patients: number of patients, numbered patient001 upwards (1-999).
        seed: dataset seed.
        segmenters: names in ``SEGMENTERS`` or ``SimulatedSegmenter`` objects.
        images: also write synthetic MR-like images.
    Returns: a ``DatasetSummary``.
    Raises: ValueError for a patient count outside 1-999, an unknown or duplicate segmenter name.
    """
    start = time.perf_counter()
    if not 1 <= patients <= 999:
        raise ValueError(f"patients must be between 1 and 999, got {patients}")
    chosen: list[SimulatedSegmenter] = []
    for item in segmenters:
        if isinstance(item, SimulatedSegmenter):
            chosen.append(item)
        elif item in SEGMENTERS:
            chosen.append(SEGMENTERS[item])
        else:
            raise ValueError(f"unknown simulated segmenter {item!r}; known: {sorted(SEGMENTERS)}")
    names = [s.name for s in chosen]
    if len(set(names)) != len(names):
        raise ValueError(f"segmenter names must be unique, got {names}")

    root = Path(out_dir)
    gt_root = root / "gt"
    rows: dict[str, list[dict[str, float | str]]] = {name: [] for name in names}
    ids = tuple(f"patient{i:03d}" for i in range(1, patients + 1))
    for pid in ids:
        rng = _volume_seed(seed, "patient", pid)
        ed, es = make_patient(rng)
        frames = {"ED": 1, "ES": int(rng.integers(9, 17))}
        folder = gt_root / pid
        folder.mkdir(parents=True, exist_ok=True)
        (folder / INFO_CFG).write_text(f"ED: {frames['ED']}\nES: {frames['ES']}\nGroup: {_GROUP}\n")
        patient_rows: dict[str, list[dict[str, float | str]]] = {name: [] for name in names}
        for phantom in (ed, es):
            frame = frames[phantom.phase]
            gt_rel = f"{pid}/{pid}_frame{frame:02d}_gt.nii.gz"
            save_labels(gt_root / gt_rel, phantom.labels, phantom.affine, label_map=ACDC)
            if images:
                image = make_image(
                    phantom.labels, _volume_seed(seed, "image", pid, phantom.phase), phantom.spacing_mm
                )
                save_labels(folder / f"{pid}_frame{frame:02d}.nii.gz", image, phantom.affine)
            for segmenter in chosen:
                vol_rng = _volume_seed(seed, segmenter.name, pid, phantom.phase)
                pred, description = segmenter(phantom.labels, vol_rng, phantom.spacing_mm)
                pred_name = f"{pid}_{phantom.phase}.nii.gz"
                save_labels(
                    root / "predictions" / segmenter.name / pred_name, pred, phantom.affine, label_map=ACDC
                )
                row: dict[str, float | str] = {
                    "patient": pid,
                    "phase": phantom.phase,
                    "frame": str(frame),
                    "group": _GROUP,
                    "ssl4mis_split": _SPLIT,
                    "pred_file": pred_name,
                    "gt_file": gt_rel,
                    "slice_thickness_mm": phantom.spacing_mm[0],
                    **_compare(pred, phantom.labels, phantom.spacing_mm),
                    "perturbation": description.replace(",", ";"),
                }
                patient_rows[segmenter.name].append(row)
        for name, (ed_row, es_row) in patient_rows.items():
            gt_ef = _ef(float(ed_row["gt_lv_ml"]), float(es_row["gt_lv_ml"]))
            pred_ef = _ef(float(ed_row["pred_lv_ml"]), float(es_row["pred_lv_ml"]))
            for row in (ed_row, es_row):
                row["gt_lv_ef_pct"], row["pred_lv_ef_pct"] = gt_ef, pred_ef
            rows[name].extend((ed_row, es_row))

    metrics_files: dict[str, Path] = {}
    for name, name_rows in rows.items():
        path = root / "predictions" / name / "metrics.csv"
        with path.open("w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(METRICS_COLUMNS)
            for row in name_rows:
                writer.writerow([_fmt(row[column]) for column in METRICS_COLUMNS])
        metrics_files[name] = path
    return DatasetSummary(
        out_dir=root,
        patients=ids,
        segmenters=tuple(names),
        n_volumes=2 * patients,
        metrics_files=metrics_files,
        mean_dice={name: float(np.mean([float(r["dice_mean"]) for r in rows[name]])) for name in names},
        duration_s=time.perf_counter() - start,
    )
