"""The evidence stage in one call: refined pGT, and per-structure checks on the mask (and the image).

``evaluate_evidence`` is what ``monitor.qc.scores.score_volume`` runs between the pseudo metrics and
the flags. Everything is confined to the heart's in-plane box (grown by a margin for the image rings),
with every slice kept, so implicated slice indices are the mask's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.qc.evidence.anatomy import Anatomy, build_anatomy
from monitor.qc.evidence.image import (
    check_image,
    confirmed_by_image,
    intensity_range,
    realigned_contrast,
    slice_contrast,
)
from monitor.qc.evidence.refine import refine_pgt
from monitor.qc.evidence.settings import EvidenceSettings
from monitor.qc.evidence.stack import StackView, centroid_deviation_mm, check_stack, stack_view
from monitor.qc.evidence.topology import check_topology
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check
from monitor.typing import Spacing3

__all__ = ["Evidence", "evaluate_evidence"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the evidence stage found for one volume."""

    refined_pgt: np.ndarray  #: uint8 [z, y, x] 3D-refined pseudo ground truth, canonical labels
    #: structure -> its checks (passed and failed), in a fixed order; absent structures have none
    checks: Mapping[Structure, tuple[Check, ...]] = field(default_factory=dict)
    image_used: bool = False  #: whether image checks ran
    #: the mask's layout the checks worked from (boxes, structures, slice moments), for the
    #: calibration features; None only on records built elsewhere
    anatomy: Anatomy | None = None


def _displaced_slices(
    image: np.ndarray, view: StackView, spacing_mm: Spacing3, scale: float, settings: EvidenceSettings
) -> Check:
    """The LV+MYO centroid jump judged with the image (see ``evaluate_evidence``)."""
    deviation = centroid_deviation_mm(view.heart, spacing_mm, settings)
    known = ~np.isnan(deviation)
    worst = float(deviation[known].max()) if known.any() else 0.0
    candidates = np.flatnonzero(known & (np.nan_to_num(deviation) > settings.displaced_min_mm))
    if candidates.size == 0:  # most volumes: nothing for the image to judge
        return Check(code=ReasonCode.CENTROID_JUMP, value=worst, passed=True)
    lv = view.binary[Structure.LV]
    contrast = slice_contrast(image, lv, scale)
    centroid = view.heart.centroid
    bad = []
    for z in candidates:
        jump = deviation[z] > settings.centroid_jump_mm
        others = np.delete(contrast, z)
        others = others[~np.isnan(others)]
        reference = float(np.median(others)) if others.size else float("nan")
        if np.isnan(contrast[z]) or not reference > 0:
            if jump:  # the image cannot vouch for the slice: the mask's rule stands
                bad.append(int(z))
            continue
        fit = contrast[z] / reference
        midpoint = (centroid[z - 1] + centroid[z + 1]) / 2
        moved = realigned_contrast(image, lv, int(z), tuple(midpoint - centroid[z]), scale)
        gain = (moved - contrast[z]) / reference
        misfit = fit < settings.displaced_contrast_fraction or gain > settings.displaced_gain
        if misfit or (jump and fit < settings.image_confirms_fraction):
            bad.append(int(z))
    return Check(code=ReasonCode.CENTROID_JUMP, value=worst, passed=not bad, slices=tuple(bad))


def _with_image(
    stack: dict[Structure, list[Check]],
    image: np.ndarray,
    view: StackView,
    spacing_mm: Spacing3,
    scale: float,
    settings: EvidenceSettings,
) -> dict[Structure, list[Check]]:
    """Centroid jumps judged with the image: LV and MYO by ``_displaced_slices``; an RV jump on slices
    that fit the image as well as the rest is motion, not a mistake (passed)."""
    heart: Check | None = None
    rv_contrast: np.ndarray | None = None
    out = {}
    for structure, checks in stack.items():
        judged = []
        for check in checks:
            if check.code is ReasonCode.CENTROID_JUMP and structure is not Structure.RV:
                if heart is None:
                    heart = _displaced_slices(image, view, spacing_mm, scale, settings)
                check = heart
            elif check.code is ReasonCode.CENTROID_JUMP and not check.passed:
                if rv_contrast is None:
                    rv_contrast = slice_contrast(image, view.binary[Structure.RV], scale)
                if confirmed_by_image(rv_contrast, check.slices, settings.image_confirms_fraction):
                    check = replace(check, passed=True)
            judged.append(check)
        out[structure] = judged
    return out


def evaluate_evidence(
    mask: np.ndarray,
    pgt: np.ndarray,
    spacing_mm: Spacing3,
    image: np.ndarray | None = None,
    settings: EvidenceSettings = EvidenceSettings(),
) -> Evidence:
    """Refine the pGT in 3D and run every check on the mask (and on the image, when given).

    Args:
        mask: uint8 [z, y, x] canonical labels (0 BG, 1 RV, 2 MYO, 3 LV).
        pgt: uint8 [z, y, x] its pseudo ground truth in the mask's geometry.
        spacing_mm: (dz, dy, dx) in mm.
        image: the MR image, any real dtype [z, y, x], same shape as the mask; None = no image
            evidence (recorded as ``image_used=False``). A constant image gives no image checks.
            With an image, the LV+MYO centroid jump is judged by the image: a slice more than
            ``displaced_min_mm`` off its neighbours' midpoint fails when its LV boundary contrast is
            under ``displaced_contrast_fraction`` of the other slices' median, or when moving its LV
            onto that midpoint raises the contrast by more than ``displaced_gain`` of it (the mask
            strayed from the image); beyond ``centroid_jump_mm`` it also fails under
            ``image_confirms_fraction``. A slice whose image moved with it (breath-hold motion) fits
            where it is, and passes. An RV jump passes on slices that fit the image as the rest do.
        settings: rules and tolerances.
    Returns: the refined pGT and the checks per structure.
    Raises: ValueError if the shapes of mask, pGT and image differ.
    """
    if mask.shape != pgt.shape:
        raise ValueError(f"mask and pgt must have the same shape, got {mask.shape} and {pgt.shape}")
    if image is not None and image.shape != mask.shape:
        raise ValueError(f"image and mask must have the same shape, got {image.shape} and {mask.shape}")
    refined = refine_pgt(pgt, spacing_mm, settings)
    anatomy = build_anatomy(mask)
    if anatomy.box[0].stop <= anatomy.box[0].start:  # an empty mask
        return Evidence(refined_pgt=refined, checks={s: () for s in STRUCTURES}, anatomy=anatomy)
    box, labels = anatomy.cut, anatomy.labels
    view = stack_view(anatomy, float(spacing_mm[0]))
    parts = [check_stack(view, spacing_mm, settings), check_topology(view, spacing_mm, settings)]
    image_used = False
    if image is not None:
        lo, hi = intensity_range(image)
        if hi > lo:
            cut = np.asarray(image[box], dtype=np.float32)
            parts.append(check_image(cut, labels, hi - lo, settings))
            parts[0] = _with_image(parts[0], cut, view, spacing_mm, hi - lo, settings)
            image_used = True
    checks = {s: tuple(c for part in parts for c in part[s]) for s in STRUCTURES}
    return Evidence(refined_pgt=refined, checks=checks, image_used=image_used, anatomy=anatomy)
