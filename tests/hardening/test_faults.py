"""Faults under a real daemon (a subprocess on SQLite): the artifacts disk full, the database locked,
the process killed mid-transaction. Nothing is lost, no partial rows, and work resumes.

The database connection drop on PostgreSQL (a TCP proxy cut for seconds) is
``tests/daemon/test_daemon_process.py::test_database_outage_loses_nothing``.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon._harness import mask_bytes, read_rows, wait_for_end_state, write_renamed
from tests.hardening.conftest import fresh_sqlite, start_daemon

pytestmark = pytest.mark.timeout(600)


def _feed(incoming: Path, seeds: range, pause_s: float = 0.0) -> list[Path]:
    paths = []
    for seed in seeds:
        path = incoming / "unet" / "1.0" / f"faultcase{seed:03d}_ED.nii.gz"
        write_renamed(path, mask_bytes(seed))
        paths.append(path)
        time.sleep(pause_s)
    return paths


def _consistent(url: str) -> None:
    """No partial rows: a scored file has its 3 structure scores and 2 artifacts, any other none."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.connect() as connection:
        orphans = connection.execute(
            sa.text(
                "SELECT count(*) FROM structure_scores s JOIN mask_files f ON f.id = s.file_id"
                " WHERE f.status != 'scored'"
            )
        ).scalar_one()
        orphan_artifacts = connection.execute(
            sa.text(
                "SELECT count(*) FROM artifacts a JOIN mask_files f ON f.id = a.file_id WHERE f.status != 'scored'"
            )
        ).scalar_one()
    engine.dispose()
    assert orphans == 0 and orphan_artifacts == 0
    for row in read_rows(url):
        if row.status == "scored":
            assert (row.scores, row.artifacts) == (3, 2), row


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_artifacts_disk_full_then_freed(tmp_path: Path, checkpoint: Path, sqlite_template: Path) -> None:
    """The artifacts folder is a full 2 MiB tmpfs: nothing is recorded half-way (scores wait for their
    artifacts), the daemon stays up and retries; once space is freed every mask is scored, and no
    temporary file is left behind."""
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    with _tmpfs(tmp_path / "artifacts", "2m") as artifacts:
        filler = artifacts / "filler"
        with open(filler, "wb") as fh, contextlib.suppress(OSError):
            while True:
                fh.write(bytes(64 * 1024))
        daemon = start_daemon(tmp_path, url, checkpoint)
        try:
            paths = _feed(tmp_path / "incoming", range(4))
            deadline = time.monotonic() + 60
            while daemon.metric("cmr_monitor_transient_errors_total") < 2 and time.monotonic() < deadline:
                time.sleep(0.5)
            assert daemon.metric("cmr_monitor_transient_errors_total") >= 2, daemon.output()
            assert not any(r.status == "scored" for r in read_rows(url))
            assert daemon.get("/healthz")[0] == 200
            _consistent(url)
            filler.unlink()
            rows = wait_for_end_state(url, len(paths), timeout_s=120, alive=lambda: daemon.alive)
            assert [r.status for r in rows] == ["scored"] * len(paths)
            _consistent(url)
            leftovers = [
                p
                for p in artifacts.rglob("*")
                if p.is_file() and not p.name.endswith(("_pgt.nii.gz", "_inconsistency.nii.gz"))
            ]
            assert not leftovers, leftovers
        finally:
            assert daemon.stop() == 0, daemon.output()


def test_sqlite_locked_for_seconds(tmp_path: Path, checkpoint: Path, sqlite_template: Path) -> None:
    """Another process holds an exclusive lock on the SQLite file for 8 s while masks arrive: the daemon
    says it is not ready, keeps what it has, and records everything once the lock is gone."""
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    daemon = start_daemon(tmp_path, url, checkpoint)
    try:
        _feed(tmp_path / "incoming", range(10, 12))
        wait_for_end_state(url, 2, alive=lambda: daemon.alive)
        lock = sqlite3.connect(url.removeprefix("sqlite:///"), timeout=30, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        writer = threading.Thread(target=_feed, args=(tmp_path / "incoming", range(12, 18), 0.3))
        writer.start()
        time.sleep(8)
        not_ready = daemon.get("/readyz")[0]
        lock.execute("COMMIT")
        lock.close()
        writer.join()
        rows = wait_for_end_state(url, 8, timeout_s=120, alive=lambda: daemon.alive)
        assert [r.status for r in rows] == ["scored"] * 8
        assert len({r.path for r in rows}) == 8
        _consistent(url)
        assert not_ready in (200, 503)  # 503 when a database call was in flight at that moment
    finally:
        assert daemon.stop() == 0, daemon.output()


def test_killed_during_transactions_nothing_lost(
    tmp_path: Path, checkpoint: Path, sqlite_template: Path
) -> None:
    """SIGKILL at random moments while 16 masks are scored and recorded (three times), restart after
    each: every mask ends scored exactly once, no partial rows."""
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    rng = random.Random(9)
    writer = threading.Thread(target=_feed, args=(tmp_path / "incoming", range(20, 36), 0.15))
    daemon = start_daemon(tmp_path, url, checkpoint, name="run0")
    writer.start()
    for run in range(1, 4):
        time.sleep(rng.uniform(0.8, 2.5))
        daemon.kill()
        _consistent(url)
        daemon = start_daemon(tmp_path, url, checkpoint, name=f"run{run}")
    writer.join()
    try:
        rows = wait_for_end_state(url, 16, timeout_s=180, alive=lambda: daemon.alive)
    finally:
        assert daemon.stop() == 0, daemon.output()
    assert len(rows) == 16 and {r.status for r in rows} == {"scored"}, rows
    assert len({r.path for r in rows}) == 16
    _consistent(url)
    artifacts = list((tmp_path / "artifacts").rglob("*"))
    assert sum(p.is_file() for p in artifacts) >= 32
