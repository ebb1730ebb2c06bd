"""Helpers of the simulation tests: label values and small array queries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

RV, MYO, LV = 1, 2, 3
SEEDS = range(8)
ACDC_DEV_METRICS = Path("/work/shared/data/acdc-dev/predictions/tiramisu/metrics.csv")


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def occupied_slices(labels: np.ndarray) -> np.ndarray:
    return np.flatnonzero(labels.any(axis=(1, 2)))


def mid_slice(labels: np.ndarray) -> int:
    occupied = occupied_slices(labels)
    return int(occupied[len(occupied) // 2])


def grow(mask: np.ndarray) -> np.ndarray:
    """One-voxel in-plane (4-connected) dilation of a 2D mask."""
    return ndimage.binary_dilation(mask, structure=ndimage.generate_binary_structure(2, 1))
