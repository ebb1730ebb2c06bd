"""The ``cmr-monitor`` application: the root options, every command, and the console entry point.

Each command lives in the module of its group (``score``, ``train``, ``synth``, ``watch``, ``backfill``, ``demo``,
``db``, ``evaluate``, ``dashboard``) and is added here by a plain import: a command module that fails to
import fails the CLI loudly. The modules import their heavy dependencies (torch, pandas, watchdog)
inside the command functions, so ``--help`` stays fast.

The exit status is a contract that scripts and CI pipelines rely on (``run`` keeps it):

- 0: success;
- 1: a runtime failure, printed as one line ``error: Type: message`` (plus its causes) on stderr;
- 2: a bad invocation (unknown option, missing argument, bad value), one line on stderr;
- 3: ``score --fail-on`` found a mask flagged at that level or worse;
- 130: interrupted (Ctrl-C).

No traceback is printed unless ``--verbose`` is given.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Annotated

import typer

from monitor import __version__
from monitor.cli import backfill, calibrate, dashboard, db, demo, evaluate, score, synth, train, watch
from monitor.cli.exits import report_error

__all__ = ["EXIT_ERROR", "EXIT_FLAGGED", "EXIT_INTERRUPTED", "EXIT_USAGE", "app", "main", "run"]

#: Exit status of a runtime failure.
EXIT_ERROR = 1
#: Exit status of a bad invocation.
EXIT_USAGE = 2
#: Exit status of ``score --fail-on`` when a mask is flagged at that level or worse.
EXIT_FLAGGED = 3
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130

app = typer.Typer(
    name="cmr-monitor",
    help="Ground-truth-free quality control of cardiac MRI segmentation masks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cmr-monitor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log at DEBUG level; show tracebacks of errors.")
    ] = False,
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
app.command("calibrate")(calibrate.calibrate)
app.command("dashboard")(dashboard.dashboard)


def run(args: Sequence[str] | None = None) -> int:
    """Run the app on ``args`` (default ``sys.argv[1:]``) and return the exit status (see the module).

    Errors are printed to stderr as one line (a runtime error also names its causes); with
    ``--verbose`` a runtime error's traceback follows.
    """
    try:
        code = app(args=args, prog_name="cmr-monitor", standalone_mode=False)
    except typer.Exit as exc:  # raised before a command ran (an eager option); commands' Exit is returned
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except typer.TyperException as exc:  # usage errors (bad option, missing argument, bad value)
        return _usage_error(exc)
    except Exception as exc:
        report_error(exc)
        return EXIT_ERROR
    return code if isinstance(code, int) else 0


def _usage_error(exc: typer.TyperException) -> int:
    """One line on stderr: what was wrong and where to read the command's help; returns the exit status."""
    code = int(getattr(exc, "exit_code", EXIT_USAGE))
    message = exc.format_message().replace("\n", " ").strip()
    if not message:  # a group called without a command has printed its help already
        return code
    context = getattr(exc, "ctx", None)
    where = context.command_path if context is not None else "cmr-monitor"
    hint = f" (see '{where} --help')" if code == EXIT_USAGE else ""
    typer.echo(f"error: {message}{hint}", err=True)
    return code


def main() -> None:
    """Console entry point (``cmr-monitor``, ``python -m monitor.cli``): ``run`` and exit with its status."""
    sys.exit(run())
