"""Errors raised by the store, all subclasses of ``monitor.errors.StoreError``."""

from __future__ import annotations

from monitor.errors import StoreError

__all__ = ["DatabaseUnavailable", "FileStateError", "LockTimeout"]


class DatabaseUnavailable(StoreError):
    """The database cannot be reached or is busy; the operation may succeed if retried later."""


class LockTimeout(DatabaseUnavailable):
    """A statement waited longer than ``lock_timeout`` for a lock that another session holds (a frozen
    peer, a migration): the database answers, but this row or path is held; retry it later."""


class FileStateError(StoreError):
    """The file does not exist or is not in a state that allows the change.

    Attributes:
        file_id: the file asked for.
        status: its status (``"scored"``, ...), or None when there is no such file.
    """

    def __init__(self, file_id: int, status: str | None, detail: str) -> None:
        self.file_id = file_id
        self.status = status
        super().__init__(detail)
