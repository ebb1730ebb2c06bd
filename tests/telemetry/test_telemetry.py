"""Tests of ``monitor.telemetry``: metric names in a fresh registry, the HTTP endpoint."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from prometheus_client import CollectorRegistry

from monitor.telemetry import build_metrics, serve_http


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_metrics_names_units_and_labels() -> None:
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    metrics.files_received.inc()
    metrics.files_scored.labels(segmenter="unet", segmenter_version="1.0", flag="ok").inc(2)
    metrics.files_rejected.labels(reason="corrupt").inc()
    metrics.scoring_latency.observe(0.3)
    metrics.transient_errors.labels(kind="database").inc()
    value = registry.get_sample_value
    assert value("cmr_monitor_files_received_total") == 1
    assert (
        value(
            "cmr_monitor_files_scored_total", {"segmenter": "unet", "segmenter_version": "1.0", "flag": "ok"}
        )
        == 2
    )
    assert value("cmr_monitor_files_rejected_total", {"reason": "corrupt"}) == 1
    assert value("cmr_monitor_scoring_latency_seconds_bucket", {"le": "0.5"}) == 1
    assert value("cmr_monitor_transient_errors_total", {"kind": "database"}) == 1
    names = {m.name for m in registry.collect()}
    assert all(name.startswith("cmr_monitor_") for name in names)


def test_endpoint_serves_metrics_and_health() -> None:
    registry = CollectorRegistry()
    build_metrics(registry).files_received.inc()
    server = serve_http(registry, healthz=lambda: (True, "ok"), readyz=lambda: (False, "starting"), port=0)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = _get(f"{server.url}/metrics")
        assert status == 200 and "cmr_monitor_files_received_total 1.0" in body
        assert _get(f"{server.url}/healthz") == (200, "ok\n")
        assert _get(f"{server.url}/readyz") == (503, "starting\n")
        assert _get(f"{server.url}/other")[0] == 404
    finally:
        server.close()
        server.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{server.url}/healthz", timeout=2)


def test_failing_check_is_unhealthy_not_fatal() -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = serve_http(CollectorRegistry(), healthz=broken, readyz=broken, port=0)
    try:
        assert _get(f"{server.url}/healthz") == (503, "check failed: RuntimeError\n")
    finally:
        server.close()
