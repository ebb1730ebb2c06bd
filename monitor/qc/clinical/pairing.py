"""ED and ES frames of one patient paired by case key and phase, never by arrival order.

Phases are the normalised spellings of ``monitor.io.layouts.normalise_phase`` (``ED``, ``ES``, or
``frameNN`` for another frame, which takes no part in the indices); the caller names them from file
names, sidecars or ACDC ``Info.cfg``. The result does not depend on the order the frames arrive in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["PHASES", "PhasePair", "pair_phases"]

T = TypeVar("T")

#: The phases the indices need.
PHASES: tuple[str, str] = ("ED", "ES")


@dataclass(frozen=True, slots=True, kw_only=True)
class PhasePair(Generic[T]):
    """The ED and ES items of one case; either may be missing (the patient then waits)."""

    case_key: str  #: normalised case key
    ed: T | None  #: end-diastolic item, or None while it has not arrived
    es: T | None  #: end-systolic item, or None while it has not arrived

    @property
    def complete(self) -> bool:
        """Both frames are here."""
        return self.ed is not None and self.es is not None

    @property
    def missing(self) -> tuple[str, ...]:
        """The phases still missing (``ED``, ``ES``), empty when complete."""
        return tuple(p for p, item in zip(PHASES, (self.ed, self.es), strict=True) if item is None)


def pair_phases(items: Iterable[tuple[str, str | None, T]]) -> list[PhasePair[T]]:
    """Group items by case key into ED/ES pairs.

    Args:
        items: (case key, phase, item); items whose phase is not ED or ES (None, ``frameNN``) are left
            out; a case with only such items does not appear.
    Returns: one pair per case with an ED or ES item, sorted by case key.
    Raises: ValueError when a case has two items of one phase (naming the case and the phase).
    """
    found: dict[str, dict[str, T]] = {}
    for case_key, phase, item in items:
        if phase not in PHASES:
            continue
        frames = found.setdefault(case_key, {})
        if phase in frames:
            raise ValueError(f"case {case_key!r} has two {phase} frames; a pair needs one of each")
        frames[phase] = item
    return [
        PhasePair(case_key=key, ed=frames.get("ED"), es=frames.get("ES"))
        for key, frames in sorted(found.items())
    ]
