"""How a command fails: ``error: Type: message`` and its causes on stderr, then exit status 1."""

from __future__ import annotations

import logging
import sys
import traceback
from typing import NoReturn

import typer

__all__ = ["cause_chain", "fail", "report_error"]


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
