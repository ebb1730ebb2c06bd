"""``cmr-monitor dashboard``: run the Streamlit dashboard on the results database.

``monitor.cli`` adds the command with ``register(app)``. The dashboard runs as a ``streamlit run``
subprocess; its settings travel in the environment (``CMR_MONITOR_DATABASE_URL``,
``CMR_MONITOR_ARTIFACTS_DIR``, ``CMR_MONITOR_DASHBOARD_DATA_DIRS``), so the URL and its password never
appear on the child's command line. ``launch_dashboard`` is the library call (the demo uses it) and
``wait_for_dashboard`` waits until the server answers.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Annotated, Any

import typer

__all__ = ["app_path", "dashboard", "launch_dashboard", "register", "wait_for_dashboard"]

_DB_HELP = (
    "Database URL, e.g. sqlite:///cmr-monitor.db or postgresql://user@host/db. "
    "Default: the environment variable CMR_MONITOR_DATABASE_URL, else sqlite:///cmr-monitor.db."
)


def register(app: typer.Typer) -> None:
    """Add the ``dashboard`` command to ``app``."""
    app.command("dashboard")(dashboard)


def app_path() -> Path:
    """The dashboard's Streamlit entry point (``dashboard/app.py``).

    Looked up as an importable ``dashboard`` package first, then next to the ``monitor`` package (source
    checkout, editable install).

    Raises: FileNotFoundError when neither exists.
    """
    import importlib.util

    candidates: list[Path] = []
    spec = importlib.util.find_spec("dashboard")
    if spec is not None and spec.submodule_search_locations:
        candidates.extend(Path(p) / "app.py" for p in spec.submodule_search_locations)
    candidates.append(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")
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


def dashboard(
    db: Annotated[str | None, typer.Option("--db", help=_DB_HELP, show_default=False)] = None,
    port: Annotated[int, typer.Option(help="TCP port of the dashboard.")] = 8501,
    host: Annotated[
        str, typer.Option(help="Address to bind; use 0.0.0.0 only with a login password set.")
    ] = "127.0.0.1",
    artifacts: Annotated[
        Path | None,
        typer.Option(
            "--artifacts",
            help="Folder of pGT and inconsistency maps. Default: CMR_MONITOR_ARTIFACTS_DIR, else "
            "./cmr-monitor-artifacts.",
            show_default=False,
        ),
    ] = None,
    data_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--data-dir",
            help="Folder whose masks and MR images may be shown (the watch folder, the image archive); "
            "repeat for several. Default: CMR_MONITOR_DASHBOARD_DATA_DIRS.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Serve the dashboard (Streamlit) on the results database until interrupted.

    A login is required when CMR_MONITOR_DASHBOARD_PASSWORD (or dashboard_password in Streamlit
    secrets) is set.
    """
    from monitor.config import get_settings
    from monitor.errors import StoreError
    from monitor.store import check_at_head, safe_url

    settings = get_settings().with_overrides(database_url=db, artifacts_dir=artifacts)
    url = settings.database_url
    try:
        check_at_head(url)
    except StoreError as exc:
        typer.echo(f"warning: {exc} (the dashboard will say so until the schema is current)", err=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(
            f"note: serving on {host}; set CMR_MONITOR_DASHBOARD_PASSWORD so that patient data needs a login",
            err=True,
        )
    process = launch_dashboard(
        url, port=port, host=host, artifacts_dir=settings.artifacts_dir, data_dirs=data_dir or ()
    )
    typer.echo(f"dashboard on http://{host}:{port} for {safe_url(url)} (Ctrl+C stops it)")
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    if code not in (0, -15):
        raise typer.Exit(code)
