"""Gauges of the work queue read from the database at scrape time (``QueueCollector``).

Reading the database rather than counting in memory makes them right after a restart, and the same
whichever daemon is asked (several may share one PostgreSQL queue).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from monitor.store.queue import QueueState

__all__ = ["QUEUE_METRICS", "QueueCollector"]

log = logging.getLogger(__name__)

#: Names of the gauges that ``QueueCollector`` reads from the database.
QUEUE_METRICS: tuple[str, ...] = (
    "cmr_monitor_queue_files",
    "cmr_monitor_queue_oldest_pending_timestamp_seconds",
    "cmr_monitor_last_scored_timestamp_seconds",
    "cmr_monitor_database_up",
)


class QueueCollector(Collector):
    """Gauges of the work queue read from the database when scraped (at most once per ``max_age_s``).

    Exposes ``cmr_monitor_queue_files{status="pending"|"scoring"}``,
    ``cmr_monitor_queue_oldest_pending_timestamp_seconds`` and
    ``cmr_monitor_last_scored_timestamp_seconds`` (Unix time; absent while there is no such file), and
    ``cmr_monitor_database_up`` (1 when the last read succeeded; the queue gauges are absent when it
    did not). Reading the database rather than counting in memory makes them right after a restart.

    Args:
        read: returns the current ``monitor.store.queue.QueueState``; any exception means the database is unavailable.
        max_age_s: a snapshot younger than this is served again instead of asking the database.
    """

    def __init__(self, read: Callable[[], QueueState], *, max_age_s: float = 1.0) -> None:
        if max_age_s < 0:
            raise ValueError(f"max_age_s must be >= 0 seconds, got {max_age_s}")
        self._read = read
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._cached: tuple[float, QueueState | None] | None = None
        self._failing = False

    def describe(self) -> Iterator[Metric]:
        """The metric families without samples (so that registering does not query the database)."""
        yield from self._families(None, samples=False)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(self._snapshot(), samples=True)

    def _snapshot(self) -> QueueState | None:
        with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._max_age_s:
                return self._cached[1]
            try:
                snapshot: QueueState | None = self._read()
            except Exception as exc:  # a scrape must answer even when the database does not
                snapshot = None
                if not self._failing:
                    log.warning(
                        "queue gauges unavailable: %s",
                        type(exc).__name__,
                        extra={"action": "queue_gauges_failed"},
                    )
                self._failing = True
            else:
                self._failing = False
            self._cached = (time.monotonic(), snapshot)
            return snapshot

    @staticmethod
    def _families(snapshot: QueueState | None, *, samples: bool) -> Iterator[Metric]:
        queue = GaugeMetricFamily(
            "cmr_monitor_queue_files",
            "Files in the work queue (database), by status: pending or scoring",
            labels=["status"],
        )
        oldest = GaugeMetricFamily(
            "cmr_monitor_queue_oldest_pending_timestamp_seconds",
            "Unix time at which the oldest pending file was received (absent when none is pending)",
        )
        last = GaugeMetricFamily(
            "cmr_monitor_last_scored_timestamp_seconds",
            "Unix time of the latest score recorded in the database, by any daemon",
        )
        up = GaugeMetricFamily(
            "cmr_monitor_database_up", "1 when the queue gauges could be read from the database, else 0"
        )
        if samples:
            up.add_metric([], 0.0 if snapshot is None else 1.0)
            if snapshot is not None:
                queue.add_metric(["pending"], snapshot.pending)
                queue.add_metric(["scoring"], snapshot.scoring)
                if snapshot.oldest_pending_received_at is not None:
                    oldest.add_metric([], snapshot.oldest_pending_received_at.timestamp())
                if snapshot.last_scored_at is not None:
                    last.add_metric([], snapshot.last_scored_at.timestamp())
        yield from (queue, oldest, last, up)
