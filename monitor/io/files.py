"""File identity: the SHA-256 of a file's bytes (the queue's content hash, a checkpoint's identity)."""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["file_sha256"]


def file_sha256(path: Path | str) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks.

    Raises: OSError (FileNotFoundError, PermissionError, ...) when the file cannot be read.
    """
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
