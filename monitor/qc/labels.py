"""Label maps and structure names.

Internally every mask uses the *canonical* label order, which is also the autoencoder's channel order:
0 background, 1 RV cavity, 2 LV myocardium, 3 LV cavity (the ACDC convention). Datasets that label
differently (M&Ms: 1 LV, 2 MYO, 3 RV) are converted on load and back on write through a ``LabelMap``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

__all__ = [
    "ACDC",
    "CANONICAL_CHANNEL",
    "LABEL_MAPS",
    "MNMS",
    "N_CHANNELS",
    "STRUCTURES",
    "LabelMap",
    "Structure",
    "get_label_map",
]


class Structure(StrEnum):
    """Cardiac structures scored by the monitor."""

    LV = "LV"  #: left-ventricular blood pool (cavity)
    RV = "RV"  #: right-ventricular blood pool (cavity)
    MYO = "MYO"  #: left-ventricular myocardium


#: Structures in reporting order.
STRUCTURES: tuple[Structure, ...] = (Structure.LV, Structure.RV, Structure.MYO)
#: Canonical label value (= model channel) of each structure.
CANONICAL_CHANNEL: dict[Structure, int] = {Structure.RV: 1, Structure.MYO: 2, Structure.LV: 3}
#: Number of model channels (background + 3 structures).
N_CHANNELS = 4


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelMap:
    """Which integer value a dataset uses for each structure (0 is always background)."""

    name: str  #: short name used in configuration, e.g. ``"acdc"``
    labels: dict[Structure, int]  #: structure -> label value in the files

    def __post_init__(self) -> None:
        values = sorted(self.labels.values())
        if set(self.labels) != set(STRUCTURES):
            raise ValueError(f"label map {self.name!r} must name LV, RV and MYO, got {sorted(self.labels)}")
        if len(set(values)) != 3 or 0 in values or min(values) < 0 or max(values) > 255:
            raise ValueError(f"label map {self.name!r} needs three distinct values in 1..255, got {values}")

    @property
    def allowed_values(self) -> frozenset[int]:
        """Label values a valid mask may contain (background included)."""
        return frozenset({0, *self.labels.values()})

    def _lut_to_canonical(self) -> np.ndarray:
        lut = np.zeros(256, dtype=np.uint8)
        for structure, value in self.labels.items():
            lut[value] = CANONICAL_CHANNEL[structure]
        return lut

    def to_canonical(self, labels: np.ndarray) -> np.ndarray:
        """Map file labels (uint8, values in ``allowed_values``) to canonical labels (uint8)."""
        return self._lut_to_canonical()[labels]

    def from_canonical(self, labels: np.ndarray) -> np.ndarray:
        """Map canonical labels (uint8 0..3) back to this dataset's values (uint8)."""
        lut = np.zeros(N_CHANNELS, dtype=np.uint8)
        for structure, value in self.labels.items():
            lut[CANONICAL_CHANNEL[structure]] = value
        return lut[labels]


ACDC = LabelMap(name="acdc", labels={Structure.RV: 1, Structure.MYO: 2, Structure.LV: 3})
MNMS = LabelMap(name="mnms", labels={Structure.LV: 1, Structure.MYO: 2, Structure.RV: 3})
LABEL_MAPS: dict[str, LabelMap] = {m.name: m for m in (ACDC, MNMS)}


def get_label_map(name_or_spec: str) -> LabelMap:
    """Return a label map by name (``acdc``, ``mnms``) or from a spec such as ``"LV=1,MYO=2,RV=3"``.

    Raises: ValueError naming the known maps when the name is unknown or the spec is malformed.
    """
    key = name_or_spec.strip().lower()
    if key in LABEL_MAPS:
        return LABEL_MAPS[key]
    if "=" in key:
        try:
            pairs = dict(item.split("=") for item in key.replace(" ", "").split(","))
            labels = {Structure(k.upper()): int(v) for k, v in pairs.items()}
        except ValueError as exc:
            raise ValueError(
                f"cannot parse label map spec {name_or_spec!r}: expected e.g. 'LV=1,MYO=2,RV=3'"
            ) from exc
        return LabelMap(name=key, labels=labels)
    raise ValueError(f"unknown label map {name_or_spec!r}; known: {sorted(LABEL_MAPS)} or 'LV=a,MYO=b,RV=c'")
