"""The registry of failure families: names, strengths, the clearly-wrong subset, ``apply_failure``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from monitor.sim.failures import components, inplane, stack
from monitor.sim.phantoms import as_label_volume
from monitor.typing import Spacing3

__all__ = ["FAMILIES", "Edit", "FailureFamily", "apply_failure", "clearly_wrong", "set_name"]

#: edit(labels, spacing_mm, rng, strength) -> edited labels
Edit = Callable[[np.ndarray, Spacing3, np.random.Generator, float], np.ndarray]


@dataclass(frozen=True, slots=True, kw_only=True)
class FailureFamily:
    """One kind of segmentation failure, at graded strengths."""

    name: str  #: stable identifier, used in folder and segmenter names
    title: str  #: one line for a person
    unit: str  #: unit of the strength: "slices", "mm", "px" or "" (a single strength)
    strengths: tuple[float, ...]  #: the strengths built, weakest first
    edit: Edit  #: the edit (raises ``NotApplicable``)
    clearly_wrong_from: float | None = None  #: smallest strength that is clearly wrong (None: never)
    needs_image: bool = False  #: clearly wrong only with the MR image (a mask alone cannot tell)

    def clearly_wrong(self, strength: float, *, image: bool = True) -> bool:
        """Whether this family at ``strength`` is in the issue's clearly-wrong subset."""
        if self.clearly_wrong_from is None or strength < self.clearly_wrong_from:
            return False
        return image or not self.needs_image


def _family(
    name: str, title: str, unit: str, strengths: tuple[float, ...], edit: Edit, **kw: object
) -> FailureFamily:
    return FailureFamily(name=name, title=title, unit=unit, strengths=strengths, edit=edit, **kw)  # type: ignore[arg-type]


def _count(edit: Callable[[np.ndarray, int], np.ndarray]) -> Edit:
    """``edit(labels, n)`` as an ``Edit`` whose strength is the whole number ``n`` (slices or px)."""
    return lambda labels, spacing_mm, rng, strength: edit(labels, int(strength))


def _drawn_count(edit: Callable[[np.ndarray, np.random.Generator, int], np.ndarray]) -> Edit:
    """``edit(labels, rng, n)`` as an ``Edit`` whose strength is the whole number ``n`` (slices or px)."""
    return lambda labels, spacing_mm, rng, strength: edit(labels, rng, int(strength))


#: Every family by name, in the order of the report.
FAMILIES: dict[str, FailureFamily] = {
    f.name: f
    for f in (
        _family(
            "missing_basal",
            "basal slices missing",
            "slices",
            (1, 2, 3),
            _count(stack.missing_basal_slices),
            clearly_wrong_from=2,
        ),
        _family(
            "missing_apical",
            "apical slices missing",
            "slices",
            (1, 2, 3),
            _count(stack.missing_apical_slices),
        ),
        _family("rv_short", "RV stops early at the apex", "slices", (1, 2, 3), _count(stack.rv_short)),
        _family("missing_rv", "RV missing", "", (1,), lambda m, s, r, k: stack.missing_rv(m)),
        _family(
            "extra_basal",
            "LV leaking into the atrium past the base",
            "slices",
            (1, 2),
            _count(stack.extra_basal_slices),
        ),
        _family("extra_apical", "slices past the apex", "slices", (1, 2), _count(stack.extra_apical_slices)),
        _family(
            "stray_heart_slice",
            "stray component beside the heart",
            "mm",
            (3, 6, 10),
            components.stray_in_heart_slice,
            clearly_wrong_from=3,
        ),
        _family(
            "stray_empty_slice",
            "stray component on a slice without heart",
            "mm",
            (3, 6, 10),
            components.stray_in_empty_slice,
            clearly_wrong_from=3,
        ),
        _family(
            "far_component",
            "component far from the heart",
            "mm",
            (3, 6, 10),
            components.far_component,
            clearly_wrong_from=3,
        ),
        _family(
            "attached_leak", "extra area attached to the heart", "mm", (5, 10, 15), components.attached_leak
        ),
        _family(
            "displaced_slice",
            "one slice displaced in-plane",
            "mm",
            (5, 10, 15),
            inplane.displaced_slice,
            clearly_wrong_from=10,
        ),
        _family(
            "swapped_slices",
            "RV and LV swapped",
            "slices",
            (1, 2),
            _drawn_count(inplane.swapped_slices),
            clearly_wrong_from=1,
        ),
        _family(
            "broken_myocardium",
            "myocardial ring broken",
            "px",
            (2, 4, 8),
            _drawn_count(inplane.broken_myocardium),
            clearly_wrong_from=2,
        ),
        _family(
            "uniform_dilation",
            "every contour out (over-segmentation)",
            "px",
            (1, 2, 3),
            _count(inplane.uniform_dilation),
            clearly_wrong_from=2,
            needs_image=True,
        ),
        _family(
            "uniform_erosion",
            "every contour in (under-segmentation)",
            "px",
            (1, 2, 3),
            _count(inplane.uniform_erosion),
            clearly_wrong_from=2,
            needs_image=True,
        ),
        _family("lv_holes", "holes in the LV cavity", "mm", (2, 4, 6), inplane.lv_holes),
    )
}


def set_name(family: str, strength: float) -> str:
    """The name of one family at one strength, e.g. ``missing_basal-2`` (a segmenter name in reports)."""
    return f"{family}-{strength:g}"


def clearly_wrong(family: str, strength: float, *, image: bool = True) -> bool:
    """Whether ``family`` at ``strength`` is in the clearly-wrong subset (``FailureFamily.clearly_wrong``).

    Raises: KeyError for an unknown family.
    """
    return FAMILIES[family].clearly_wrong(strength, image=image)


def apply_failure(
    labels: np.ndarray, spacing_mm: Spacing3, family: str, strength: float, rng: np.random.Generator
) -> np.ndarray:
    """One family's edit of ``labels`` at ``strength`` (a new array; ``labels`` is not changed).

    Args:
        labels: uint8 [z, y, x] canonical labels (a ground-truth mask).
        spacing_mm: (dz, dy, dx) in mm.
        family: a key of ``FAMILIES``.
        strength: in the family's unit (slices, mm or px).
        rng: random generator (slice, direction, position draws); the same state gives the same edit.
    Returns: uint8 [z, y, x].
    Raises: KeyError for an unknown family; NotApplicable when the edit cannot be made on this mask.
    """
    if family not in FAMILIES:
        raise KeyError(f"unknown failure family {family!r}; expected one of {', '.join(FAMILIES)}")
    return FAMILIES[family].edit(as_label_volume(labels), spacing_mm, rng, strength)
