"""Prometheus metrics of the watch daemon and the HTTP endpoint that serves them with health checks.

Every metric is built by ``build_metrics(registry)`` (a fresh ``CollectorRegistry`` in tests), named
``cmr_monitor_*`` in base units, with labels from bounded sets only (segmenter name/version, flag level,
rejection reason, error kind), never a case or file name. ``serve_http`` answers:

- ``/metrics``: the registry in the Prometheus text format;
- ``/healthz``: 200 while the daemon's loops are alive, else 503 (restart me);
- ``/readyz``: 200 while it can take work (model loaded, database reachable, watcher running), else 503.

It binds 127.0.0.1 unless told otherwise (masks are patient data; metrics are not, but the endpoint
should not face a network by accident).

Example::

    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    server = serve_http(registry, healthz=lambda: (True, "ok"), readyz=lambda: (True, "ok"), port=0)
    metrics.files_received.inc()
    server.close()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = [
    "DEFAULT_METRICS_ADDR",
    "DEFAULT_METRICS_PORT",
    "LATENCY_BUCKETS_S",
    "DaemonMetrics",
    "HealthCheck",
    "TelemetryServer",
    "build_metrics",
    "serve_http",
]

log = logging.getLogger(__name__)

#: Port of the metrics and health endpoint.
DEFAULT_METRICS_PORT = 9750
#: Address it binds by default (loopback only).
DEFAULT_METRICS_ADDR = "127.0.0.1"
#: Buckets (seconds) of the latency from a complete file to its scored row.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60, 300, 1800)  # fmt: skip
_BATCH_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

#: A health check: (healthy, one line saying why).
HealthCheck = Callable[[], tuple[bool, str]]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonMetrics:
    """The daemon's metrics (all registered in one registry)."""

    files_received: Counter  #: complete mask files handed to the queue (new path or content)
    files_scored: Counter  #: files scored, by segmenter, segmenter_version and flag
    files_rejected: Counter  #: files rejected, by reason code
    scoring_latency: Histogram  #: seconds from the file being complete to its scored row
    batch_duration: Histogram  #: seconds to load, score, write and record one batch
    transient_errors: Counter  #: retried failures, by kind (database, out_of_memory, artifacts)
    files_waiting: Gauge  #: files seen but not yet complete or not yet handed to the queue
    ready: Gauge  #: 1 while the daemon can take work, else 0


def build_metrics(registry: CollectorRegistry) -> DaemonMetrics:
    """Create the daemon's metrics in ``registry``.

    Example:
        >>> registry = CollectorRegistry()
        >>> metrics = build_metrics(registry)
        >>> metrics.files_rejected.labels(reason="corrupt").inc()
        >>> registry.get_sample_value("cmr_monitor_files_rejected_total", {"reason": "corrupt"})
        1.0
    """
    return DaemonMetrics(
        files_received=Counter(
            "cmr_monitor_files_received", "Complete mask files handed to the queue", registry=registry
        ),
        files_scored=Counter(
            "cmr_monitor_files_scored",
            "Mask files scored, by segmenter version and flag level",
            ["segmenter", "segmenter_version", "flag"],
            registry=registry,
        ),
        files_rejected=Counter(
            "cmr_monitor_files_rejected", "Mask files rejected, by reason code", ["reason"], registry=registry
        ),
        scoring_latency=Histogram(
            "cmr_monitor_scoring_latency_seconds",
            "Seconds from a mask file being complete to its scored row",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        batch_duration=Histogram(
            "cmr_monitor_scoring_batch_duration_seconds",
            "Seconds to load, score, write and record one batch of files",
            buckets=_BATCH_BUCKETS_S,
            registry=registry,
        ),
        transient_errors=Counter(
            "cmr_monitor_transient_errors",
            "Failures that were retried, by kind",
            ["kind"],
            registry=registry,
        ),
        files_waiting=Gauge(
            "cmr_monitor_files_waiting", "Files seen but not yet handed to the queue", registry=registry
        ),
        ready=Gauge("cmr_monitor_ready", "1 while the daemon can take work, else 0", registry=registry),
    )


class TelemetryServer:
    """A running HTTP endpoint; ``close()`` stops it (idempotent)."""

    def __init__(self, server: ThreadingHTTPServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread
        self._closed = False

    @property
    def port(self) -> int:
        """The bound TCP port (useful when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:9750``."""
        host = self._server.server_address[0]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)


def serve_http(
    registry: CollectorRegistry,
    *,
    healthz: HealthCheck,
    readyz: HealthCheck,
    addr: str = DEFAULT_METRICS_ADDR,
    port: int = DEFAULT_METRICS_PORT,
) -> TelemetryServer:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` from a background thread.

    Args:
        registry: what ``/metrics`` exposes.
        healthz, readyz: called on each request; (ok, reason) -> 200 or 503 with the reason as text.
        addr: address to bind (default loopback).
        port: TCP port; 0 picks a free one (see ``TelemetryServer.port``).
    Raises: OSError when the address cannot be bound (port in use).
    """
    routes: dict[str, HealthCheck] = {"/healthz": healthz, "/readyz": readyz}

    class _Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)
            elif path in routes:
                try:
                    ok, reason = routes[path]()
                except Exception as exc:  # a failing check is an unhealthy answer, not a dead server
                    ok, reason = False, f"check failed: {type(exc).__name__}"
                self._send(200 if ok else 503, f"{reason}\n".encode(), "text/plain; charset=utf-8")
            else:
                self._send(
                    404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain; charset=utf-8"
                )

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("http %s", format % args)

    server = ThreadingHTTPServer((addr, port), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="cmr-monitor-http", daemon=True)
    thread.start()
    return TelemetryServer(server, thread)
