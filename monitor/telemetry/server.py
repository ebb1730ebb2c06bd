"""The HTTP endpoint of the daemon: ``/metrics``, ``/healthz`` and ``/readyz``, and free-port helpers.

It binds 127.0.0.1 unless told otherwise (masks are patient data; metrics are not, but the endpoint
should not face a network by accident).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

__all__ = [
    "DEFAULT_METRICS_ADDR",
    "DEFAULT_METRICS_PORT",
    "HealthCheck",
    "TelemetryServer",
    "free_port",
    "port_free",
    "serve_http",
]

log = logging.getLogger(__name__)

#: Port of the metrics and health endpoint.
DEFAULT_METRICS_PORT = 9750
#: Address it binds by default (loopback only).
DEFAULT_METRICS_ADDR = "127.0.0.1"
#: A health check: (healthy, one line saying why).
HealthCheck = Callable[[], tuple[bool, str]]


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


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when ``port`` can be bound on ``host`` now (always for 0: any free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` now (the operating system's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
