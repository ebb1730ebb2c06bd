"""Shared test helpers: synthetic cardiac phantoms as ``MaskVolume`` records and NIfTI files.

Thin wrappers around ``monitor.sim`` so that tests of other modules get realistic short-axis
masks (canonical labels 0 BG, 1 RV, 2 MYO, 3 LV; arrays [z, y, x]; spacing (dz, dy, dx) in mm) in one
line. Deterministic: the same seed gives the same volume.

    from tests.phantoms import phantom_volume, segmented_volume, write_phantom
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monitor.io.nifti import MaskVolume, save_labels
from monitor.qc.labels import ACDC, LabelMap
from monitor.sim import SEGMENTERS, make_patient

__all__ = ["phantom_volume", "segmented_volume", "write_phantom"]


def phantom_volume(seed: int = 0, phase: str = "ED", **overrides: object) -> MaskVolume:
    """A ground-truth-like phantom of one phase as a ``MaskVolume`` (affine diag(dx, dy, dz, 1)).

    Args:
        seed: patient seed; ED and ES of one seed share the geometry.
        phase: "ED" or "ES".
        overrides: ``PhantomGeometry`` fields, e.g. ``n_slices=8, shape_yx=(192, 192)``.
    """
    if phase not in ("ED", "ES"):
        raise ValueError(f"phase must be 'ED' or 'ES', got {phase!r}")
    ed, es = make_patient(np.random.default_rng(seed), **overrides)
    phantom = ed if phase == "ED" else es
    return MaskVolume(labels=phantom.labels, spacing_mm=phantom.spacing_mm, affine=phantom.affine)


def segmented_volume(seed: int = 0, segmenter: str = "poor", phase: str = "ED") -> tuple[MaskVolume, str]:
    """The phantom of ``seed`` corrupted by a simulated segmenter (``SEGMENTERS`` name).

    Returns: the corrupted volume (same geometry) and the segmenter's description of what it did.
    """
    gt = phantom_volume(seed, phase)
    labels, description = SEGMENTERS[segmenter](gt.labels, np.random.default_rng(seed), gt.spacing_mm)
    return MaskVolume(labels=labels, spacing_mm=gt.spacing_mm, affine=gt.affine), description


def write_phantom(path: Path | str, seed: int = 0, phase: str = "ED", label_map: LabelMap = ACDC) -> Path:
    """Write the phantom of ``seed`` as a NIfTI mask with ``label_map`` values; return the path."""
    volume = phantom_volume(seed, phase)
    return save_labels(path, volume.labels, volume.affine, label_map=label_map)
