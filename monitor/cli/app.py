"""The ``cmr-monitor`` application: the root options, every command, and the console entry point.

Each command lives in the module of its group (``score``, ``train``, ``synth``, ``watch``, ``backfill``, ``demo``,
``db``, ``evaluate``, ``dashboard``) and is added here by a plain import: a command module that fails to
import fails the CLI loudly. The modules import their heavy dependencies (torch, pandas, watchdog)
inside the command functions, so ``--help`` stays fast. Errors print their cause chain and exit 1;
usage errors exit 2.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
from rich.console import Console

from monitor import __version__
from monitor.cli import backfill, dashboard, db, demo, evaluate, score, synth, train, watch
from monitor.cli.options import cause_chain
from monitor.errors import MonitorError

__all__ = ["app", "main"]

app = typer.Typer(
    name="cmr-monitor",
    help="Ground-truth-free quality control of cardiac MRI segmentation masks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_console = Console()
_err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        _console.print(f"cmr-monitor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # Alembic announces every plugin and migration step at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)


app.command("score")(score.score)
app.command("train")(train.train)
app.command("synth")(synth.synth)
app.command("watch")(watch.watch)
app.command("backfill")(backfill.backfill)
app.command("demo")(demo.demo)
app.add_typer(db.db_app, name="db")
app.command("status")(db.status)
app.command("export")(db.export)
app.command("evaluate")(evaluate.evaluate)
app.command("dashboard")(dashboard.dashboard)


def main() -> None:
    """Console entry point: run the app, print the cause chain of errors and exit 1."""
    try:
        code = app(standalone_mode=False)  # an Exit inside a command comes back as its code
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        _err_console.print("aborted")
        sys.exit(130)
    except typer.TyperException as exc:  # usage errors (exit 2) and Click's other errors
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(int(getattr(exc, "exit_code", 1)))
    except Exception as exc:
        from rich.markup import escape

        _err_console.print("[red]error:[/] " + escape("\n  caused by: ".join(cause_chain(exc))))
        if isinstance(exc, MonitorError | OSError | ValueError | RuntimeError):
            sys.exit(1)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)
