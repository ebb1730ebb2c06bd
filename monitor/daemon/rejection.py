"""Rejected files: the rejection recorded (and counted), and the file moved to quarantine.

Shared by the intake (a file that is invalid when it is complete) and the worker (a file that cannot
be scored). Rejection reasons are stable codes (``InvalidMask.reason`` and the ones below).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from monitor.daemon.retry import Retry
from monitor.io.examine import REASON_BAD_NAME
from monitor.io.identity import find_root, sidecar_paths
from monitor.io.layouts import mask_stem
from monitor.store import REJECTION_CONTENT_CHANGED, REJECTION_MISSING, FileStateError, record_rejection
from monitor.telemetry import DaemonMetrics

__all__ = ["REASON_BAD_NAME", "REASON_CHANGED", "REASON_SCORING_FAILED", "Rejections"]

log = logging.getLogger(__name__)

#: The file changed after it was received (its new content is queued anew; if the old content comes
#: back to the path, its row is queued again: ``monitor.store.RETURNING_REASONS``).
REASON_CHANGED = REJECTION_CONTENT_CHANGED
#: The scorer failed on the file.
REASON_SCORING_FAILED = "scoring_failed"
#: Rejections that say nothing bad about the file at the path now: it is not moved to quarantine.
_NOT_QUARANTINED = frozenset({REJECTION_MISSING, REASON_CHANGED, REASON_SCORING_FAILED})


class Rejections:
    """Records rejections and quarantines the rejected files.

    Args:
        quarantine_dir: where rejected files go (keeping their path below the watched folder); None
            leaves them where they are.
        roots: the watched folders (resolved).
        metrics: counts the rejections by reason.
        retry: retries the database write of a blocking rejection.
    """

    def __init__(
        self, *, quarantine_dir: Path | None, roots: Sequence[Path], metrics: DaemonMetrics, retry: Retry
    ) -> None:
        self._quarantine_dir = quarantine_dir
        self._roots = tuple(roots)
        self._metrics = metrics
        self._retry = retry

    def record(
        self,
        session: Session,
        file_id: int,
        reason: str,
        detail: str,
        *,
        path: Path,
        segmenter: tuple[str, str],
        blocking: bool = True,
    ) -> bool:
        """Mark a file rejected (and quarantine it); False when it was already finished by someone else.

        Args:
            segmenter: (name, version), labels the rejection in the metrics.
            blocking: retry while the database is down (the worker); else raise DatabaseUnavailable
                (the intake, which holds the file and tries again later).
        """
        reason = reason[:64]
        try:
            if blocking:
                self._retry(
                    "database", lambda: record_rejection(session, file_id, reason, detail), operation="reject"
                )
            else:
                with self._metrics.database_call("reject"):
                    record_rejection(session, file_id, reason, detail)
        except FileStateError:  # already finished (by us before, or by another daemon)
            return False
        self._metrics.record_rejected(*segmenter, reason)
        log.warning(
            "rejected file %d: %s",
            file_id,
            reason,
            extra={"action": "rejected", "file_id": file_id, "reason": reason},
        )
        log.debug("file %d (%s) rejected: %s", file_id, path, detail)
        if self._quarantine_dir is not None and reason not in _NOT_QUARANTINED:
            self._quarantine(file_id, path, self._quarantine_dir)
        return True

    def _quarantine(self, file_id: int, path: Path, quarantine_dir: Path) -> None:
        """Move a rejected file (and its sidecar) under the quarantine folder, keeping its relative path."""
        root = find_root(path, self._roots)
        relative = path.relative_to(root) if root is not None else Path(path.name)
        target = quarantine_dir / relative
        n = 0
        while target.exists() or target.is_symlink():
            n += 1
            name = relative.name
            stem, suffix = mask_stem(name), name[len(mask_stem(name)) :]
            target = quarantine_dir / relative.parent / f"{stem}.{n}{suffix}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            for sidecar in sidecar_paths(path):
                if sidecar.exists():
                    shutil.move(sidecar, target.with_name(target.name + ".json"))
        except OSError as exc:
            log.warning(
                "could not quarantine file %d: %s",
                file_id,
                type(exc).__name__,
                extra={"action": "quarantine_failed", "file_id": file_id},
            )
            return
        log.info("quarantined file %d", file_id, extra={"action": "quarantined", "file_id": file_id})
