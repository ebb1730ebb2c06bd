"""The evidence stage in one call: refined pGT, and per-structure checks on the mask (and the image).

``evaluate_evidence`` is what ``monitor.qc.scores.score_volume`` runs between the pseudo metrics and
the flags. Everything is confined to the heart's in-plane box (grown by a margin for the image rings),
with every slice kept, so implicated slice indices are the mask's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from monitor.qc.evidence.image import check_image, confirmed_by_image, intensity_range, slice_contrast
from monitor.qc.evidence.refine import refine_pgt
from monitor.qc.evidence.settings import EvidenceSettings
from monitor.qc.evidence.stack import StackView, check_stack, stack_view
from monitor.qc.evidence.topology import check_topology
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.metrics import bounding_box
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check
from monitor.typing import Spacing3

__all__ = ["Evidence", "evaluate_evidence"]

_MARGIN_PX = 8  #: in-plane margin around the mask's foreground (image rings and edge profile)


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """What the evidence stage found for one volume."""

    refined_pgt: np.ndarray  #: uint8 [z, y, x] 3D-refined pseudo ground truth, canonical labels
    #: structure -> its checks (passed and failed), in a fixed order; absent structures have none
    checks: Mapping[Structure, tuple[Check, ...]] = field(default_factory=dict)
    image_used: bool = False  #: whether image checks ran


def _box(mask: np.ndarray) -> tuple[slice, slice, slice]:
    _, ys, xs = bounding_box(mask > 0)
    ny, nx = mask.shape[1:]
    return (
        slice(None),
        slice(max(ys.start - _MARGIN_PX, 0), min(ys.stop + _MARGIN_PX, ny)),
        slice(max(xs.start - _MARGIN_PX, 0), min(xs.stop + _MARGIN_PX, nx)),
    )


def _motion_cleared(
    stack: dict[Structure, list[Check]],
    image: np.ndarray,
    view: StackView,
    scale: float,
    settings: EvidenceSettings,
) -> dict[Structure, list[Check]]:
    """Centroid jumps on slices that fit the image as well as the rest: motion, not a mistake (passed)."""
    contrast: dict[Structure, np.ndarray] = {}
    out = {}
    for structure, checks in stack.items():
        cleared = []
        for check in checks:
            if check.code is ReasonCode.CENTROID_JUMP and not check.passed:
                pool = Structure.RV if structure is Structure.RV else Structure.LV
                if pool not in contrast:
                    contrast[pool] = slice_contrast(image, view.binary[pool], scale)
                if confirmed_by_image(contrast[pool], check.slices, settings.image_confirms_fraction):
                    check = replace(check, passed=True)
            cleared.append(check)
        out[structure] = cleared
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
            With an image, a centroid jump on slices that fit the image as well as the others is
            motion the image shows too, and passes.
        settings: rules and tolerances.
    Returns: the refined pGT and the checks per structure.
    Raises: ValueError if the shapes of mask, pGT and image differ.
    """
    if mask.shape != pgt.shape:
        raise ValueError(f"mask and pgt must have the same shape, got {mask.shape} and {pgt.shape}")
    if image is not None and image.shape != mask.shape:
        raise ValueError(f"image and mask must have the same shape, got {image.shape} and {mask.shape}")
    refined = refine_pgt(pgt, spacing_mm, settings)
    if not mask.any():
        return Evidence(refined_pgt=refined, checks={s: () for s in STRUCTURES}, image_used=False)
    box = _box(mask)
    labels = mask[box]
    view = stack_view(labels, float(spacing_mm[0]))
    parts = [check_stack(view, spacing_mm, settings), check_topology(view, spacing_mm, settings)]
    image_used = False
    if image is not None:
        lo, hi = intensity_range(image)
        if hi > lo:
            cut = np.asarray(image[box], dtype=np.float32)
            parts.append(check_image(cut, labels, hi - lo, settings))
            parts[0] = _motion_cleared(parts[0], cut, view, hi - lo, settings)
            image_used = True
    checks = {s: tuple(c for part in parts for c in part[s]) for s in STRUCTURES}
    return Evidence(refined_pgt=refined, checks=checks, image_used=image_used)
