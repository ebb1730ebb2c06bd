"""A path whose enqueue is held by a frozen peer holds up that file only (in-process, PostgreSQL).

Two daemons on one folder both enqueue every file; one frozen inside ``enqueue_file`` keeps the path's
advisory lock. The other's enqueue of that path fails after ``lock_timeout`` (``LockTimeout``) and the
intake tries that file again later, taking the other files meanwhile; the database is not marked
unavailable, so ``/readyz`` stays 200.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.config import Settings
from monitor.daemon import Daemon
from tests.daemon._harness import mask_bytes, read_rows, write_renamed
from tests.daemon.test_daemon_inprocess import FakeScorer, _config, _start

pytestmark = pytest.mark.postgres


def test_a_locked_path_holds_up_its_file_only(
    postgres,  # type: ignore[no-untyped-def]
    pg_database: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = postgres.url_of(pg_database)
    settings = Settings(database_url=url, artifacts_dir=tmp_path / "artifacts", db_lock_timeout_s=0.5)
    config = _config(tmp_path, settings=settings)
    held, free = config.roots[0] / "held_ED.nii.gz", config.roots[0] / "free_ED.nii.gz"
    peer_engine = sa.create_engine(url, poolclass=sa.NullPool)
    peer = peer_engine.connect()
    peer.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:p, 0))"), {"p": str(held)})
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = _start(daemon)
    try:
        with caplog.at_level(logging.WARNING, logger="monitor.daemon.intake"):
            write_renamed(held, mask_bytes(1))
            time.sleep(0.3)
            write_renamed(free, mask_bytes(2))
            deadline = time.monotonic() + 10
            while [(r.path, r.status) for r in read_rows(url)] != [(str(free), "scored")]:
                assert time.monotonic() < deadline, read_rows(url)
                time.sleep(0.05)
            assert daemon.readyz() == (True, "ok")
            assert "locked by another session" in caplog.text
        peer.rollback()  # the peer's session ends
        deadline = time.monotonic() + 15
        while sorted((r.path, r.status) for r in read_rows(url)) != sorted(
            [(str(free), "scored"), (str(held), "scored")]
        ):
            assert time.monotonic() < deadline, read_rows(url)
            time.sleep(0.1)
    finally:
        daemon.stop()
        thread.join(timeout=5)
        peer.close()
        peer_engine.dispose()
