"""Transient failures: retried with backoff, never dropped.

``Retry`` runs a call and retries it while it fails transiently (the database is down:
``DatabaseUnavailable``; a write of the artifacts failed: ``OSError``), with exponential backoff and
jitter, until a stop event is set (then ``Abandoned``). ``DatabaseHealth`` remembers whether the
database answered the last call (the ``/readyz`` check). Out-of-memory errors of the model are handled
by the worker with the helpers here.
"""

from __future__ import annotations

import contextlib
import logging
import random
import sys
import threading
from collections.abc import Callable
from typing import Literal, TypeVar

from monitor.store import DatabaseUnavailable
from monitor.telemetry import DaemonMetrics, DatabaseOperation

__all__ = [
    "BACKOFF_INITIAL_S",
    "BACKOFF_MAX_S",
    "Abandoned",
    "DatabaseHealth",
    "Retry",
    "free_device_memory",
    "out_of_memory_errors",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: First wait before a retry, seconds; it doubles up to ``BACKOFF_MAX_S``.
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0


class Abandoned(Exception):
    """The stop event was set while a transient failure was being retried."""


class DatabaseHealth:
    """Whether the database answered the daemon's last call (shared by its threads)."""

    def __init__(self) -> None:
        self.ok = False


class Retry:
    """Runs calls, retrying transient failures with backoff.

    Args:
        metrics: counts the failures (``cmr_monitor_transient_errors_total``) and times database calls.
        health: set to the outcome of each database call.
        abandon: the default stop event (the shutdown deadline passed).
    """

    def __init__(self, metrics: DaemonMetrics, health: DatabaseHealth, abandon: threading.Event) -> None:
        self._metrics = metrics
        self._health = health
        self._abandon = abandon

    def __call__(
        self,
        kind: Literal["database", "artifacts"],
        fn: Callable[[], T],
        *,
        until: threading.Event | None = None,
        operation: DatabaseOperation | None = None,
    ) -> T:
        """Run ``fn``, retrying transient failures of ``kind`` (``database``: DatabaseUnavailable,
        otherwise OSError) with backoff until ``until`` is set (default: the shutdown deadline passed).

        ``operation`` names a database call in ``cmr_monitor_database_seconds``: the attempt that
        succeeds is observed; failed attempts and the waits between them are not (failures count in
        ``cmr_monitor_transient_errors_total``).

        Raises: Abandoned when ``until`` is set while waiting to retry.
        """
        until = until if until is not None else self._abandon
        transient: tuple[type[BaseException], ...] = (
            (DatabaseUnavailable,) if kind == "database" else (OSError,)
        )
        delay = BACKOFF_INITIAL_S
        while True:
            try:
                with self._metrics.database_call(operation) if operation else contextlib.nullcontext():
                    value = fn()
            except transient as exc:
                if kind == "database":
                    self._health.ok = False
                self._metrics.transient_errors.labels(kind=kind).inc()
                log.warning(
                    "%s failure, retrying in %.1f s: %s",
                    kind,
                    delay,
                    exc if kind == "database" else type(exc).__name__,
                    extra={"action": "retry", "kind": kind},
                )
                if until.wait(delay + random.uniform(0, delay / 4)):
                    raise Abandoned(kind) from exc
                delay = min(2 * delay, BACKOFF_MAX_S)
            else:
                if kind == "database":
                    self._health.ok = True
                return value


def out_of_memory_errors() -> tuple[type[BaseException], ...]:
    """The errors that mean "out of memory": MemoryError, and CUDA's when torch is loaded."""
    torch = sys.modules.get("torch")
    if torch is None:
        return (MemoryError,)
    return (MemoryError, torch.cuda.OutOfMemoryError)


def free_device_memory() -> None:
    """Give the CUDA allocator's cached memory back (when torch and CUDA are in use)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
