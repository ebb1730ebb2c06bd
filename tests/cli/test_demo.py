"""``cmr-monitor demo --fast`` through the installed console script (the session's one run in a narrow
terminal, ``tests/conftest.py``): what it prints next works when pasted as printed, and the seeded
recent alerts have maps on disk."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    FileFilter,
    get_case,
    list_alerts,
    open_session,
)
from tests.cli.console import cli_env, console_script
from tests.conftest import DemoRun

pytestmark = pytest.mark.slow


def _paste(line: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a printed line in a shell, as a user pasting it would."""
    env = cli_env()
    env["PATH"] = f"{console_script().parent}:{env['PATH']}"
    return subprocess.run(["bash", "-c", line], capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_the_printed_next_steps_work_as_pasted(demo_run: DemoRun) -> None:
    folder = demo_run.folder
    lines = demo_run.ran.stdout.splitlines()
    start = lines.index("next, paste any of these (from this folder):")
    commands = [line.strip() for line in lines[start:] if line.startswith("  ")]
    assert len(commands) == 5, commands
    status, dashboard, export, use_settings, plain_status = commands
    assert status == "cmr-monitor status --db sqlite:///cmr-monitor-demo/cmr-monitor.db"

    shown = _paste(status, folder)
    assert shown.returncode == 0, shown.stderr
    assert "cardioseg" in shown.stdout and "1.1" in shown.stdout
    assert _paste(dashboard + " --help", folder).returncode == 0  # every option of the line parses
    exported = _paste(export, folder)
    assert exported.returncode == 0, exported.stderr
    assert (folder / "demo-results.csv").stat().st_size > 1000
    same = _paste(f"{use_settings} && {plain_status} --json", folder)
    assert same.returncode == 0, same.stderr
    assert '"cardioseg"' in same.stdout
    assert not (folder / "cmr-monitor.db").exists()  # nothing looked at the default database


def test_recent_seeded_alerts_have_their_maps(demo_run: DemoRun) -> None:
    url = f"sqlite:///{demo_run.workdir / 'cmr-monitor.db'}"
    week = FileFilter(start=datetime.now(UTC) - timedelta(days=6), levels=("suspicious", "erroneous"))
    with open_session(url) as session:
        recent = list_alerts(session, week, limit=500)
        cases = [get_case(session, a.file_id) for a in recent]
    assert len(cases) >= 5
    for case in cases:
        assert case is not None
        for kind in (ARTIFACT_PGT, ARTIFACT_INCONSISTENCY):
            assert Path(case.artifacts[kind]).is_file(), (case.case_key, kind)
        assert Path(case.path).is_file()
