"""Simulated segmenters: named recipes of corruptions of graded severity (good, fair, poor, failing).

Each recipe draws its corruptions (``monitor.sim.corruptions``) from the generator it is given and
describes what it did (``op=params;...``), the ``perturbation`` column of a simulated dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

import monitor.sim.corruptions as edit
from monitor.qc.labels import CANONICAL_CHANNEL, STRUCTURES, Structure
from monitor.sim.phantoms import StructureLike, as_label_volume, label_value
from monitor.typing import Spacing3

__all__ = ["DEFAULT_SEGMENTERS", "SEGMENTERS", "SegmenterFn", "SimulatedSegmenter"]

SegmenterFn = Callable[[np.ndarray, np.random.Generator, Spacing3], tuple[np.ndarray, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatedSegmenter:
    """A named recipe of corruptions of graded severity.

    Calling it with ``(labels, rng, spacing_mm)`` returns ``(corrupted labels, description)``; the
    description (``op=params;...``, no commas) is what metrics.csv stores as ``perturbation``.
    """

    name: str  #: folder name under ``predictions/``
    summary: str  #: one line on what it does
    apply: SegmenterFn  #: the recipe

    def __call__(
        self, labels: np.ndarray, rng: np.random.Generator, spacing_mm: Spacing3
    ) -> tuple[np.ndarray, str]:
        return self.apply(as_label_volume(labels), rng, spacing_mm)


def _present(labels: np.ndarray) -> list[Structure]:
    counts = np.bincount(labels.ravel(), minlength=4)
    return [s for s in STRUCTURES if counts[CANONICAL_CHANNEL[s]] > 0]


def _slices_with(labels: np.ndarray, structure: StructureLike | None = None) -> np.ndarray:
    mask = labels > 0 if structure is None else labels == label_value(structure)
    return np.flatnonzero(mask.any(axis=(1, 2)))


def _pick(rng: np.random.Generator, options: Sequence[Structure]) -> Structure:
    return options[int(rng.integers(len(options)))]


def _fmt_slices(slices: Sequence[int]) -> str:
    return "+".join(str(int(z)) for z in slices)


def _noise(
    labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3, lo: float, hi: float, steps: list[str]
) -> np.ndarray:
    """Boundary noise with an RMS displacement drawn from [lo, hi] mm."""
    amplitude = float(rng.uniform(lo, hi))
    steps.append(f"noise={amplitude:.2f}mm")
    return edit.perturb_boundaries(
        labels, rng, spacing, amplitude_mm=amplitude, smoothness_mm=float(rng.uniform(6, 12))
    )


def _resize(labels: np.ndarray, rng: np.random.Generator, max_voxels: int, steps: list[str]) -> np.ndarray:
    """Erode or dilate one present structure by 1..max_voxels."""
    structure = _pick(rng, _present(labels) or list(STRUCTURES))
    k = int(rng.integers(1, max_voxels + 1))
    if rng.random() < 0.5:
        steps.append(f"erode={structure}:{k}")
        return edit.erode_structure(labels, structure, k)
    steps.append(f"dilate={structure}:{k}")
    return edit.dilate_structure(labels, structure, k)


def _drop(
    labels: np.ndarray, rng: np.random.Generator, n: int, steps: list[str], *, ends_only: bool, whole: bool
) -> np.ndarray:
    """Erase one structure (or whole slices) on up to n occupied slices (basal/apical only if ends_only)."""
    structure = None if whole else _pick(rng, _present(labels) or list(STRUCTURES))
    candidates = _slices_with(labels, structure)
    if ends_only:
        candidates = candidates[[0, -1]] if len(candidates) > 1 else candidates
    if len(candidates) == 0:
        return labels
    chosen = np.sort(rng.choice(candidates, size=min(n, len(candidates)), replace=False))
    steps.append(f"drop_slices={structure or 'ALL'}:{_fmt_slices(chosen)}")
    return edit.drop_slices(labels, chosen, structure)


def _segment_good(labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 0.6, 1.1, steps)
    if rng.random() < 0.3:
        out = _resize(out, rng, 1, steps)
    return out, ";".join(steps)


def _segment_fair(labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 1.2, 2.0, steps)
    out = _resize(out, rng, 2, steps)
    if rng.random() < 0.5:
        out = _drop(out, rng, 1, steps, ends_only=True, whole=False)
    if rng.random() < 0.3:
        structure = _pick(rng, [Structure.LV, Structure.RV])
        steps.append(f"holes={structure}:2x4mm")
        out = edit.punch_holes(out, rng, spacing, structure=structure, n_holes=2, radius_mm=4.0)
    return out, ";".join(steps)


def _segment_poor(labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 2.5, 3.5, steps)
    for _ in range(int(rng.integers(1, 3))):
        out = _resize(out, rng, 3, steps)
    out = _drop(out, rng, int(rng.integers(1, 4)), steps, ends_only=False, whole=rng.random() < 0.3)
    if rng.random() < 0.6:
        n = int(rng.integers(1, 4))
        steps.append(f"blobs={n}")
        out = edit.add_spurious_blobs(out, rng, spacing, n_blobs=n, radius_mm=float(rng.uniform(4, 9)))
    if rng.random() < 0.5:
        structure = _pick(rng, [Structure.LV, Structure.RV, Structure.MYO])
        steps.append(f"holes={structure}:4x5mm")
        out = edit.punch_holes(out, rng, spacing, structure=structure, n_holes=4, radius_mm=5.0)
    if rng.random() < 0.3:
        both = np.intersect1d(_slices_with(out, Structure.LV), _slices_with(out, Structure.RV))
        if len(both):
            chosen = np.sort(rng.choice(both, size=min(2, len(both)), replace=False))
            steps.append(f"swap=LV-RV:{_fmt_slices(chosen)}")
            out = edit.swap_labels(out, Structure.LV, Structure.RV, chosen)
    return out, ";".join(steps)


def _segment_failing(
    labels: np.ndarray, rng: np.random.Generator, spacing: Spacing3
) -> tuple[np.ndarray, str]:
    steps: list[str] = []
    out = _noise(labels, rng, spacing, 3.0, 5.0, steps)
    mode = rng.choice(["missing", "swap", "slices", "shrink"], p=[0.5, 0.2, 0.15, 0.15])
    if mode == "missing":
        structure = STRUCTURES[int(rng.choice(3, p=[0.25, 0.5, 0.25]))]
        steps.append(f"missing={structure}")
        out = edit.remove_structure(out, structure)
    elif mode == "swap":
        both = np.intersect1d(_slices_with(out, Structure.LV), _slices_with(out, Structure.RV))
        chosen = (
            np.sort(rng.choice(both, size=max(len(both) * 3 // 4, 1), replace=False)) if len(both) else both
        )
        steps.append(f"swap=LV-RV:{_fmt_slices(chosen)}")
        out = edit.swap_labels(out, Structure.LV, Structure.RV, chosen)
    elif mode == "slices":
        occupied = _slices_with(out)
        chosen = np.sort(rng.choice(occupied, size=(len(occupied) + 1) // 2, replace=False))
        steps.append(f"drop_slices=ALL:{_fmt_slices(chosen)}")
        out = edit.drop_slices(out, chosen)
    else:
        structure = _pick(rng, [Structure.LV, Structure.RV])
        steps.append(f"erode={structure}:6;dilate=MYO:2")
        out = edit.dilate_structure(edit.erode_structure(out, structure, 6), Structure.MYO, 2)
    out = _resize(out, rng, 3, steps)
    n = int(rng.integers(2, 5))
    steps.append(f"blobs={n}")
    out = edit.add_spurious_blobs(out, rng, spacing, n_blobs=n, radius_mm=float(rng.uniform(5, 12)))
    return out, ";".join(steps)


#: Simulated segmenters by name, best first.
SEGMENTERS: dict[str, SimulatedSegmenter] = {
    s.name: s
    for s in (
        SimulatedSegmenter(
            name="good",
            summary="sub-voxel smooth boundary noise, sometimes a 1-voxel erosion or dilation",
            apply=_segment_good,
        ),
        SimulatedSegmenter(
            name="fair",
            summary="1-2 mm boundary noise, 1-2 voxel erosion/dilation, maybe a missed end slice or holes",
            apply=_segment_fair,
        ),
        SimulatedSegmenter(
            name="poor",
            summary="3 mm boundary noise, up to 3-voxel erosion/dilation, missed slices, blobs, holes, swaps",
            apply=_segment_poor,
        ),
        SimulatedSegmenter(
            name="failing",
            summary="heavy noise plus a missing structure (half the cases), LV/RV swap, lost slices or "
            "collapsed cavity, and blobs",
            apply=_segment_failing,
        ),
    )
}
#: Segmenters written by ``write_dataset`` by default.
DEFAULT_SEGMENTERS: tuple[str, ...] = tuple(SEGMENTERS)
