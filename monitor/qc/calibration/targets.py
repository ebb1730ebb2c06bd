"""The two calibrated targets and the space the models learn them in.

Dice is learned as ``log(1.01 - dice)`` (it piles up just under 1, where small differences matter) and
the Hausdorff distance as ``log1p(hd_mm)`` (a long right tail); both maps are monotone, so quantiles and
intervals carry over to the real scale unchanged. Pure numpy.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

__all__ = ["Target", "from_space", "to_space"]


class Target(StrEnum):
    """A real metric the calibration estimates."""

    DSC = "dsc"  #: real Dice (0-1)
    HD = "hd_mm"  #: real symmetric 3D Hausdorff distance, mm

    @property
    def increasing(self) -> bool:
        """Whether the learning space grows with the real value (Dice's map falls)."""
        return self is Target.HD


def to_space(target: Target, y: np.ndarray) -> np.ndarray:
    """Real values -> learning space (Dice clipped to [0, 1], HD to >= 0 mm)."""
    y = np.asarray(y, dtype=float)
    if target is Target.DSC:
        return np.log(1.01 - np.clip(y, 0.0, 1.0))
    return np.log1p(np.clip(y, 0.0, None))


def from_space(target: Target, t: np.ndarray) -> np.ndarray:
    """Learning space -> real values, clipped to the metric's range (Dice [0, 1], HD >= 0 mm)."""
    t = np.asarray(t, dtype=float)
    if target is Target.DSC:
        return np.clip(1.01 - np.exp(t), 0.0, 1.0)
    return np.clip(np.expm1(t), 0.0, None)
