"""Prometheus metrics of the watch daemon and the HTTP endpoint that serves them with health checks.

- ``metrics``: every metric (``build_metrics(registry)``), bounded labels (``LabelBudget``), and the
  ``record_*`` verbs the daemon calls;
- ``queue_gauges``: the work-queue gauges, read from the database at scrape time (``QueueCollector``);
- ``loops``: how long each daemon loop's current step has gone without progress (``LoopWatch``);
- ``server``: ``serve_http`` answers ``/metrics``, ``/healthz`` (the loops are alive) and ``/readyz``
  (it can take work); it binds 127.0.0.1 unless told otherwise.

Example::

    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    server = serve_http(registry, healthz=lambda: (True, "ok"), readyz=lambda: (True, "ok"), port=0)
    metrics.record_received("unet", "1.2")
    server.close()
"""

from monitor.telemetry.loops import LOOPS, LoopName, LoopWatch
from monitor.telemetry.metrics import (
    ARTIFACT_ERRNOS,
    DATABASE_BUCKETS_S,
    DATABASE_OPERATIONS,
    LATENCY_BUCKETS_S,
    OTHER,
    PDSC_BUCKETS,
    PHD_BUCKETS_MM,
    DaemonMetrics,
    DatabaseOperation,
    LabelBudget,
    build_metrics,
)
from monitor.telemetry.queue_gauges import QUEUE_METRICS, QueueCollector
from monitor.telemetry.server import (
    DEFAULT_METRICS_ADDR,
    DEFAULT_METRICS_PORT,
    HealthCheck,
    TelemetryServer,
    free_port,
    port_free,
    serve_http,
)

__all__ = [
    "ARTIFACT_ERRNOS",
    "DATABASE_BUCKETS_S",
    "DATABASE_OPERATIONS",
    "DEFAULT_METRICS_ADDR",
    "DEFAULT_METRICS_PORT",
    "LATENCY_BUCKETS_S",
    "LOOPS",
    "OTHER",
    "PDSC_BUCKETS",
    "PHD_BUCKETS_MM",
    "QUEUE_METRICS",
    "DaemonMetrics",
    "DatabaseOperation",
    "HealthCheck",
    "LabelBudget",
    "LoopName",
    "LoopWatch",
    "QueueCollector",
    "TelemetryServer",
    "build_metrics",
    "free_port",
    "port_free",
    "serve_http",
]
