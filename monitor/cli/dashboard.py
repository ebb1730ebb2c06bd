"""``cmr-monitor dashboard``: serve the Streamlit dashboard on the results database until interrupted.

Starting and stopping the server is ``dashboard.launch``; this command only parses the options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.options import DbOption

__all__ = ["dashboard"]


def dashboard(
    db: DbOption = None,
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
    from dashboard.launch import launch_dashboard, serve_until_stopped, stop_dashboard
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
        code = serve_until_stopped(process)  # SIGTERM and SIGINT stop the server too, then return
    finally:
        stop_dashboard(process)  # whatever happened here, the server does not outlive the command
    if code != 0:
        typer.echo(f"error: the dashboard server exited with status {code}", err=True)
        raise typer.Exit(1)
