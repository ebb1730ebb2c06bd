"""Database commands: ``db upgrade|downgrade|current``, ``status``, ``export``.

Every command takes ``--db URL``, which falls back to the ``database_url`` setting (environment
``CMR_MONITOR_DATABASE_URL``, default ``sqlite:///cmr-monitor.db``). Heavy imports happen inside the
commands so ``--help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from monitor.cli.exits import fail
from monitor.cli.options import DbOption, database_url

if TYPE_CHECKING:
    from monitor.store.records import StatusCounts

__all__ = ["db_app", "export", "status"]

#: The ``db`` command group.
db_app = typer.Typer(
    help="Results database schema: upgrade, downgrade, show the current revision.",
    no_args_is_help=True,
)


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOption = None,
) -> None:
    """Migrate the database schema up to REVISION (default: the latest); creates an empty database."""
    from monitor.store import upgrade

    _migrate(db, upgrade, revision)


@db_app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
    db: DbOption = None,
) -> None:
    """Migrate the database schema down to REVISION (take a backup first: data in dropped tables is lost)."""
    from monitor.store import downgrade

    _migrate(db, downgrade, revision)


def _migrate(db: str | None, migrate: Callable[..., None], revision: str) -> None:
    """Run ``migrate(url, revision)`` and print the revision before and after."""
    from monitor.errors import StoreError
    from monitor.store import current, safe_url

    url = database_url(db)
    try:
        before = current(url)
        migrate(url, revision)
        after = current(url)
    except StoreError as exc:
        fail(exc)
    typer.echo(f"{safe_url(url)}: schema {before or '<empty>'} -> {after or '<empty>'}")


@db_app.command("current")
def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database and whether it is the one this version needs."""
    from monitor.errors import StoreError
    from monitor.store import current, head_revision, safe_url

    url = database_url(db)
    try:
        found = current(url)
        needed = head_revision()
    except StoreError as exc:
        fail(exc)
    state = "up to date" if found == needed else f"this version needs {needed}"
    typer.echo(f"{safe_url(url)}: {found or '<empty>'} ({state})")


def status(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show files per status and per flag level, per segmenter version, and the time of the last score."""
    import json

    from monitor.errors import StoreError
    from monitor.store import check_at_head, open_session, status_counts

    url = database_url(db)
    try:
        check_at_head(url)
        with open_session(url) as session:
            counts = status_counts(session)
    except StoreError as exc:
        fail(exc)
    if as_json:
        typer.echo(json.dumps(counts.to_dict(), indent=2))
    else:
        _print_status_table(counts)


def export(
    out: Annotated[
        Path, typer.Option("--out", help="Output file: .csv or .parquet.", dir_okay=False, show_default=False)
    ],
    db: DbOption = None,
    file_status: Annotated[
        str | None,
        typer.Option("--status", help="Only files with this status: pending, scoring, scored or rejected."),
    ] = None,
    patients: Annotated[
        Path | None,
        typer.Option(
            "--patients",
            help="Also write the per-patient table (ED + ES: volumes, EF, LV mass, pseudo and estimated "
            "errors, flag, completeness) to this .csv or .parquet file.",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Export the results, one row per file and structure, to CSV or Parquet (and, with --patients, one
    row per patient)."""
    from monitor.errors import StoreError
    from monitor.store import EXPORT_FORMATS, FileStatus, check_at_head, open_session, write_export
    from monitor.store.clinical import write_patients

    if out.suffix.lower() not in EXPORT_FORMATS:
        raise typer.BadParameter(f"must end in .csv or .parquet, got {out.name!r}", param_hint="--out")
    if patients is not None and patients.suffix.lower() not in EXPORT_FORMATS:
        raise typer.BadParameter(
            f"must end in .csv or .parquet, got {patients.name!r}", param_hint="--patients"
        )
    if file_status is not None and file_status not in {s.value for s in FileStatus}:
        raise typer.BadParameter(
            f"must be one of {', '.join(s.value for s in FileStatus)}, got {file_status!r}",
            param_hint="--status",
        )
    url = database_url(db)
    try:
        check_at_head(url)
        with open_session(url) as session:
            rows = write_export(session, out, status=file_status)
            patient_rows = write_patients(session, patients) if patients is not None else None
    except (StoreError, OSError) as exc:
        fail(exc)
    typer.echo(f"wrote {rows} rows to {out}")
    if patient_rows is not None:
        typer.echo(f"wrote {patient_rows} patients to {patients}")


def _print_status_table(counts: StatusCounts) -> None:
    """Two tables that fit 80 columns: the queue per status, and the flags of scored files."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from monitor.qc.levels import FlagLevel
    from monitor.store import FileStatus

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value is not None else "-"

    def new_table(title: str, columns: list[str]) -> Table:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        table.add_column("segmenter")
        table.add_column("version")
        for name in columns:
            table.add_column(name, justify="right", no_wrap=True)
        return table

    def flag_rate(by_flag: dict[str, int]) -> str:
        scored = sum(by_flag.values())
        flagged = scored - by_flag[FlagLevel.OK.value]
        return f"{flagged / scored:.1%}" if scored else "-"

    queue = new_table("Files per status", [*(str(x) for x in FileStatus), "last score (UTC)"])
    flags = new_table("Scored files per flag level", [*(str(x) for x in FlagLevel), "flag rate"])
    rows = [(s.segmenter_name, s.segmenter_version, s, None) for s in counts.segmenters]
    for name, version, c, style in [*rows, ("all", "", counts, "bold")]:
        if style:
            queue.add_section()
            flags.add_section()
        queue.add_row(
            name,
            version,
            *(str(c.by_status[str(x)]) for x in FileStatus),
            when(c.last_scored_at),
            style=style,
        )
        flags.add_row(
            name, version, *(str(c.by_flag[str(x)]) for x in FlagLevel), flag_rate(c.by_flag), style=style
        )
    console = Console()
    console.print(queue)
    console.print(flags)
