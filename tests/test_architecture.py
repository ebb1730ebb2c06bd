"""The architecture of docs/architecture.md, checked: import contracts (import-linter, configured in
pyproject.toml), the torch-free science, a fast command line, and small modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The longest a module of the packages may be, in lines.
MAX_MODULE_LINES = 500


def test_import_contracts_are_kept(capsys: pytest.CaptureFixture[str]) -> None:
    """Stages import only downwards, qc is pure, torch stays in monitor.model, no import loops."""
    from importlinter.cli import lint_imports

    code = lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def _modules_loaded(code: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return set(result.stdout.split())


def test_importing_qc_does_not_import_torch() -> None:
    loaded = _modules_loaded("import monitor.qc; from monitor.qc import score_volume, FlagPolicy, describe")
    assert "monitor.qc.scores" in loaded
    assert not {"torch", "sqlalchemy", "monitor.model", "monitor.store"} & loaded


def test_command_line_help_imports_no_heavy_package() -> None:
    """Every command module is imported for ``--help``; torch, pandas and the stages load in the commands."""
    loaded = _modules_loaded("from monitor.cli import app")
    assert {
        "monitor.cli.watch",
        "monitor.cli.backfill",
        "monitor.cli.evaluate",
        "monitor.cli.dashboard",
    } <= loaded
    heavy = {
        "torch",
        "pandas",
        "watchdog",
        "sqlalchemy",
        "ray",
        "monitor.model",
        "monitor.daemon",
        "monitor.backfill",
    }
    assert not heavy & loaded


def test_modules_are_small() -> None:
    sources = sorted([*(REPO / "monitor").rglob("*.py"), *(REPO / "dashboard").rglob("*.py")])
    assert len(sources) > 50
    long = {
        str(p.relative_to(REPO)): n
        for p in sources
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
