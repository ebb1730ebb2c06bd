"""Fixtures that suites in several folders share, defined here once so that a session-scoped one runs
once per session (a fixture imported into two folders' conftests is two fixtures, each run apart).

``checkpoint``: a snapshot of the shipped checkpoint (the daemon, hardening, telemetry and demo tests).

``demo_run``: one ``cmr-monitor demo --fast`` through the installed console script, read by the demo
tests of ``tests/sim`` and ``tests/cli`` and by the README smoke test (``scripts/smoke.sh`` copies its
work folder into the fresh clone instead of running the demo again).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from monitor.telemetry.server import free_port
from tests.cli.console import Ran, cli_env, run_cli


@dataclass(frozen=True, slots=True)
class DemoRun:
    """A finished ``demo --fast``: the folder it ran in (its work folder is ``cmr-monitor-demo`` there,
    its stdout also in ``demo.out``) and what it printed."""

    folder: Path
    ran: Ran

    @property
    def workdir(self) -> Path:
        """The demo's work folder (database, incoming masks, artifacts)."""
        return self.folder / "cmr-monitor-demo"


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the shipped checkpoint (it may be rewritten by training while tests run), or an
    untrained autoencoder when none is shipped: the daemon tests need a model, not a good one."""
    from monitor.model.autoencoder import (
        CheckpointMeta,
        ConvAutoencoder,
        default_checkpoint_path,
        save_checkpoint,
    )

    target = tmp_path_factory.mktemp("checkpoint") / "ca.pt"
    shipped = default_checkpoint_path()
    if shipped.is_file():
        shutil.copyfile(shipped, target)
    else:
        save_checkpoint(target, ConvAutoencoder(dropout=0.0), CheckpointMeta(dropout=0.0))
    return target


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, checkpoint: Path) -> DemoRun:
    """``cmr-monitor demo --fast`` on the CPU with the README's defaults (four weeks of history, the
    dashboard on a free port), in a narrow terminal (60 columns, where an old hint wrapped), with a
    snapshot of the shipped checkpoint; fails every test that reads it when the demo fails."""
    folder = tmp_path_factory.mktemp("demo")
    ran = run_cli(
        *("demo", "--fast", "--device", "cpu", "--checkpoint", str(checkpoint)),
        *("--metrics-port", "0", "--dashboard-port", str(free_port())),
        cwd=folder,
        env=cli_env(COLUMNS="60"),
        timeout_s=300,
    )
    (folder / "demo.out").write_text(ran.stdout)
    assert ran.returncode == 0, ran
    return DemoRun(folder, ran)
