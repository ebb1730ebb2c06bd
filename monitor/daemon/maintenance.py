"""The maintenance thread: expired claims and dead workers' claims taken back, the artifacts folder
probed while it fails, stale temporary artifact files swept at start.

It runs beside the intake and the worker, so that a slow or blocked database call here never stops new
files from being taken in. Taking back claims skips rows another session holds locked (a peer frozen in
the middle of recording them, ``FOR UPDATE SKIP LOCKED``): what it had to leave is counted
(``cmr_monitor_reclaim_blocked_files``) and named by ``/readyz`` until the lock goes (PostgreSQL ends an
idle transaction's session after ``idle_in_transaction_session_timeout``) and the claim is taken back.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from monitor.daemon.artifacts import ArtifactsFolder
from monitor.daemon.config import DaemonConfig
from monitor.daemon.liveness import take_back_dead_work
from monitor.daemon.retry import DatabaseHealth
from monitor.store import DatabaseUnavailable, expired_claims, reclaim_expired
from monitor.telemetry import DaemonMetrics, LoopWatch

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Maintenance", "reclaim_interval_s"]

log = logging.getLogger(__name__)

#: Longest wait between two probes of a failing artifacts folder (seconds).
_PROBE_INTERVAL_S = 5.0


def reclaim_interval_s(config: DaemonConfig) -> float:
    """Seconds between two passes over expired claims: half a lease, at most a minute."""
    return min(config.lease_s / 2, 60.0)


class Maintenance(threading.Thread):
    """Takes back expired and dead workers' claims and probes a failing artifacts folder, until ``stop``.

    Args:
        config: lease, attempts and polling period.
        worker_id: this process's worker id (its own claims are never "dead").
        sessions: sessions on the results database.
        metrics: the daemon's metrics (``reclaim_blocked``, database call times).
        health: set when the database answers or fails.
        loops: where each pass is marked as a step of the ``maintenance`` loop.
        artifacts: the artifacts folder (swept at start, probed while failing).
        stop: set by ``Daemon.stop()``.
    """

    def __init__(
        self,
        *,
        config: DaemonConfig,
        worker_id: str,
        sessions: sessionmaker[Session],
        metrics: DaemonMetrics,
        health: DatabaseHealth,
        loops: LoopWatch,
        artifacts: ArtifactsFolder,
        stop: threading.Event,
    ) -> None:
        super().__init__(name="cmr-monitor-maintenance", daemon=True)
        self._config = config
        self._worker_id = worker_id
        self._sessions = sessions
        self._metrics = metrics
        self._health = health
        self._loops = loops
        self._artifacts = artifacts
        self._halt = stop
        self._lock = threading.Lock()
        self._blocked: tuple[int, float] | None = None

    @property
    def blocked(self) -> tuple[int, float] | None:
        """(expired claims left locked by another session, monotonic time first seen), or None."""
        with self._lock:
            return self._blocked

    def run(self) -> None:
        with self._loops.step("maintenance"):
            self._artifacts.sweep()
        interval_s = reclaim_interval_s(self._config)
        tick_s = min(interval_s, _PROBE_INTERVAL_S)
        next_reclaim = time.monotonic() + interval_s
        while not self._halt.wait(tick_s):
            try:
                with self._loops.step("maintenance"):
                    self._artifacts.probe()
                    if time.monotonic() >= next_reclaim:
                        next_reclaim = time.monotonic() + interval_s
                        self.take_back()
            except Exception as exc:  # a bug must not end the thread: the next pass tries again
                log.error(
                    "maintenance pass failed: %s", type(exc).__name__, extra={"action": "maintenance_error"}
                )
                log.debug("maintenance pass failed", exc_info=exc)

    def take_back(self) -> None:
        """One pass: expired claims back to the queue (or rejected after ``max_attempts``), then the
        claims of dead local workers; count what another session keeps locked."""
        max_attempts = self._config.max_attempts
        try:
            with self._sessions() as session, self._metrics.database_call("maintain"):
                reclaim_expired(session, max_attempts=max_attempts)
                left = expired_claims(session)
                take_back_dead_work(session, self._worker_id, max_attempts=max_attempts)
        except DatabaseUnavailable as exc:
            self._health.ok = False
            log.warning("maintenance skipped: %s", exc, extra={"action": "maintenance_failed"})
            return
        self._health.ok = True
        self._metrics.reclaim_blocked.set(left)
        with self._lock:
            before = self._blocked
            self._blocked = (left, before[1] if before else time.monotonic()) if left else None
        if left and before is None:
            log.warning(
                "%d expired claim(s) cannot be taken back: another session holds them locked (a frozen "
                "peer?); they return once its transaction ends",
                left,
                extra={"action": "reclaim_blocked", "files": left},
            )
        elif before is not None and not left:
            log.info("locked expired claims released", extra={"action": "reclaim_unblocked"})
