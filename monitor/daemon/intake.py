"""The intake: from sightings of files to rows in the queue.

The intake loop (the thread that runs the daemon) hands every sighting of the watcher to ``Intake``.
A file is tracked until it is complete (``monitor.daemon.completion.CompletionTracker``: closed after writing, moved in, or its
size and mtime unchanged for ``stable_s`` seconds), then hashed, named and validated
(``monitor.io.examine``, shared with the batch backfill) and enqueued in the database; an invalid file is enqueued and
rejected at once. A file leaves the intake only once its row is committed: while the database is down
the intake holds its files and tries again with backoff. Files that were already enqueued (same size,
mtime and inode) are remembered so that repeated events and rescans cost nothing; a rescan forgets the
files that are gone, so that a file restored later (even with its old mtime) is taken again. The work
of each turn is a step of the ``intake`` loop of ``LoopWatch``, with progress after each file.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.daemon.completion import CompletionTracker
from monitor.daemon.config import DaemonConfig
from monitor.daemon.rejection import Rejections
from monitor.daemon.retry import BACKOFF_INITIAL_S, BACKOFF_MAX_S, DatabaseHealth
from monitor.daemon.watch import Sighting
from monitor.io.examine import TRANSIENT_REASONS, examine
from monitor.io.identity import MaskIdentity, find_root, is_candidate
from monitor.io.nifti import Limits
from monitor.qc.labels import LabelMap
from monitor.store import DatabaseUnavailable, LockTimeout, enqueue_file
from monitor.telemetry import DaemonMetrics, LoopWatch

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["TRANSIENT_REASONS", "Intake"]

#: What the intake remembers of a file it has enqueued: (size, mtime in ns, inode).
_StatKey = tuple[int, int, int]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    """A complete file, named and validated, waiting for its row."""

    size: int
    mtime_ns: int
    inode: int
    content_hash: str
    identity: MaskIdentity
    rejection: tuple[str, str] | None  #: (reason, detail) when the file is invalid
    received_at: datetime


class Intake:
    """Tracks the files under the watched folders until each one is complete and enqueued.

    Args:
        config: the daemon's configuration (patterns, stability, timeouts).
        roots: the watched folders, resolved.
        sessions: sessions on the results database.
        metrics: the daemon's metrics.
        rejections: records the rejection of an invalid file.
        health: set when the database answers or fails.
        loops: progress of the ``intake`` loop is reported here (after each file and folder).
        on_enqueued: called when a new file is ready for scoring (wakes the worker).
    """

    def __init__(
        self,
        config: DaemonConfig,
        *,
        roots: Sequence[Path],
        sessions: sessionmaker[Session],
        metrics: DaemonMetrics,
        rejections: Rejections,
        health: DatabaseHealth,
        label_map: LabelMap,
        limits: Limits,
        loops: LoopWatch | None = None,
        on_enqueued: Callable[[], None] = lambda: None,
    ) -> None:
        self._config = config
        self._roots = tuple(roots)
        self._sessions = sessions
        self._metrics = metrics
        self._rejections = rejections
        self._health = health
        self._label_map = label_map
        self._limits = limits
        self._on_enqueued = on_enqueued
        self._loops = loops if loops is not None else LoopWatch()
        self._tracker = CompletionTracker(
            stable_s=config.stable_s, incomplete_timeout_s=config.incomplete_timeout_s
        )
        self._done: dict[Path, _StatKey] = {}
        self._prepared: dict[Path, _Prepared] = {}
        self._locked: dict[Path, float] = {}  #: path -> its next wait after its row was found locked (s)
        self._blocked_until = 0.0
        self._backoff_s = BACKOFF_INITIAL_S

    @property
    def waiting(self) -> int:
        """Files seen but not yet complete or not yet enqueued."""
        return len(self._tracker)

    def wake_at(self) -> float:
        """Monotonic time of the next due check (not before the database backoff ends); inf when none."""
        next_check = self._tracker.next_check()
        return math.inf if next_check is None else max(next_check, self._blocked_until)

    # ------------------------------------------------------------------ sightings

    def backfill(self, known: dict[str, datetime]) -> int:
        """Track every file under the roots that the database does not know, or whose status changed
        (``ctime``) after its current content was received; ``known`` maps paths to that time. Returns
        the files known."""
        n_known = sum(self.scan(root, known) for root in self._roots)
        log.info(
            "backfill: %d file(s) already known, %d to check",
            n_known,
            len(self._tracker),
            extra={"action": "backfill", "known": n_known, "to_check": len(self._tracker)},
        )
        return n_known

    def rescan(self) -> None:
        """Look at every file under the roots again (events may have been missed)."""
        for root in self._roots:
            self.scan(root)

    def scan(self, folder: Path, known: dict[str, datetime] | None = None) -> int:
        """Observe every candidate file under ``folder`` and forget the remembered ones that are gone;
        return how many were already done.

        A file counts as known to the database when its ``ctime`` is not after the time its path's
        current content was received: a rewrite, a rename into place or a restore from a backup (which
        may keep the old ``mtime``) all set ``ctime`` to now, so such a file is hashed again.
        """
        done = 0
        seen: set[Path] = set()
        now, wall = time.monotonic(), time.time()
        for dirpath, dirnames, filenames in os.walk(folder, onerror=lambda exc: None):
            here = Path(dirpath)
            dirnames.sort()
            self._loops.progress("intake")
            for name in sorted(filenames):
                path = here / name
                if not self._is_candidate(path):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                seen.add(path)
                stat_key = _stat_key(st)
                if self._done.get(path) == stat_key:
                    done += 1
                    continue
                if known is not None and str(path) in known and st.st_ctime <= known[str(path)].timestamp():
                    self._done[path] = stat_key
                    done += 1
                    continue
                self._tracker.observe(path, st.st_size, st.st_mtime_ns, now=now, age_s=wall - st.st_mtime)
        for gone in [p for p in self._done if p not in seen and p.is_relative_to(folder)]:
            del self._done[gone]  # deleted without an event we saw: a restore must be taken again
        return done

    def on_sighting(self, sighting: Sighting) -> None:
        """Take one sighting of the watcher into account."""
        path = sighting.path
        if sighting.kind == "gone":
            self._forget(path)
            return
        if sighting.kind == "gone_dir":
            self._forget_under(path)
            return
        if sighting.kind == "dir":
            self.scan(path)
            return
        if not self._is_candidate(path):
            return
        try:
            st = path.stat()
        except OSError:
            self._forget(path)
            return
        if self._done.get(path) == _stat_key(st):
            return
        self._tracker.observe(
            path,
            st.st_size,
            st.st_mtime_ns,
            now=time.monotonic(),
            closed=sighting.kind in ("closed", "moved_in"),
            age_s=time.time() - st.st_mtime,
        )

    def _is_candidate(self, path: Path) -> bool:
        """True for a file under a watched folder whose name the patterns take."""
        root = find_root(path, self._roots)
        return root is not None and is_candidate(path, root, self._config.ingest)

    def _forget(self, path: Path) -> None:
        """Drop one file from the intake's memory (deleted, moved away or vanished)."""
        self._tracker.forget(path)
        self._done.pop(path, None)
        self._prepared.pop(path, None)
        self._locked.pop(path, None)

    def _forget_under(self, path: Path) -> None:
        """Drop ``path`` and everything below it from the intake's memory (deleted or moved away)."""
        self._tracker.forget_under(path)
        for table in (self._done, self._prepared, self._locked):
            for known in [p for p in table if p == path or p.is_relative_to(path)]:
                del table[known]

    # ------------------------------------------------------------------ complete files

    def check_due(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Check the files that are due (while the database is not in backoff and ``stop`` is False)."""
        now = time.monotonic()
        if now < self._blocked_until:
            return
        for path in self._tracker.due(now):
            if stop():
                return
            self._take(path)
            self._loops.progress("intake")
            if time.monotonic() < self._blocked_until:
                return

    def _take(self, path: Path) -> None:
        """Check one due file; enqueue it when complete (or rejected), defer it otherwise."""
        now = time.monotonic()
        try:
            st = path.stat()
        except OSError:
            self._forget(path)
            return
        if not self._tracker.matches(path, st.st_size, st.st_mtime_ns):
            self._tracker.observe(path, st.st_size, st.st_mtime_ns, now=now)
            return
        prepared = self._prepared.get(path)
        if prepared is None or (prepared.size, prepared.mtime_ns, prepared.inode) != _stat_key(st):
            prepared = self._prepare(path, st, now)
            if prepared is None:
                return
            self._prepared[path] = prepared
        if self._enqueue(path, prepared):
            self._prepared.pop(path, None)
            self._tracker.forget(path)
            self._done[path] = (prepared.size, prepared.mtime_ns, prepared.inode)

    def _prepare(self, path: Path, st: os.stat_result, now: float) -> _Prepared | None:
        """Hash, name and validate a complete file (``monitor.io.examine``); None when it is deferred
        (it may still be being written: it does not parse, its sidecar does not, or it cannot be read;
        or it changed while it was examined) or has vanished."""
        root = find_root(path, self._roots)
        assert root is not None  # tracked paths are under a root
        found = examine(
            path, root, st, ingest=self._config.ingest, label_map=self._label_map, limits=self._limits
        )
        if found is None:
            self._forget(path)
            return None
        if found.changed is not None:  # the hash and the validation may describe two contents
            log.debug("changed while being checked: %s", path)
            self._tracker.observe(path, *found.changed, now=time.monotonic())
            return None
        problem = found.problem
        if problem is not None and problem.transient and not self._tracker.expired(path, now):
            log.debug("not complete yet: %s (%s)", path, problem.reason)
            self._tracker.defer(path, now, max(self._config.stable_s, 1.0))
            return None
        return _Prepared(
            size=found.size,
            mtime_ns=found.mtime_ns,
            inode=found.inode,
            content_hash=found.content_hash,
            identity=found.identity,
            rejection=(problem.reason, problem.detail) if problem is not None else None,
            received_at=datetime.now(UTC),
        )

    def _enqueue(self, path: Path, prepared: _Prepared) -> bool:
        """Write the file's row (and its rejection); False when the database is down (retried later)."""
        identity = prepared.identity
        try:
            with self._sessions() as session:
                with self._metrics.database_call("enqueue"):
                    file_id, created = enqueue_file(
                        session,
                        path=str(path),
                        content_hash=prepared.content_hash,
                        case_key=identity.case_key,
                        phase=identity.phase,
                        segmenter_name=identity.segmenter_name,
                        segmenter_version=identity.segmenter_version,
                        site=identity.site,
                        scanner=identity.scanner,
                        image_path=identity.image_path,
                        received_at=prepared.received_at,
                    )
                self._log_received(file_id, created, path, identity)
                if prepared.rejection is not None:  # also when known: a rejection may have been lost
                    self._rejections.record(
                        session,
                        file_id,
                        *prepared.rejection,
                        path=path,
                        segmenter=(identity.segmenter_name, identity.segmenter_version),
                        blocking=False,
                    )
                elif created:
                    self._on_enqueued()
        except LockTimeout:  # this path's row is held by another session: hold this file only
            wait_s = self._locked.get(path, BACKOFF_INITIAL_S * 10)
            self._locked[path] = min(2 * wait_s, BACKOFF_MAX_S)
            self._metrics.transient_errors.labels(kind="database").inc()
            self._tracker.postpone(path, time.monotonic() + wait_s)
            log.warning(
                "a file's row is locked by another session (a frozen peer?); trying it again in %.0f s",
                wait_s,
                extra={"action": "retry", "kind": "lock"},
            )
            return False
        except DatabaseUnavailable as exc:
            self._health.ok = False
            self._metrics.transient_errors.labels(kind="database").inc()
            self._blocked_until = time.monotonic() + self._backoff_s
            log.warning(
                "database unavailable, holding %d file(s), retrying in %.1f s: %s",
                len(self._tracker),
                self._backoff_s,
                exc,
                extra={"action": "retry", "kind": "database"},
            )
            self._backoff_s = min(2 * self._backoff_s, BACKOFF_MAX_S)
            return False
        self._health.ok = True
        self._backoff_s = BACKOFF_INITIAL_S
        self._locked.pop(path, None)
        return True

    def _log_received(self, file_id: int, created: bool, path: Path, identity: MaskIdentity) -> None:
        if not created:
            log.debug("already known: %s (file %d)", path, file_id)
            return
        self._metrics.record_received(identity.segmenter_name, identity.segmenter_version)
        log.info(
            "received file %d (%s %s)",
            file_id,
            identity.segmenter_name,
            identity.segmenter_version,
            extra={"action": "received", "file_id": file_id},
        )
        log.debug("file %d is %s (case %s)", file_id, path, identity.case_key)


def _stat_key(st: os.stat_result) -> _StatKey:
    """What tells one version of a file from another without reading it: size, mtime, inode."""
    return st.st_size, st.st_mtime_ns, st.st_ino
