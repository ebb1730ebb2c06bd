"""Fixtures for the hardening tests: a migrated SQLite template (shared with ``tests/daemon``; the
checkpoint snapshot is the session's, ``tests/conftest.py``), a hostile-input toolbox, and a daemon
subprocess per test module.

The daemon's peak resident memory is read from ``/proc/<pid>/status`` (``VmHWM``), so the memory
bound covers everything the process ever held, not a sample.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.daemon._harness import DaemonProcess
from tests.daemon.conftest import sqlite_template  # noqa: F401  (fixture)

#: The bound on the daemon's peak resident memory while it is fed hostile input.
MEMORY_LIMIT_BYTES = 1024**3


def peak_rss_bytes(pid: int) -> int:
    """Peak resident set size (``VmHWM``) of a live process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def open_fds(pid: int) -> int:
    """Open file descriptors of a live process."""
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def fresh_sqlite(template: Path, folder: Path) -> str:
    """URL of a copy of the migrated SQLite template in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "monitor.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


def start_daemon(
    folder: Path, url: str, checkpoint_path: Path, *, name: str = "daemon", extra: tuple[str, ...] = ()
) -> DaemonProcess:
    """A ready daemon watching ``folder / "incoming"``, artifacts in ``folder / "artifacts"``."""
    (folder / "incoming").mkdir(parents=True, exist_ok=True)
    daemon = DaemonProcess(
        [folder / "incoming"],
        url=url,
        artifacts=folder / "artifacts",
        checkpoint=checkpoint_path,
        log=folder / f"{name}.log",
        extra=extra,
    ).start()
    daemon.wait_ready()
    return daemon


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A temporary folder for the whole module (one daemon, many inputs)."""
    return tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Hardening tests marked ``slow`` (minutes: the 10,000-file flood) run only when asked for, with
    ``-m slow`` or ``CMR_MONITOR_HARDENING_SLOW=1``."""
    import os

    if "slow" in (config.getoption("markexpr") or "") or os.environ.get("CMR_MONITOR_HARDENING_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow hardening test: run with -m slow or CMR_MONITOR_HARDENING_SLOW=1")
    for item in items:
        if "tests/hardening/" in str(item.path) and item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
