"""Failure families: seeded, graded edits of a ground-truth mask that repeat what real segmenters get wrong.

Each family is one pure function of a label volume (uint8 ``[z, y, x]``, canonical labels 0 BG, 1 RV,
2 MYO, 3 LV; spacing ``(dz, dy, dx)`` in mm) and a strength, registered in ``FAMILIES`` with its
strengths and whether it counts as *clearly wrong* (issue 13: two basal slices missing, a displaced
slice, a swap, a stray or far component, a broken myocardium, a 2-pixel uniform error with the MR image
present). Most of these mistakes look like a plausible heart inside their own slice, so a 2D autoencoder
reconstructs them as they are; they are the test set of the 3D evidence stage.

Stack orientation is read from the mask, never assumed: the *heart slices* are those holding any label,
and the *basal* end of them is the one with the larger LV + MYO area (ACDC stores the base first, other
sites do not). An edit that cannot be made on a given mask (no slice to add, no empty slice for a
stray component) raises ``NotApplicable``; callers skip that volume and say so.

Example::

    rng = np.random.default_rng(0)
    edited = apply_failure(gt, spacing_mm, "missing_basal", 2, rng)
"""

from monitor.sim.failures.components import (
    attached_leak,
    far_component,
    stray_in_empty_slice,
    stray_in_heart_slice,
)
from monitor.sim.failures.geometry import NotApplicable, heart_slices_base_to_apex
from monitor.sim.failures.inplane import (
    broken_myocardium,
    displaced_slice,
    lv_holes,
    swapped_slices,
    uniform_dilation,
    uniform_erosion,
)
from monitor.sim.failures.registry import FAMILIES, FailureFamily, apply_failure, clearly_wrong, set_name
from monitor.sim.failures.stack import (
    extra_apical_slices,
    extra_basal_slices,
    missing_apical_slices,
    missing_basal_slices,
    missing_rv,
    rv_short,
)

__all__ = [
    "FAMILIES",
    "FailureFamily",
    "NotApplicable",
    "apply_failure",
    "attached_leak",
    "broken_myocardium",
    "clearly_wrong",
    "displaced_slice",
    "extra_apical_slices",
    "extra_basal_slices",
    "far_component",
    "heart_slices_base_to_apex",
    "lv_holes",
    "missing_apical_slices",
    "missing_basal_slices",
    "missing_rv",
    "rv_short",
    "set_name",
    "stray_in_empty_slice",
    "stray_in_heart_slice",
    "swapped_slices",
    "uniform_dilation",
    "uniform_erosion",
]
