"""Per-structure comparison of two label volumes, and the post-model step: mask + pGT -> scores + flags.

``compare_structures`` is the one loop over LV, RV and MYO that every caller uses: the scorer (mask vs
its pseudo ground truth), the evaluation and the simulated dataset (prediction vs ground truth), the
training validation (reconstruction vs ground truth). ``score_volume`` is the whole pure step after the
model: it turns a mask and its pGT into a ``VolumeScore`` (pDSC, pHD in mm, volumes, flags with reason
codes). The evidence stage (``monitor.qc.evidence``: 3D-refined pGT, stack, topology and image checks)
runs there, between the pseudo metrics and the flags; later stages (calibration) go there too.

Arrays are uint8 ``[z, y, x]`` in canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); spacing is
``(dz, dy, dx)`` in mm. No torch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from monitor.qc.evidence import Evidence, EvidenceSettings, evaluate_evidence
from monitor.qc.evidence.anatomy import union_box
from monitor.qc.flags import FlagPolicy, flag_structure, worst_flag
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.qc.metrics import bounding_box, dice, hausdorff_mm, voxels_ml
from monitor.qc.records import StructureScore, VolumeScore
from monitor.typing import Spacing3

__all__ = [
    "StructureComparison",
    "compare_structures",
    "score_structures",
    "score_volume",
    "score_with_evidence",
    "structure_score",
    "volume_score",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StructureComparison:
    """Overlap and distance of one structure between a mask and a reference (pGT or ground truth)."""

    structure: Structure  #: LV, RV or MYO
    dice: float  #: Dice (0-1); 0 when exactly one side is empty, nan when both are
    hd_mm: float  #: symmetric Hausdorff distance in mm; nan when either side is empty (or not computed)
    mask_voxels: int  #: voxels of the structure in the mask
    ref_voxels: int  #: voxels of the structure in the reference


def compare_structures(
    mask: np.ndarray,
    ref: np.ndarray,
    spacing_mm: Spacing3,
    *,
    hausdorff: bool = True,
    only: Iterable[Structure] | None = None,
) -> tuple[StructureComparison, ...]:
    """Dice, Hausdorff distance (mm) and voxel counts of LV, RV and MYO, in that order.

    Work is confined to the foreground box of both volumes, which holds every structure (same results
    as the whole arrays, in a fraction of the time).

    Args:
        mask, ref: uint8 [z, y, x] canonical labels, same shape.
        spacing_mm: (dz, dy, dx) in mm.
        hausdorff: False leaves ``hd_mm`` nan (Dice and counts only, much faster).
        only: structures whose Hausdorff distance is computed (None: all); the others get nan.
    Raises: ValueError if the shapes differ.
    """
    if mask.shape != ref.shape:
        raise ValueError(f"mask and ref must have the same shape, got {mask.shape} and {ref.shape}")
    box = bounding_box((mask > 0) | (ref > 0))
    mask, ref = mask[box], ref[box]
    wanted = set(STRUCTURES if only is None else only)
    return tuple(
        _comparison(s, mask, ref, spacing_mm, hausdorff=hausdorff and s in wanted) for s in STRUCTURES
    )


def _comparison(
    structure: Structure, mask: np.ndarray, ref: np.ndarray, spacing_mm: Spacing3, *, hausdorff: bool
) -> StructureComparison:
    """One structure of ``compare_structures`` on any box holding both label volumes' foreground (the
    Hausdorff distance works in the tight box of the two, so the values do not depend on it)."""
    channel = CANONICAL_CHANNEL[structure]
    m, r = mask == channel, ref == channel
    return StructureComparison(
        structure=structure,
        dice=dice(m, r),
        hd_mm=hausdorff_mm(m, r, spacing_mm) if hausdorff else math.nan,
        mask_voxels=int(np.count_nonzero(m)),
        ref_voxels=int(np.count_nonzero(r)),
    )


def structure_score(
    structure: Structure,
    *,
    pdsc: float,
    phd_mm: float,
    mask_voxels: int,
    pgt_voxels: int,
    mask_volume_ml: float,
    policy: FlagPolicy,
) -> StructureScore:
    """One structure's pseudo metrics, flagged under ``policy``."""
    level, reasons = flag_structure(
        pdsc=pdsc, phd_mm=phd_mm, mask_voxels=mask_voxels, pgt_voxels=pgt_voxels, policy=policy
    )
    return StructureScore(
        structure=structure,
        pdsc=pdsc,
        phd_mm=phd_mm,
        flag=level,
        reasons=reasons,
        mask_voxels=mask_voxels,
        pgt_voxels=pgt_voxels,
        mask_volume_ml=mask_volume_ml,
    )


