"""Faults under a real daemon (a subprocess on SQLite): the artifacts disk full or read-only, the
database locked, the process killed mid-transaction. Nothing is lost, no partial rows, and work resumes.

The database connection drop on PostgreSQL (a TCP proxy cut for seconds) is
``tests/daemon/test_daemon_process.py::test_database_outage_loses_nothing``.
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon._harness import free_pid, mask_bytes, read_rows, wait_for_end_state, write_renamed
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
    """No partial rows: a scored file has its 3 structure scores and 2 artifacts (none when they could not
    be written), any other file none."""
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
            assert row.scores == 3 and row.artifacts in (0, 2), row


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


def _feed_one(incoming: Path, seed: int, url: str) -> Path:
    """Deliver one mask and wait for its row (so that file ids follow the order of delivery)."""
    (path,) = _feed(incoming, range(seed, seed + 1))
    deadline = time.monotonic() + 30
    while str(path) not in {r.path for r in read_rows(url)}:
        assert time.monotonic() < deadline, f"no row for {path.name}"
        time.sleep(0.05)
    return path


def _until(condition, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(0.1)


def test_artifacts_outage_never_blocks_other_files(
    tmp_path: Path, checkpoint: Path, sqlite_template: Path
) -> None:
    """The artifacts folder is a 2 MiB tmpfs: one file whose artifact cannot be written, then the disk
    full (ENOSPC), then read-only (EROFS). Every mask is scored when it arrives (without artifacts while
    they cannot be written: they never hold up the queue), the errno is told apart in the log and in
    ``cmr_monitor_artifact_errors_total``, ``/readyz`` names the failing folder until a probe succeeds,
    and no temporary file is left: a stale one from a dead writer is removed at start, the failed
    writes leave none. Before: one file retried its artifacts with backoff up to 30 s and the queue
    behind it waited; /readyz said 200 and the log only ``OSError``."""
    url = fresh_sqlite(sqlite_template, tmp_path / "db")
    incoming = tmp_path / "incoming"
    with _tmpfs(tmp_path / "artifacts", "2m") as artifacts:
        shard = artifacts / "000000"
        shard.mkdir()
        stale = shard / f".16_pgt.nii.gz.{free_pid()}.tmp.nii.gz"  # a dead writer's, two minutes old
        stale.write_bytes(b"")
        os.utime(stale, (time.time() - 120, time.time() - 120))
        live = shard / f".17_pgt.nii.gz.{os.getpid()}.tmp.nii.gz"  # a live writer's: left alone
        live.write_bytes(b"")
        (shard / "2_pgt.nii.gz").mkdir()  # file 2's artifact cannot be written (EISDIR)
        daemon = start_daemon(tmp_path, url, checkpoint)
        try:
            _until(lambda: not stale.exists(), 10, "stale temporary file removed at start")
            assert live.exists()

            # one file's failure: the files before and after it get their artifacts
            for seed in range(3):
                _feed_one(incoming, seed, url)
            rows = wait_for_end_state(url, 3, alive=lambda: daemon.alive)
            assert [(r.status, r.artifacts) for r in rows] == [("scored", 2), ("scored", 0), ("scored", 2)]
            assert daemon.metric('cmr_monitor_artifact_errors_total{errno="other"}') == 1
            _until(lambda: daemon.get("/readyz")[0] == 200, 10, "ready after the next good write")

            # disk full: every file is scored at once, without artifacts; ENOSPC named
            filler = artifacts / "filler"
            with open(filler, "wb") as fh, contextlib.suppress(OSError):
                while True:
                    fh.write(bytes(64 * 1024))
            _feed(incoming, range(3, 6))
            rows = wait_for_end_state(url, 6, timeout_s=60, alive=lambda: daemon.alive)
            assert [(r.status, r.artifacts) for r in rows[3:]] == [("scored", 0)] * 3
            assert daemon.metric('cmr_monitor_artifact_errors_total{errno="ENOSPC"}') == 3
            assert daemon.metric("cmr_monitor_artifacts_writable") == 0
            status, body = daemon.get("/readyz")
            assert (status, body) == (503, "artifacts folder failing: ENOSPC (No space left on device)\n")
            assert daemon.metric("cmr_monitor_ready") == 0
            assert daemon.get("/healthz")[0] == 200
            assert '"errno": "ENOSPC"' in daemon.output()

            # space freed: the probe finds it within seconds; new files get their artifacts
            filler.unlink()
            _until(lambda: daemon.get("/readyz")[0] == 200, 15, "ready once space is freed")
            _feed(incoming, range(6, 8))
            rows = wait_for_end_state(url, 8, timeout_s=60, alive=lambda: daemon.alive)
            assert [(r.status, r.artifacts) for r in rows[6:]] == [("scored", 2)] * 2

            # read-only: the same, with EROFS
            subprocess.run(["mount", "-o", "remount,ro", str(artifacts)], check=True)
            _feed(incoming, range(8, 10))
            rows = wait_for_end_state(url, 10, timeout_s=60, alive=lambda: daemon.alive)
            assert [(r.status, r.artifacts) for r in rows[8:]] == [("scored", 0)] * 2
            assert daemon.metric('cmr_monitor_artifact_errors_total{errno="EROFS"}') == 2
            assert daemon.get("/readyz") == (503, "artifacts folder failing: EROFS (Read-only file system)\n")
            subprocess.run(["mount", "-o", "remount,rw", str(artifacts)], check=True)
            _until(lambda: daemon.get("/readyz")[0] == 200, 15, "ready once writable again")
            assert daemon.metric("cmr_monitor_artifacts_writable") == 1

            _consistent(url)
            leftovers = sorted(
                p.name
                for p in artifacts.rglob("*")
                if p.is_file() and not p.name.endswith(("_pgt.nii.gz", "_inconsistency.nii.gz"))
            )
            assert leftovers == [live.name], leftovers
            assert sum(p.is_file() for p in artifacts.rglob("*_pgt.nii.gz")) == 4
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
