"""How long each loop of the daemon has gone without progress (``LoopWatch``, a Prometheus collector).

A loop that waits for work is idle; a loop doing work should finish it, or make progress inside it,
within seconds. A step that does not (a statement waiting on a lock held by a frozen peer, a read from a
hung network share) used to show only when the whole loop stopped turning, after a minute, in
``/healthz``. ``LoopWatch`` shows it while it happens: each loop wraps its work in ``step(loop)`` and
calls ``progress(loop)`` after each unit of work; ``cmr_monitor_loop_stalled_seconds{loop}`` is the time
since the current step began or last made progress (0 while the loop waits), and the daemon's
``/readyz`` answers 503 once it passes ``Settings.daemon_stall_s``.

Example::

    watch = LoopWatch()
    registry.register(watch)
    with watch.step("intake"):
        for path in due:
            take(path)
            watch.progress("intake")
    watch.stalled(after_s=10.0)   # [] or [("intake", 12.5)]
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal, get_args

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

__all__ = ["LOOPS", "LoopName", "LoopWatch"]

#: The daemon's loops: ``intake`` (sightings to rows), ``maintenance`` (expired and dead workers'
#: claims taken back, artifacts folder probed) and ``worker`` (its database calls: claim and record).
LoopName = Literal["intake", "maintenance", "worker"]
#: Every ``LoopName``, in that order.
LOOPS: tuple[LoopName, ...] = get_args(LoopName)


class LoopWatch(Collector):
    """The step each loop is in, and since when it has made no progress (thread-safe).

    Args:
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._since: dict[str, float] = {}  #: loop -> start of its step or its last progress
        self._depth: dict[str, int] = {}

    @contextlib.contextmanager
    def step(self, loop: LoopName) -> Iterator[None]:
        """Mark the block as work of ``loop`` (steps of one loop may nest; the outermost counts).

        Raises: ValueError for a loop outside ``LOOPS`` (the metric's labels stay bounded).
        """
        if loop not in LOOPS:
            raise ValueError(f"loop must be one of {LOOPS}, got {loop!r}")
        with self._lock:
            depth = self._depth.get(loop, 0)
            self._depth[loop] = depth + 1
            if depth == 0:
                self._since[loop] = self._clock()
        try:
            yield
        finally:
            with self._lock:
                self._depth[loop] -= 1
                if self._depth[loop] == 0:
                    self._since.pop(loop, None)

    def progress(self, loop: LoopName) -> None:
        """``loop`` finished a unit of work inside its step (a file taken, a batch recorded)."""
        with self._lock:
            if loop in self._since:
                self._since[loop] = self._clock()

    def stalled_s(self, loop: LoopName) -> float:
        """Seconds since ``loop``'s current step began or last made progress; 0 while it waits."""
        with self._lock:
            since = self._since.get(loop)
        return 0.0 if since is None else max(0.0, self._clock() - since)

    def stalled(self, after_s: float) -> list[tuple[LoopName, float]]:
        """The loops whose step has made no progress for more than ``after_s`` seconds, longest first."""
        found = [(loop, self.stalled_s(loop)) for loop in LOOPS]
        return sorted(((loop, s) for loop, s in found if s > after_s), key=lambda item: -item[1])

    def describe(self) -> Iterator[Metric]:
        yield self._family(samples=False)

    def collect(self) -> Iterator[Metric]:
        yield self._family(samples=True)

    def _family(self, *, samples: bool) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "cmr_monitor_loop_stalled_seconds",
            "Seconds since a daemon loop's current step began or last made progress (0 while it waits for "
            "work), by loop: intake, maintenance, worker (database calls)",
            labels=["loop"],
        )
        if samples:
            for loop in LOOPS:
                family.add_metric([loop], self.stalled_s(loop))
        return family
