"""``cmr-monitor demo``: the live demo (``monitor.sim.demo``) with a progress line and a summary table."""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from monitor.cli.exits import fail
from monitor.cli.logs import log_to_file
from monitor.cli.options import CheckpointOption, Device, DeviceAutoOption

if TYPE_CHECKING:
    from monitor.sim.demo import DemoProgress, DemoResult

__all__ = ["demo", "next_steps"]


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
    device: DeviceAutoOption = Device.auto,
    metrics_port: Annotated[
        int, typer.Option(help="Port of /metrics, /healthz, /readyz (0 or busy = any free port).")
    ] = 9750,
    checkpoint: CheckpointOption = None,
    dashboard_port: Annotated[
        int, typer.Option(help="Port of the dashboard (busy = any free port); 0 = no dashboard.")
    ] = 8501,
    history_weeks: Annotated[
        float, typer.Option(min=0, help="Weeks of simulated past scores seeded first (0 = none).")
    ] = 4.0,
    history_maps_days: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="The seeded alerts of these last days get masks, maps and MR images for their case "
            "pages (about 1 s each on a 2-core CPU). Default: 3, with --fast 7.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Live demo: a simulated segmenter writes masks into a watched folder; the daemon scores them."""
    from monitor.daemon import on_stop
    from monitor.errors import MonitorError
    from monitor.sim.demo import DemoConfig, prepare_workdir, run_demo

    if fast:
        duration, rate = 10.0, 3.0
    workdir = workdir.resolve()
    try:
        prepare_workdir(workdir)
    except OSError as exc:
        fail(exc)
    log_to_file(workdir / "daemon.log")
    config = DemoConfig(
        workdir=workdir,
        duration_s=duration,
        rate_per_s=rate,
        seed=seed,
        device=device.value,
        small=fast,
        metrics_port=metrics_port,
        drain_timeout_s=60.0 if fast else 120.0,
        checkpoint=checkpoint,
        history_weeks=history_weeks,
        history_artifact_days=history_maps_days if history_maps_days is not None else (7.0 if fast else 3.0),
        dashboard_port=dashboard_port or None,
    )
    n = max(2, round(duration * rate))
    typer.echo(
        f"cmr-monitor demo: a simulated segmenter 'cardioseg' writes about {n} masks over {duration:.0f} s "
        f"into {workdir / 'incoming'};\nversion 1.1 replaces 1.0 half way and is worse. Ctrl-C stops cleanly."
    )
    if history_weeks > 0:
        typer.echo(
            f"  history:   seeding {history_weeks:g} weeks of simulated scores first "
            f"(alerts of the last {config.history_artifact_days:g} days with maps and images)"
        )
    stop = threading.Event()
    live = sys.stdout.isatty()
    last_line: list[Any] = [-10.0, ""]  # when and what was printed last (not a terminal: a line each 10 s)

    def started(daemon: Any) -> None:
        typer.echo(f"  metrics:   {daemon.metrics_url}/metrics   (health: /healthz, /readyz)")
        typer.echo(f"  database:  sqlite:///{workdir / 'cmr-monitor.db'}")
        typer.echo(f"  artifacts: {workdir / 'artifacts'}   log: {workdir / 'daemon.log'}")

    def progress(p: DemoProgress) -> None:
        line = _progress_line(p)
        if live:
            sys.stdout.write("\r" + line.ljust(100))
            sys.stdout.flush()
        elif line[8:] != last_line[1] and (
            p.elapsed_s - last_line[0] >= 10.0
            or (p.written == p.planned and p.elapsed_s - last_line[0] >= 2.0)
        ):
            last_line[:] = [p.elapsed_s, line[8:]]  # without the clock
            typer.echo(line)

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
        fail(exc)
    if live:
        sys.stdout.write("\n")
    _print_summary(result)
    for line in next_steps(result):
        typer.echo(line)  # never wrapped: each command works when pasted as printed


def next_steps(result: DemoResult, cwd: Path | None = None) -> list[str]:
    """The commands to look around after the demo, as lines to print; paths relative to ``cwd`` (the
    working folder) when the demo ran below it, each argument quoted for a POSIX shell."""
    import shlex

    here = (cwd or Path.cwd()).resolve()

    def shown(path: Path) -> str:
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    database = "sqlite:///" + shown(Path(result.database_url.removeprefix("sqlite:///")))
    db = f"--db {shlex.quote(database)}"
    lines = [
        "next, paste any of these (from this folder):",
        f"  cmr-monitor status {db}",
        f"  cmr-monitor dashboard {db} --artifacts {shlex.quote(shown(result.artifacts))} "
        f"--data-dir {shlex.quote(shown(result.incoming))}",
        f"  cmr-monitor export {db} --out demo-results.csv",
    ]
    if result.settings_file is not None:
        lines += [
            "or point every command at the demo with its settings file:",
            f"  export CMR_MONITOR_CONFIG={shlex.quote(shown(result.settings_file))}",
            "  cmr-monitor status",
        ]
    return lines


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

    from monitor.sim.deliveries import LABELLED_EVERY

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
    if result.realized_files:
        console.print(
            f"real Dice/HD of {result.realized_files} labelled masks (every {LABELLED_EVERY}th patient) recorded "
            "beside their estimates: the dashboard's 'Estimated vs realized' page"
        )
    if result.rejection_reasons:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(result.rejection_reasons.items()))
        console.print(f"rejected files by reason: {reasons}")
    if result.interrupted:
        console.print("stopped early (Ctrl-C); the table covers what was written until then")
    elif not result.drained:
        console.print("[yellow]some files were still waiting when the demo ended[/]")
