"""``cmr_monitor_database_seconds``: the daemon's time in the database, by operation.

``test_retry_observes_the_successful_attempt_only`` drives the daemon's ``Retry`` in process: a call
that fails transiently once and then succeeds is observed once, and its failure counts as a transient
error.
``test_real_daemon_exports_database_seconds`` runs the real daemon (a subprocess, on SQLite and on
PostgreSQL), scores two masks and rejects one invalid file, and reads the histogram from its /metrics
endpoint over HTTP.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from monitor.daemon.retry import DatabaseHealth, Retry
from monitor.store import DatabaseUnavailable
from monitor.telemetry import DATABASE_OPERATIONS, build_metrics
from tests.daemon._harness import DaemonProcess, invalid_bytes, mask_bytes, wait_for_end_state, write_renamed
from tests.telemetry._helpers import samples


def test_retry_observes_the_successful_attempt_only() -> None:
    registry = CollectorRegistry()
    health = DatabaseHealth()
    retry = Retry(build_metrics(registry), health, threading.Event())
    attempts: list[int] = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise DatabaseUnavailable("database unavailable: connection refused")
        return "claimed"

    assert retry("database", flaky, until=threading.Event(), operation="claim") == "claimed"
    assert health.ok
    value = registry.get_sample_value
    assert len(attempts) == 2
    assert value("cmr_monitor_database_seconds_count", {"operation": "claim"}) == 1
    assert (
        value("cmr_monitor_database_seconds_sum", {"operation": "claim"}) < 0.25
    )  # the backoff wait is not counted
    assert value("cmr_monitor_transient_errors_total", {"kind": "database"}) == 1
    retry("artifacts", lambda: None)  # not a database call: nothing observed
    assert sum(value("cmr_monitor_database_seconds_count", {"operation": op}) or 0 for op in DATABASE_OPERATIONS) == 1  # fmt: skip


@pytest.mark.slow
def test_real_daemon_exports_database_seconds(db_url: str, tmp_path: Path, checkpoint: Path) -> None:
    """After two masks are scored and one invalid file is rejected, /metrics shows one ``record`` and at
    least one ``claim`` observation, one ``enqueue`` per file and one ``reject``; every operation's
    series is exposed, buckets are cumulative and the sums are plausible wall times."""
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    daemon = DaemonProcess(
        [incoming],
        url=db_url,
        artifacts=tmp_path / "artifacts",
        checkpoint=checkpoint,
        log=tmp_path / "daemon.log",
    ).start()
    try:
        daemon.wait_ready()
        for i in range(2):
            write_renamed(incoming / "unet" / "1.0" / f"case{i}_ED.nii.gz", mask_bytes(700 + i))
        write_renamed(incoming / "unet" / "1.0" / "broken_ED.nii.gz", invalid_bytes("flat2d"))
        rows = wait_for_end_state(db_url, 3, alive=lambda: daemon.alive)
        assert sorted(r.status for r in rows) == ["rejected", "scored", "scored"]
        status, body = daemon.get("/metrics")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()
    assert status == 200
    exported = samples(body)

    def sample(suffix: str, operation: str, **labels: str) -> float:
        key = frozenset({"operation": operation, **labels}.items())
        return exported[f"cmr_monitor_database_seconds_{suffix}", key]

    for operation in DATABASE_OPERATIONS:
        count = sample("count", operation)
        cumulative = [sample("bucket", operation, le=le) for le in _bucket_bounds(exported, operation)]
        assert cumulative == sorted(cumulative) and cumulative[-1] == count, (operation, cumulative)
        assert 0 <= sample("sum", operation) < 60 * max(count, 1), operation
    assert sample("count", "record") == 2  # one transaction per scored file
    assert sample("count", "patient") <= 2  # its patient re-assessed (ED/ES pairing), at most once each
    assert sample("count", "claim") >= 1  # the batch (and idle polls that found nothing)
    assert sample("count", "enqueue") == 3
    assert sample("count", "reject") == 1
    assert sample("count", "startup") >= 3  # probe, last model, model row, known paths
    assert sample("sum", "record") > 0 and sample("sum", "claim") > 0


def _bucket_bounds(
    exported: dict[tuple[str, frozenset[tuple[str, str]]], float], operation: str
) -> list[str]:
    """The ``le`` values of one operation's buckets, in increasing order (``+Inf`` last)."""
    bounds = [
        dict(labels)["le"]
        for name, labels in exported
        if name == "cmr_monitor_database_seconds_bucket" and dict(labels)["operation"] == operation
    ]
    return sorted(bounds, key=float)
