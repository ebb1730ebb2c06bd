"""Exception hierarchy. Every refusal carries a stable ``reason`` code and a human-readable detail."""

from __future__ import annotations

from pathlib import Path

__all__ = ["CalibrationError", "CheckpointError", "InvalidMask", "MonitorError", "StoreError"]


class MonitorError(Exception):
    """A cmr-monitor error."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or (self.__doc__ or "").strip())
        self.detail = detail or (self.__doc__ or "").strip()


class _Refusal(MonitorError):
    """A refusal of a file: a stable ``reason`` code, a detail and the file, shown as
    ``name: detail [reason]``."""

    def __init__(self, reason: str, detail: str, path: Path | str | None = None) -> None:
        self.reason = reason
        self.path = Path(path) if path is not None else None
        super().__init__(detail)

    def __str__(self) -> str:
        where = f"{self.path.name}: " if self.path is not None else ""
        return f"{where}{self.detail} [{self.reason}]"


class InvalidMask(_Refusal, ValueError):
    """The file is not a usable segmentation mask.

    Attributes:
        reason: stable code, e.g. ``"not_nifti"``, ``"bad_ndim"``, ``"labels_outside_map"``.
        path: the file, when known.
        detail: one sentence that names what was expected and what arrived.
    """


class CheckpointError(MonitorError):
    """The checkpoint cannot be used."""


class CalibrationError(_Refusal):
    """The calibration file cannot be used.

    Attributes:
        reason: stable code: ``not_found``, ``unreadable``, ``too_large``, ``untrusted_types``,
            ``checksum_mismatch``, ``bad_format``.
        path: the file, when known.
    """


class StoreError(MonitorError):
    """The results database cannot be used."""
