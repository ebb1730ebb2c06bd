"""The "new user" check (``scripts/smoke.sh``): README's commands, as written, in a fresh clone of the
committed tree, with the demo in its ``--fast`` form (the session's one run, ``tests/conftest.py``, copied
into the clone). It reuses this test run's environment for torch and the other dependencies, so it costs a
few minutes, not a reinstall."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DemoRun
from tests.requirements import skip_or_fail

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_readme_commands_run_in_a_fresh_clone(tmp_path: Path, demo_run: DemoRun) -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        skip_or_fail("the smoke test clones the repository: it needs git and a git checkout")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    env.update(
        CMR_MONITOR_VENV=str(Path(sys.prefix)),
        CMR_MONITOR_SMOKE_DEMO=str(demo_run.folder),
        TMPDIR=str(tmp_path),
        COLUMNS="120",
    )
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "smoke.sh")],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        stdin=subprocess.DEVNULL,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "smoke: ok" in done.stdout
    assert "+ cmr-monitor status --db sqlite:///cmr-monitor-demo/cmr-monitor.db" in done.stderr
    assert "exit status 3" in done.stdout  # README's --fail-on line
