"""Starting and stopping the Streamlit dashboard as a subprocess (``cmr-monitor dashboard``, the demo).

The dashboard runs as ``streamlit run dashboard/app.py``; its settings travel in the environment
(``CMR_MONITOR_DATABASE_URL``, ``CMR_MONITOR_ARTIFACTS_DIR``, ``CMR_MONITOR_DASHBOARD_DATA_DIRS``), so the
URL and its password never appear on the child's command line. ``launch_dashboard`` starts it,
``wait_for_dashboard`` waits until the server answers, ``start_dashboard`` does both (and stops a server
that does not come up), ``stop_dashboard`` ends it, and ``serve_until_stopped`` waits for it while
passing SIGTERM and SIGINT on, so that stopping the launcher never leaves the server behind holding its
port. Nothing here imports Streamlit.

Example::

    process, url = start_dashboard("sqlite:///demo/cmr-monitor.db", port=8501)
    ...
    stop_dashboard(process)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "app_path",
    "launch_dashboard",
    "serve_until_stopped",
    "start_dashboard",
    "stop_dashboard",
    "wait_for_dashboard",
]


def app_path() -> Path:
    """The dashboard's Streamlit entry point (``dashboard/app.py``).

    Looked up as an importable ``dashboard`` package first, then next to this module (source checkout,
    editable install).

    Raises: FileNotFoundError when neither exists.
    """
    import importlib.util

    candidates: list[Path] = []
    spec = importlib.util.find_spec("dashboard")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) / "app.py" for p in spec.submodule_search_locations)
    candidates.append(Path(__file__).resolve().parent / "app.py")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"dashboard entry point not found (tried {', '.join(map(str, candidates))}); "
        "run from a cmr-monitor source checkout or install the dashboard package"
    )


def launch_dashboard(
    db_url: str,
    port: int = 8501,
    host: str = "127.0.0.1",
    artifacts_dir: Path | None = None,
    *,
    data_dirs: Sequence[Path] = (),
    password: str | None = None,
    label_map: str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[Any] | None = None,
    stderr: int | IO[Any] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``streamlit run dashboard/app.py`` as a subprocess and return it (it is not waited for).

    Args:
        db_url: results database; passed in the environment, never on the command line.
        port: TCP port (1-65535).
        host: address to bind; keep 127.0.0.1 unless a login password is set.
        artifacts_dir: folder of pGT and inconsistency maps (and allowed for display).
        data_dirs: further folders whose masks and MR images the dashboard may show (the watch folder).
        password: login password (``CMR_MONITOR_DASHBOARD_PASSWORD``); None keeps the environment's.
        label_map: label map of the masks and pGTs (``CMR_MONITOR_LABEL_MAP``); None keeps the setting.
        env: base environment of the child; this process's environment when None.
        stdout, stderr: where the server's output goes (inherited when None).
    Returns: the running process; stop it with ``terminate()`` and ``wait()``.
    Raises: ValueError for a bad port; FileNotFoundError when the app cannot be found.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1-65535, got {port}")
    script = app_path()
    child_env = dict(os.environ if env is None else env)
    child_env["CMR_MONITOR_DATABASE_URL"] = db_url
    if artifacts_dir is not None:
        child_env["CMR_MONITOR_ARTIFACTS_DIR"] = str(Path(artifacts_dir).resolve())
    if data_dirs:
        child_env["CMR_MONITOR_DASHBOARD_DATA_DIRS"] = os.pathsep.join(
            str(Path(d).resolve()) for d in data_dirs
        )
    if password is not None:
        child_env["CMR_MONITOR_DASHBOARD_PASSWORD"] = password
    if label_map is not None:
        child_env["CMR_MONITOR_LABEL_MAP"] = label_map
    root = str(script.parent.parent)
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(script),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--global.developmentMode",
        "false",
    ]
    return subprocess.Popen(command, env=child_env, stdout=stdout, stderr=stderr, cwd=root)


def wait_for_dashboard(
    url: str, *, timeout_s: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until the Streamlit server at ``url`` (``http://host:port``) reports healthy.

    Raises: TimeoutError after ``timeout_s``; RuntimeError when ``process`` exits first.
    """
    deadline = time.monotonic() + timeout_s
    health = url.rstrip("/") + "/_stcore/health"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the dashboard exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(health, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"the dashboard at {url} did not answer within {timeout_s:g} s")


def start_dashboard(
    db_url: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    artifacts_dir: Path | None = None,
    data_dirs: Sequence[Path] = (),
    log_path: Path | None = None,
    timeout_s: float = 90.0,
) -> tuple[subprocess.Popen[bytes], str]:
    """Launch the dashboard and wait until it answers; a server that does not is stopped.

    Args:
        db_url, port, host, artifacts_dir, data_dirs: as ``launch_dashboard``.
        log_path: file the server's output is appended to (inherited when None).
        timeout_s: how long to wait for it.
    Returns: (the running process, its URL ``http://host:port``).
    Raises: TimeoutError or RuntimeError (as ``wait_for_dashboard``) when it does not come up.
    """
    log = log_path.open("ab") if log_path is not None else None
    try:
        process = launch_dashboard(
            db_url,
            port=port,
            host=host,
            artifacts_dir=artifacts_dir,
            data_dirs=data_dirs,
            stdout=log,
            stderr=log,
        )
    finally:
        if log is not None:
            log.close()  # the child holds its own descriptor
    url = f"http://{host}:{port}"
    try:
        wait_for_dashboard(url, timeout_s=timeout_s, process=process)
    except (TimeoutError, RuntimeError):
        stop_dashboard(process)
        raise
    return process, url


def stop_dashboard(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> int:
    """Terminate the server (kill it when it does not end within ``timeout_s``); return its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait(timeout=5)
    return int(process.returncode)


def serve_until_stopped(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> int:
    """Wait for the server to end; SIGTERM or SIGINT to this process stops it first (``stop_dashboard``).

    The previous signal handlers are restored on return. Off the main thread (where Python cannot
    handle signals) it only waits.

    Returns: the server's exit status; 0 when it ended cleanly after a stop signal.
    """
    if threading.current_thread() is not threading.main_thread():
        return process.wait()
    stop = threading.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}
    for sig in signals:
        signal.signal(sig, lambda _signum, _frame: stop.set())
    try:
        while process.poll() is None and not stop.wait(0.2):
            pass
        if not stop.is_set():
            return int(process.returncode)
        code = stop_dashboard(process, timeout_s=timeout_s)
        return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
