"""What the command modules share: option types (device, precision, database URL) and error exits."""

from __future__ import annotations

import logging
import sys
import traceback
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

__all__ = [
    "DB_HELP",
    "DbOption",
    "Device",
    "Precision",
    "cause_chain",
    "database_url",
    "fail",
    "report_error",
]

DB_HELP = (
    "Database URL, e.g. sqlite:///cmr-monitor.db or postgresql://user@host/db. "
    "Default: the environment variable CMR_MONITOR_DATABASE_URL, else sqlite:///cmr-monitor.db."
)
#: The ``--db`` option of every command that opens the results database.
DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)]


class Device(StrEnum):
    """Where the model runs: ``auto`` is CUDA when available, else the CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    """Model arithmetic when scoring (default fp32); ``auto`` is fp16 on CUDA and fp32 on the CPU."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


def database_url(db: str | None) -> str:
    """``--db`` when given, else the configured ``database_url``."""
    if db:
        return db
    from monitor.config import get_settings

    return get_settings().database_url


def cause_chain(exc: BaseException) -> list[str]:
    """``Type: message`` of the error and of each cause that adds something (a database driver's error,
    wrapped by SQLAlchemy and quoted by ours, is shown once)."""
    lines: list[str] = []
    texts: list[str] = []
    link: BaseException | None = exc
    while link is not None:
        text = str(getattr(link, "orig", None) or link)
        if not text or not any(text in seen for seen in texts):
            texts.append(text)
            lines.append(f"{type(link).__name__}: {text}" if text else type(link).__name__)
        link = link.__cause__ or (None if link.__suppress_context__ else link.__context__)
    return lines


def report_error(exc: BaseException) -> None:
    """Print ``error: Type: message`` and its causes to stderr; the traceback too under ``--verbose``."""
    typer.echo("error: " + "\n  caused by: ".join(cause_chain(exc)), err=True)
    if logging.getLogger().isEnabledFor(logging.DEBUG):  # ``cmr-monitor --verbose``
        traceback.print_exception(exc, file=sys.stderr)


def fail(exc: BaseException) -> NoReturn:
    """Print the error and its causes to stderr (``report_error``) and exit with status 1."""
    report_error(exc)
    raise typer.Exit(1)
