"""A failure set: every family of ``monitor.sim.failures`` applied to a folder of ground-truth masks.

``write_failure_set`` writes, under ``out_dir``, one folder per family and strength laid out like a
segmenter's predictions (``<family>/<strength>/<case>.nii.gz``, the case key of the ground truth, e.g.
``patient001_ED``, so ``cmr-monitor evaluate`` pairs them with it), a ``metrics.csv`` per folder with the
real Dice and Hausdorff distance (mm) of each edited volume against its ground truth, and the manifest
``families.json`` (``monitor.evaluation.families``) that ``cmr-monitor evaluate --families`` reads.

Deterministic: each volume's edit draws from a generator keyed by the seed, the family, the strength and
the case, whatever else is written.
"""

from __future__ import annotations

import csv
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.evaluation.families import MANIFEST_NAME, FamilySet, write_manifest
from monitor.evaluation.pairing import ground_truth_files
from monitor.io.nifti import load_mask, save_labels
from monitor.qc.labels import ACDC, LabelMap
from monitor.qc.scores import compare_structures
from monitor.sim.failures import FAMILIES, NotApplicable, apply_failure, set_name

__all__ = ["FAILURE_METRICS_COLUMNS", "FailureSetSummary", "write_failure_set"]

#: Columns of each set's ``metrics.csv``.
FAILURE_METRICS_COLUMNS: tuple[str, ...] = (
    "case",
    "dice_lv",
    "dice_rv",
    "dice_myo",
    "hd_lv_mm",
    "hd_rv_mm",
    "hd_myo_mm",
    "changed_voxels",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureSetSummary:
    """What ``write_failure_set`` wrote."""

    manifest: Path  #: the ``families.json``
    sets: tuple[FamilySet, ...]  #: one per family and strength
    skipped: dict[str, list[tuple[str, str]]]  #: set name -> (case, reason) the edit could not be made on


def _rng(seed: int, family: str, strength: float, case: str) -> np.random.Generator:
    return np.random.default_rng(
        [seed, zlib.crc32(family.encode()), round(strength * 1000), zlib.crc32(case.encode())]
    )


def _strength_folder(strength: float) -> str:
    return f"{strength:g}"


def write_failure_set(
    gt_dir: Path | str,
    out_dir: Path | str,
    *,
    families: Sequence[str] | None = None,
    cases: Sequence[str] | None = None,
    seed: int = 0,
    label_map: LabelMap = ACDC,
    progress: Callable[[str, int, int], None] | None = None,
) -> FailureSetSummary:
    """Edit every ground truth of ``gt_dir`` with every family at every strength; write the set.

    Args:
        gt_dir: ground truth in ACDC layout (``patientNNN/*_frameFF_gt.nii.gz`` + ``Info.cfg``) or a
            folder of ``X.nii.gz`` / ``X_gt.nii.gz`` (``monitor.evaluation.pairing.ground_truth_files``).
        out_dir: where the sets and ``families.json`` go (created; files of the same names replaced).
        families: names of ``FAMILIES`` to build; None builds them all.
        cases: case keys to use (e.g. ``patient001_ED``); None uses every ground truth.
        seed: seed of every edit.
        label_map: labels of the ground truth; edited masks are written in the same labels.
        progress: called as ``progress(set_name, done, total)`` after each set.
    Returns: the manifest, the sets and what was skipped.
    Raises: KeyError for an unknown family or case; FileNotFoundError for a folder without ground truth.
    """
    names = list(families) if families is not None else list(FAMILIES)
    for name in names:
        if name not in FAMILIES:
            raise KeyError(f"unknown failure family {name!r}; expected one of {', '.join(FAMILIES)}")
    gts = ground_truth_files(gt_dir)
    if cases is not None:
        missing = sorted(set(cases) - set(gts))
        if missing:
            raise KeyError(f"no ground truth for cases {missing[:5]}")
        gts = {c: gts[c] for c in cases}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    volumes = {case: load_mask(path, label_map) for case, path in gts.items()}
    work = [(FAMILIES[n], s) for n in names for s in FAMILIES[n].strengths]
    sets: list[FamilySet] = []
    skipped: dict[str, list[tuple[str, str]]] = {}
    for done, (family, strength) in enumerate(work, start=1):
        name = set_name(family.name, strength)
        folder = out / family.name / _strength_folder(strength)
        folder.mkdir(parents=True, exist_ok=True)
        rows, skipped[name] = [], []
        for case, gt in volumes.items():
            try:
                edited = apply_failure(
                    gt.labels, gt.spacing_mm, family.name, strength, _rng(seed, family.name, strength, case)
                )
            except NotApplicable as exc:
                skipped[name].append((case, str(exc)))
                continue
            save_labels(folder / f"{case}.nii.gz", edited, gt.affine, label_map)
            real = {
                c.structure.value.lower(): c for c in compare_structures(edited, gt.labels, gt.spacing_mm)
            }
            rows.append(
                {
                    "case": case,
                    **{f"dice_{k}": _round(c.dice) for k, c in real.items()},
                    **{f"hd_{k}_mm": _round(c.hd_mm) for k, c in real.items()},
                    "changed_voxels": int(np.count_nonzero(edited != gt.labels)),
                }
            )
        with (folder / "metrics.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(FAILURE_METRICS_COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        sets.append(
            FamilySet(
                name=name,
                family=family.name,
                strength=strength,
                unit=family.unit,
                title=family.title,
                clearly_wrong=family.clearly_wrong(strength),
                needs_image=family.needs_image,
                folder=folder,
                n_volumes=len(rows),
                not_applicable=len(skipped[name]),
            )
        )
        if progress is not None:
            progress(name, done, len(work))
    manifest = write_manifest(
        out / MANIFEST_NAME,
        sets,
        source=str(Path(gt_dir).resolve()),
        seed=seed,
        skipped={k: [list(item) for item in v] for k, v in skipped.items() if v},
    )
    return FailureSetSummary(manifest=manifest, sets=tuple(sets), skipped=skipped)


def _round(value: float) -> float | str:
    return "" if not math.isfinite(value) else round(float(value), 4)