def score_structures(
    mask: np.ndarray, pgt: np.ndarray, spacing_mm: Spacing3, policy: FlagPolicy
) -> tuple[StructureScore, ...]:
    """Pseudo metrics and flags of LV, RV and MYO for one volume.

    Args:
        mask, pgt: uint8 [z, y, x] canonical labels of the mask and its pseudo ground truth.
        spacing_mm: (dz, dy, dx) in mm.
        policy: flag thresholds.
    """
    return tuple(
        structure_score(
            c.structure,
            pdsc=c.dice,
            phd_mm=c.hd_mm,
            mask_voxels=c.mask_voxels,
            pgt_voxels=c.ref_voxels,
            mask_volume_ml=voxels_ml(c.mask_voxels, spacing_mm),
            policy=policy,
        )
        for c in compare_structures(mask, pgt, spacing_mm)
    )


def volume_score(
    structures: Iterable[StructureScore],
    *,
    shape: tuple[int, ...],
    spacing_mm: Spacing3,
    slices_scored: int,
    timings_s: Mapping[str, float] | None = None,
) -> VolumeScore:
    """A volume's record from its structure scores: the volume takes the worst structure flag."""
    items = tuple(structures)
    return VolumeScore(
        structures=items,
        flag=worst_flag(s.flag for s in items),
        shape=(int(shape[0]), int(shape[1]), int(shape[2])),
        spacing_mm=spacing_mm,
        slices_scored=slices_scored,
        timings_s=dict(timings_s or {}),
    )


def score_volume(mask: np.ndarray, pgt: np.ndarray, spacing_mm: Spacing3, **options: Any) -> VolumeScore:
    """The post-model step of one volume: mask and pseudo ground truth -> scores, evidence and flags.

    ``score_with_evidence`` without the evidence stage's own record; the same arguments.
    """
    return score_with_evidence(mask, pgt, spacing_mm, **options)[0]


