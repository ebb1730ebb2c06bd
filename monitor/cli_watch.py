"""``cmr-monitor watch`` (the daemon) and ``cmr-monitor demo`` (the live demo).

``monitor.cli`` adds them to the main app with ``register(app)``; ``python -m monitor.cli_watch`` runs
them on their own. Options that ``Settings`` knows fall back to it (environment ``CMR_MONITOR_*``, see
``monitor.config``); the daemon's tuning options have defaults suited to production. Errors print their
cause chain and exit 1; usage errors exit 2. Heavy imports (torch, watchdog) happen inside the commands.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from monitor.cli_options import Device, Precision

if TYPE_CHECKING:
    from monitor.demo import DemoProgress, DemoResult

__all__ = ["JsonFormatter", "LogFormat", "configure_logging", "register"]


class LogFormat(StrEnum):
    text = "text"
    json = "json"


_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: LogRecord attributes that are not ``extra=`` context.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message and the ``extra`` context."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and not key.startswith("_"):
                document[key] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(fmt: LogFormat | str = LogFormat.text, level: int | None = None) -> None:
    """Send logs to stderr, human-readable or JSON lines; replaces the root logger's handlers.

    Args:
        fmt: ``text`` or ``json``.
        level: root level; None keeps DEBUG when ``--verbose`` set it, else INFO.
    """
    root = logging.getLogger()
    if level is None:
        level = logging.DEBUG if root.level == logging.DEBUG else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter() if LogFormat(fmt) == LogFormat.json else logging.Formatter(_TEXT_FORMAT)
    )
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("watchdog", "alembic"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def register(app: typer.Typer) -> None:
    """Add the ``watch`` and ``demo`` commands to ``app``."""
    app.command("watch")(watch)
    app.command("demo")(demo)


def _fail(exc: BaseException) -> NoReturn:
    chain, cause = [], exc
    while cause is not None:
        chain.append(f"{type(cause).__name__}: {cause}")
        cause = cause.__cause__ or cause.__context__
    typer.echo("error: " + "\n  caused by: ".join(chain), err=True)
    raise typer.Exit(1)


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
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Autoencoder checkpoint (env CMR_MONITOR_CHECKPOINT; default: shipped)."),
    ] = None,
    device: Annotated[Device | None, typer.Option(help="auto, cpu or cuda (env CMR_MONITOR_DEVICE).")] = None,
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
    artifacts: Annotated[
        Path | None,
        typer.Option(help="Where pGT and inconsistency maps go (env CMR_MONITOR_ARTIFACTS_DIR)."),
    ] = None,
    quarantine: Annotated[
        Path | None, typer.Option(help="Move rejected files here (never deleted); default: leave them.")
    ] = None,
    log_format: Annotated[LogFormat, typer.Option(help="text (for people) or json (one object a line).")] = (
        LogFormat.text
    ),
    migrate: Annotated[
        bool,
        typer.Option("--migrate", help="Upgrade the database schema to head instead of refusing an old one."),
    ] = False,
    label_map: Annotated[
        str | None, typer.Option(help="acdc, mnms or 'LV=a,MYO=b,RV=c' (env CMR_MONITOR_LABEL_MAP).")
    ] = None,
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
    precision: Annotated[
        Precision | None,
        typer.Option(
            help="Model arithmetic (default fp32); auto = fp16 on CUDA, fp32 on CPU (env CMR_MONITOR_PRECISION)."
        ),
    ] = None,
) -> None:
    """Watch folders and score every mask that appears in them, into the results database."""
    configure_logging(log_format)
    from monitor.config import get_settings
    from monitor.daemon import Daemon, DaemonConfig, on_stop
    from monitor.errors import MonitorError
    from monitor.ingest import DEFAULT_EXCLUDE, DEFAULT_INCLUDE, DEFAULT_NAME_PATTERNS, IngestConfig

    try:
        settings = get_settings().with_overrides(
            database_url=db,
            checkpoint=checkpoint,
            device=device.value if device else None,
            artifacts_dir=artifacts,
            label_map=label_map,
            torch_threads=threads,
            precision=precision.value if precision else None,
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
        _fail(exc)


def demo(
    workdir: Annotated[Path, typer.Option(help="Work folder (incoming masks, database, artifacts).")] = Path(
        "cmr-monitor-demo"
    ),
    duration: Annotated[float, typer.Option(min=1, help="Seconds the simulated segmenter writes.")] = 180.0,
    rate: Annotated[float, typer.Option(min=0.01, help="Masks per second it writes.")] = 0.5,
    fast: Annotated[
        bool, typer.Option("--fast", help="A quick run: small phantoms, 10 s at 3 masks/s (for tests).")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    device: Annotated[Device, typer.Option(help="auto, cpu or cuda.")] = Device.auto,
    metrics_port: Annotated[
        int, typer.Option(help="Port of /metrics, /healthz, /readyz (0 or busy = any free port).")
    ] = 9750,
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Autoencoder checkpoint (env CMR_MONITOR_CHECKPOINT; default: shipped)."),
    ] = None,
    dashboard_port: Annotated[
        int, typer.Option(help="Port of the dashboard (busy = any free port); 0 = no dashboard.")
    ] = 8501,
    history_weeks: Annotated[
        float, typer.Option(min=0, help="Weeks of simulated past scores seeded first (0 = none).")
    ] = 4.0,
) -> None:
    """Live demo: a simulated segmenter writes masks into a watched folder; the daemon scores them."""
    from monitor.demo import DemoConfig, port_free, prepare_workdir, run_demo
    from monitor.errors import MonitorError

    if fast:
        duration, rate = 10.0, 3.0
    workdir = workdir.resolve()
    try:
        prepare_workdir(workdir)
    except OSError as exc:
        _fail(exc)
    _log_to_file(workdir)
    config = DemoConfig(
        workdir=workdir,
        duration_s=duration,
        rate_per_s=rate,
        seed=seed,
        device=device.value,
        small=fast,
        metrics_port=metrics_port if port_free(metrics_port) else 0,
        drain_timeout_s=60.0 if fast else 120.0,
        checkpoint=checkpoint,
        history_weeks=history_weeks,
        dashboard_port=dashboard_port or None,
    )
    n = max(2, round(duration * rate))
    typer.echo(
        f"cmr-monitor demo: a simulated segmenter 'cardioseg' writes about {n} masks over {duration:.0f} s "
        f"into {workdir / 'incoming'};\nversion 1.1 replaces 1.0 half way and is worse. Ctrl-C stops cleanly."
    )
    stop = threading.Event()
    live = sys.stdout.isatty()
    last_line = [0.0]

    def started(daemon: Any) -> None:
        typer.echo(f"  metrics:   {daemon.metrics_url}/metrics   (health: /healthz, /readyz)")
        typer.echo(f"  database:  sqlite:///{workdir / 'cmr-monitor.db'}   (cmr-monitor status --db ...)")
        typer.echo(f"  artifacts: {workdir / 'artifacts'}   log: {workdir / 'daemon.log'}")

    def progress(p: DemoProgress) -> None:
        line = _progress_line(p)
        if live:
            sys.stdout.write("\r" + line.ljust(100))
            sys.stdout.flush()
        elif p.elapsed_s - last_line[0] >= 10.0 or p.written == p.planned:
            last_line[0] = p.elapsed_s
            typer.echo(line)

    from monitor.daemon import on_stop

    try:
        with on_stop(stop.set):
            result = run_demo(
                config,
                stop=stop,
                on_start=started,
                on_progress=progress,
                on_dashboard=lambda url: typer.echo(f"  dashboard: {url}   (drift, alerts, cases, reviews)"),
            )
    except (MonitorError, OSError, RuntimeError) as exc:
        _fail(exc)
    if live:
        sys.stdout.write("\n")
    _print_summary(result)


def _progress_line(p: DemoProgress) -> str:
    s = p.by_status
    minutes, seconds = divmod(int(p.elapsed_s), 60)
    return (
        f"[{minutes:02d}:{seconds:02d}] written {p.written}/{p.planned} (cardioseg {p.version}) | "
        f"scored {s.get('scored', 0)}, flagged {p.flagged} | rejected {s.get('rejected', 0)} | "
        f"queued {s.get('pending', 0) + s.get('scoring', 0)}"
    )


def _print_summary(result: DemoResult) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: float) -> str:
        return "-" if math.isnan(value) else f"{value:.3f}"

    table = Table(title="cardioseg by version: DSC (real, needs ground truth) vs pDSC (the monitor)")
    for column in ("version", "written", "scored", "flagged", "erroneous", "rejected", "DSC", "pDSC"):
        table.add_column(column, justify="left" if column == "version" else "right")
    for v in result.versions:
        flag_rate = f" ({v.flagged / v.scored:.0%})" if v.scored else ""
        table.add_row(
            v.version,
            str(v.written),
            str(v.scored),
            f"{v.flagged}{flag_rate}",
            str(v.erroneous),
            str(v.rejected),
            fmt(v.real_dice),
            fmt(v.pseudo_dice),
        )
    console = Console()
    console.print(table)
    if result.rejection_reasons:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.rejection_reasons.items()))
        console.print(f"rejected files by reason: {reasons}")
    if result.interrupted:
        console.print("stopped early (Ctrl-C); the table covers what was written until then")
    elif not result.drained:
        console.print("[yellow]some files were still waiting when the demo ended[/]")
    console.print(f"look around: cmr-monitor status --db {result.database_url}")


def _log_to_file(workdir: Path) -> None:
    """Daemon logs go to ``<workdir>/daemon.log`` (the console shows the progress line); errors also to stderr."""
    workdir.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    to_file = logging.FileHandler(workdir / "daemon.log", mode="w")
    to_file.setFormatter(logging.Formatter(_TEXT_FORMAT))
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setLevel(logging.ERROR)
    to_console.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root.handlers[:] = [to_file, to_console]
    root.setLevel(logging.DEBUG if root.level == logging.DEBUG else logging.INFO)
    for noisy in ("watchdog", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _main() -> None:
    app = typer.Typer(
        name="cmr-monitor", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False
    )
    register(app)
    app()


if __name__ == "__main__":
    _main()
