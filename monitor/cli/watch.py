"""``cmr-monitor watch``: the watch daemon (``monitor.daemon``) on folders, until SIGTERM or SIGINT.

Options that ``Settings`` knows fall back to it (environment ``CMR_MONITOR_*``, see ``monitor.config``);
the daemon's tuning options have defaults suited to production. Heavy imports (torch, watchdog) happen
inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.exits import fail
from monitor.cli.logs import LogFormat, configure_logging
from monitor.cli.options import (
    ArtifactsOption,
    CalibrationOption,
    CheckpointOption,
    DeviceOption,
    LabelMapOption,
    MigrateOption,
    PrecisionOption,
)

__all__ = ["watch"]


def _split_folders(spec: str) -> tuple[str, ...]:
    return tuple(part for part in spec.replace(",", "/").split("/") if part)


def watch(
    folders: Annotated[
        list[Path],
        typer.Argument(
            help="Folders to watch (recursively).", exists=True, file_okay=False, resolve_path=True
        ),
    ],
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (env CMR_MONITOR_DATABASE_URL; default sqlite:///cmr-monitor.db)."
        ),
    ] = None,
    checkpoint: CheckpointOption = None,
    device: DeviceOption = None,
    polling: Annotated[
        bool,
        typer.Option(
            "--polling", help="Poll instead of inotify (NFS/SMB shares, where inotify sees nothing)."
        ),
    ] = False,
    metrics_port: Annotated[
        int, typer.Option(help="Port of /metrics, /healthz, /readyz (0 = any free port, logged).")
    ] = 9750,
    metrics_addr: Annotated[str, typer.Option(help="Address the endpoint binds.")] = "127.0.0.1",
    no_metrics: Annotated[bool, typer.Option("--no-metrics", help="Serve no HTTP endpoint.")] = False,
    artifacts: ArtifactsOption = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="Move rejected files here (never deleted); default: leave them.")
    ] = None,
    log_format: Annotated[LogFormat, typer.Option(help="text (for people) or json (one object a line).")] = (
        LogFormat.text
    ),
    migrate: MigrateOption = False,
    label_map: LabelMapOption = None,
    include: Annotated[
        list[str] | None,
        typer.Option(help="File name pattern to take (repeatable; default *.nii, *.nii.gz)."),
    ] = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(help="Name pattern to ignore, added to .*, *.tmp, *.part, *.partial, *.crdownload, *~."),
    ] = None,
    name_pattern: Annotated[
        list[str] | None,
        typer.Option(help="Regex for case/phase in file names, tried before the defaults (repeatable)."),
    ] = None,
    folders_mean: Annotated[
        str,
        typer.Option(
            help="What the folders under a watched folder mean, e.g. segmenter/version or site/segmenter/version."
        ),
    ] = "segmenter/version",
    batch_size: Annotated[int, typer.Option(min=1, help="Files scored together when several wait.")] = 8,
    stable_s: Annotated[
        float,
        typer.Option(min=0, help="Size and mtime unchanged this long = complete (without a close event)."),
    ] = 2.0,
    incomplete_timeout_s: Annotated[
        float,
        typer.Option(
            min=0.001, help="Reject a file that still does not parse this long after its last change."
        ),
    ] = 60.0,
    poll_interval_s: Annotated[float, typer.Option(min=0.01, help="Polling period and idle wait.")] = 1.0,
    rescan_interval_s: Annotated[float, typer.Option(min=0.01, help="Full rescan of the folders.")] = 300.0,
    lease_s: Annotated[
        float, typer.Option(min=0.01, help="A claim not finished in this time is taken back.")
    ] = 600.0,
    shutdown_timeout_s: Annotated[
        float, typer.Option(min=0.01, help="On SIGTERM/SIGINT, wait this long for the batch in flight.")
    ] = 30.0,
    threads: Annotated[
        int | None, typer.Option(min=1, help="CPU threads for torch (env CMR_MONITOR_TORCH_THREADS).")
    ] = None,
    precision: PrecisionOption = None,
    calibration: CalibrationOption = None,
) -> None:
    """Watch folders and score every mask that appears in them, into the results database."""
    configure_logging(log_format)
    from monitor.config import get_settings
    from monitor.daemon import Daemon, DaemonConfig, on_stop
    from monitor.errors import MonitorError
    from monitor.io.identity import DEFAULT_EXCLUDE, DEFAULT_INCLUDE, IngestConfig
    from monitor.io.layouts import DEFAULT_NAME_PATTERNS

    try:
        settings = get_settings().with_overrides(
            database_url=db,
            checkpoint=checkpoint,
            device=device.value if device else None,
            artifacts_dir=artifacts,
            label_map=label_map,
            torch_threads=threads,
            precision=precision.value if precision else None,
            calibration=calibration,
        )
        config = DaemonConfig(
            roots=tuple(folders),
            settings=settings.with_overrides(artifacts_dir=settings.artifacts_dir.resolve()),
            quarantine_dir=quarantine.resolve() if quarantine else None,
            migrate=migrate,
            ingest=IngestConfig(
                include=tuple(include) if include else DEFAULT_INCLUDE,
                exclude=DEFAULT_EXCLUDE + tuple(exclude or ()),
                name_patterns=tuple(name_pattern or ()) + DEFAULT_NAME_PATTERNS,
                folder_fields=_split_folders(folders_mean),
            ),
            polling=polling,
            poll_interval_s=poll_interval_s,
            stable_s=stable_s,
            incomplete_timeout_s=incomplete_timeout_s,
            rescan_interval_s=rescan_interval_s,
            batch_size=batch_size,
            lease_s=lease_s,
            shutdown_timeout_s=shutdown_timeout_s,
            metrics_addr=metrics_addr,
            metrics_port=None if no_metrics else metrics_port,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    daemon = Daemon(config)
    try:
        with on_stop(daemon.stop):
            daemon.run()
    except (MonitorError, OSError, RuntimeError) as exc:
        fail(exc)
