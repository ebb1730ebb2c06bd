"""The flag levels of a verdict: ``ok`` < ``suspicious`` < ``erroneous``."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["FlagLevel"]


class FlagLevel(StrEnum):
    """Quality-control verdict for a structure or a volume, in increasing severity."""

    OK = "ok"
    SUSPICIOUS = "suspicious"  #: pHD above or pDSC below the configured thresholds
    ERRONEOUS = "erroneous"  #: structure missing from the mask or vanished from the pseudo ground truth

    @property
    def severity(self) -> int:
        """0 ok, 1 suspicious, 2 erroneous (for sorting and taking the worst)."""
        return _SEVERITY[self]


_SEVERITY = {FlagLevel.OK: 0, FlagLevel.SUSPICIOUS: 1, FlagLevel.ERRONEOUS: 2}