def score_with_evidence(
    mask: np.ndarray,
    pgt: np.ndarray,
    spacing_mm: Spacing3,
    *,
    policy: FlagPolicy,
    slices_scored: int,
    timings_s: Mapping[str, float] | None = None,
    image: np.ndarray | None = None,
    evidence: EvidenceSettings | None = EvidenceSettings(),
) -> tuple[VolumeScore, Evidence | None]:
    """The post-model step of one volume, and what the evidence stage found (for the calibration).

    With ``evidence`` (the default), the pGT is refined in 3D (``monitor.qc.evidence``) and the flags
    use the refined pDSC/pHD (``pdsc_3d``, ``phd_mm_3d``) and the failed checks; ``pdsc`` and
    ``phd_mm`` keep the paper's plain meaning. ``evidence=None`` skips the stage (the paper's scores
    and flags alone; the refined fields stay nan).

    Args:
        mask, pgt: uint8 [z, y, x] canonical labels, in the mask's own geometry.
        spacing_mm: (dz, dy, dx) in mm.
        policy: flag thresholds and severities.
        slices_scored: slices that went through the autoencoder.
        timings_s: seconds per stage, kept for profiling (``evidence`` is added when it runs: the
            checks, the refinement and the refined metrics).
        image: the MR image [z, y, x] (any real dtype) in the mask's geometry, or None; recorded as
            ``VolumeScore.image_used``.
        evidence: the evidence stage's rules and tolerances; None = no evidence stage.
    Returns: the volume's scores (its flag is the worst of its structures), and the evidence stage's
        ``Evidence`` (the refined pGT, the checks and the mask's ``Anatomy``, which the calibration
        features reuse); None with ``evidence=None``.
    Raises: ValueError if the shapes of mask, pGT and image differ.
    """
    if evidence is None:
        plain = volume_score(
            score_structures(mask, pgt, spacing_mm, policy),
            shape=mask.shape,
            spacing_mm=spacing_mm,
            slices_scored=slices_scored,
            timings_s=timings_s,
        )
        return plain, None
    plain = compare_structures(mask, pgt, spacing_mm)
    began = time.perf_counter()
    found = evaluate_evidence(mask, pgt, spacing_mm, image, evidence)
    refined = _compare_refined(mask, pgt, found, plain, spacing_mm)
    structures = tuple(
        _evidence_score(c, r, found, spacing_mm, policy) for c, r in zip(plain, refined, strict=True)
    )
    score = volume_score(
        structures,
        shape=mask.shape,
        spacing_mm=spacing_mm,
        slices_scored=slices_scored,
        timings_s={**(timings_s or {}), "evidence": time.perf_counter() - began},
    )
    return replace(score, image_used=found.image_used), found


def _compare_refined(
    mask: np.ndarray,
    pgt: np.ndarray,
    found: Evidence,
    plain: tuple[StructureComparison, ...],
    spacing_mm: Spacing3,
) -> tuple[StructureComparison, ...]:
    """``compare_structures(mask, refined_pgt)``, reusing the plain result of each structure the
    refinement left unchanged (most structures of most volumes).

    The refinement only writes inside the pGT's in-plane box (every slice), so the comparison works
    in that box joined with the mask's (``found.anatomy.box``), not on whole volumes."""
    refined_pgt = found.refined_pgt
    _, ys, xs = bounding_box(pgt > 0)
    inside = (slice(None), ys, xs)
    before, after = pgt[inside], refined_pgt[inside]
    differ = before != after
    if not differ.any():
        return plain
    labels = np.union1d(before[differ], after[differ])  # the labels whose voxels moved
    changed = {s for s in STRUCTURES if CANONICAL_CHANNEL[s] in labels}
    mask_box = found.anatomy.box if found.anatomy is not None else bounding_box(mask > 0)
    box = union_box(mask_box, (slice(0, mask.shape[0]), ys, xs))
    return tuple(
        _comparison(p.structure, mask[box], refined_pgt[box], spacing_mm, hausdorff=True)
        if p.structure in changed
        else p
        for p in plain
    )


def _evidence_score(
    plain: StructureComparison,
    refined: StructureComparison,
    found: Evidence,
    spacing_mm: Spacing3,
    policy: FlagPolicy,
) -> StructureScore:
    """One structure's plain and refined metrics, its checks, flagged on the refined values and the checks."""
    checks = tuple(found.checks.get(plain.structure, ()))
    level, reasons = flag_structure(
        pdsc=refined.dice,
        phd_mm=refined.hd_mm,
        mask_voxels=plain.mask_voxels,
        pgt_voxels=plain.ref_voxels,
        policy=policy,
        checks=checks,
    )
    return StructureScore(
        structure=plain.structure,
        pdsc=plain.dice,
        phd_mm=plain.hd_mm,
        flag=level,
        reasons=reasons,
        mask_voxels=plain.mask_voxels,
        pgt_voxels=plain.ref_voxels,
        mask_volume_ml=voxels_ml(plain.mask_voxels, spacing_mm),
        pdsc_3d=refined.dice,
        phd_mm_3d=refined.hd_mm,
        pgt_volume_ml=voxels_ml(refined.ref_voxels, spacing_mm),
        evidence=checks,
    )
