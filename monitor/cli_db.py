"""Database commands of the ``cmr-monitor`` CLI: ``db upgrade|downgrade|current``, ``status``, ``export``.

``monitor.cli`` adds them to the main app with ``register(app)``. Every command takes ``--db URL``, which
falls back to the ``database_url`` setting (environment ``CMR_MONITOR_DATABASE_URL``, default
``sqlite:///cmr-monitor.db``). Heavy imports happen inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from monitor.store.records import StatusCounts

__all__ = ["register"]

_DB_HELP = (
    "Database URL, e.g. sqlite:///cmr-monitor.db or postgresql://user@host/db. "
    "Default: the environment variable CMR_MONITOR_DATABASE_URL, else sqlite:///cmr-monitor.db."
)
DbOption = Annotated[str | None, typer.Option("--db", help=_DB_HELP, show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the ``db`` command group and the ``status`` and ``export`` commands to ``app``."""
    db_app = typer.Typer(
        help="Results database schema: upgrade, downgrade, show the current revision.",
        no_args_is_help=True,
    )
    db_app.command("upgrade")(db_upgrade)
    db_app.command("downgrade")(db_downgrade)
    db_app.command("current")(db_current)
    app.add_typer(db_app, name="db")
    app.command("status")(status)
    app.command("export")(export)


def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    db: DbOption = None,
) -> None:
    """Migrate the database schema up to REVISION (default: the latest); creates an empty database."""
    from monitor.errors import StoreError
    from monitor.store import current, safe_url, upgrade

    url = _database_url(db)
    try:
        before = current(url)
        upgrade(url, revision)
        after = current(url)
    except StoreError as exc:
        _fail(exc)
    typer.echo(f"{safe_url(url)}: schema {before or '<empty>'} -> {after or '<empty>'}")


def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
    db: DbOption = None,
) -> None:
    """Migrate the database schema down to REVISION (take a backup first: data in dropped tables is lost)."""
    from monitor.errors import StoreError
    from monitor.store import current, downgrade, safe_url

    url = _database_url(db)
    try:
        before = current(url)
        downgrade(url, revision)
        after = current(url)
    except StoreError as exc:
        _fail(exc)
    typer.echo(f"{safe_url(url)}: schema {before or '<empty>'} -> {after or '<empty>'}")


def db_current(db: DbOption = None) -> None:
    """Print the schema revision of the database and whether it is the one this version needs."""
    from monitor.errors import StoreError
    from monitor.store import current, head_revision, safe_url

    url = _database_url(db)
    try:
        found = current(url)
        needed = head_revision()
    except StoreError as exc:
        _fail(exc)
    state = "up to date" if found == needed else f"this version needs {needed}"
    typer.echo(f"{safe_url(url)}: {found or '<empty>'} ({state})")


def status(
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show files per status and per flag level, per segmenter version, and the time of the last score."""
    import json

    from monitor.errors import StoreError
    from monitor.store import check_at_head, make_engine, make_session_factory, status_counts

    url = _database_url(db)
    try:
        check_at_head(url)
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as session:
                counts = status_counts(session)
        finally:
            engine.dispose()
    except StoreError as exc:
        _fail(exc)
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
) -> None:
    """Export the results, one row per file and structure, to CSV or Parquet."""
    from monitor.errors import StoreError
    from monitor.store import (
        EXPORT_FORMATS,
        FileStatus,
        check_at_head,
        make_engine,
        make_session_factory,
        write_export,
    )

    if out.suffix.lower() not in EXPORT_FORMATS:
        raise typer.BadParameter(f"must end in .csv or .parquet, got {out.name!r}", param_hint="--out")
    if file_status is not None and file_status not in {s.value for s in FileStatus}:
        raise typer.BadParameter(
            f"must be one of {', '.join(s.value for s in FileStatus)}, got {file_status!r}",
            param_hint="--status",
        )
    url = _database_url(db)
    try:
        check_at_head(url)
        engine = make_engine(url)
        try:
            with make_session_factory(engine)() as session:
                rows = write_export(session, out, status=file_status)
        finally:
            engine.dispose()
    except (StoreError, OSError) as exc:
        _fail(exc)
    typer.echo(f"wrote {rows} rows to {out}")


def _database_url(db: str | None) -> str:
    """``--db`` when given, else the configured ``database_url``."""
    if db:
        return db
    from monitor.config import get_settings

    return get_settings().database_url


def _fail(exc: BaseException) -> NoReturn:
    """Print the error and those of its causes that add something to stderr, and exit with status 1."""
    messages: list[str] = []
    link: BaseException | None = exc
    while link is not None:
        # a database driver's error is wrapped by SQLAlchemy and quoted by ours: show its text once
        text = str(getattr(link, "orig", None) or link) or type(link).__name__
        if not any(text in seen for seen in messages):
            messages.append(text)
        link = link.__cause__
    typer.echo("error: " + "\n  caused by: ".join(messages), err=True)
    raise typer.Exit(1)


def _print_status_table(counts: StatusCounts) -> None:
    """Two tables that fit 80 columns: the queue per status, and the flags of scored files."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from monitor.records import FlagLevel
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
