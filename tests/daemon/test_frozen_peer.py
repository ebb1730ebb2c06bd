"""A peer frozen in the middle of a transaction, and a loop step that cannot make progress: two real
daemons on the local PostgreSQL (issue 19).

Daemon A reaches PostgreSQL through a TCP proxy that holds back A's ``COMMIT`` after it recorded a
file's scores (``UPDATE mask_files SET ... slices_scored ...``), and A is then stopped with SIGSTOP: its
session sits ``idle in transaction`` holding the file's row lock, as after a VM pause. Daemon B, on its
own folder of the same database, must keep taking in and scoring new files, and its ``/readyz`` must
name the claim it cannot take back. Before the fix B's lease reclaim, on its intake thread, waited on
that row lock for the whole freeze and took in no file.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon._harness import DaemonProcess, TcpProxy, mask_bytes, read_rows, write_renamed

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(300)]

#: A's session timeout: the server ends A's frozen session (and frees its lock) after this long.
_IDLE_TIMEOUT_S = 12


def _wait(condition, timeout_s: float, what: str, step_s: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step_s)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _scored(url: str, paths: list[Path]) -> bool:
    by_path = {r.path: r for r in read_rows(url)}
    return all(str(p) in by_path and by_path[str(p)].status == "scored" for p in paths)


def _sessions_of(admin: sa.Engine, application: str) -> list[str]:
    with admin.connect() as connection:
        return list(
            connection.execute(
                sa.text("SELECT state FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application},
            ).scalars()
        )


def test_frozen_peer_does_not_stall_the_other_daemon(
    postgres,  # type: ignore[no-untyped-def]
    pg_database: str,
    tmp_path: Path,
    checkpoint: Path,
) -> None:
    direct = postgres.url_of(pg_database)
    proxy = TcpProxy(("127.0.0.1", postgres.admin_url.port or 5432))
    proxy.start()
    proxy.hold_after(b"slices_scored", b"COMMIT")
    folder_a, folder_b = tmp_path / "a", tmp_path / "b"
    folder_a.mkdir()
    folder_b.mkdir()
    a = DaemonProcess(
        [folder_a],
        url=postgres.url_of(pg_database, port=proxy.port) + "?application_name=cmr-a",
        artifacts=tmp_path / "artifacts-a",
        checkpoint=checkpoint,
        log=tmp_path / "a.log",
        extra=("--lease-s", "4"),
        env={"CMR_MONITOR_DB_IDLE_IN_TRANSACTION_TIMEOUT_S": str(_IDLE_TIMEOUT_S)},
    )
    b = DaemonProcess(
        [folder_b],
        url=direct,
        artifacts=tmp_path / "artifacts-b",
        checkpoint=checkpoint,
        log=tmp_path / "b.log",
        extra=("--lease-s", "4"),
        env={"CMR_MONITOR_DB_LOCK_TIMEOUT_S": "0", "CMR_MONITOR_DAEMON_STALL_S": "2"},
    )
    admin = sa.create_engine(direct, poolclass=sa.NullPool)
    a.start(), b.start()
    try:
        a.wait_ready(), b.wait_ready()

        # A records its first file and freezes before COMMIT, holding the row lock.
        frozen = folder_a / "unet" / "1" / "frozen_ED.nii.gz"
        write_renamed(frozen, mask_bytes(1))
        assert proxy.held.wait(60), a.output()
        a.signal(signal.SIGSTOP)
        assert _sessions_of(admin, "cmr-a").count("idle in transaction") == 1

        # A's lease expires (4 s); B's reclaim meets the locked row, skips it and says so.
        _, body = _wait(
            lambda: (r := b.get("/readyz"))[0] == 503 and "reclaim blocked" in r[1] and r,
            20,
            "reclaim blocked",
        )
        assert "1 expired claim(s) held locked by another session" in body
        assert b.metric("cmr_monitor_reclaim_blocked_files") == 1
        assert b.metric("cmr_monitor_ready") == 0

        # ... and B keeps taking in and scoring new files meanwhile.
        fresh = [folder_b / "unet" / "1" / f"fresh{i}_ES.nii.gz" for i in range(3)]
        for i, path in enumerate(fresh):
            write_renamed(path, mask_bytes(10 + i))
        _wait(lambda: _scored(direct, fresh), 15, "B scores the new files during the freeze")
        assert _sessions_of(admin, "cmr-a").count("idle in transaction") == 1  # still frozen, still locked

        # The server ends A's idle session; B takes the claim back and scores it; B is ready again.
        _wait(lambda: _scored(direct, [frozen]), _IDLE_TIMEOUT_S + 20, "B scores the frozen peer's file")
        _wait(lambda: b.get("/readyz")[0] == 200, 10, "B ready again")
        assert b.metric("cmr_monitor_reclaim_blocked_files") == 0

        # A wakes up: its commit fails (session ended), it retries and finds the file done.
        a.signal(signal.SIGCONT)
        proxy.release()
        _wait(lambda: '"already_done"' in a.output(), 30, "A finds its file finished by B")
        assert a.alive

        # A step that cannot make progress (B's statements wait on a table lock; lock_timeout is off
        # for B) shows in /readyz and in cmr_monitor_loop_stalled_seconds within seconds.
        with admin.connect() as locker:
            locker.exec_driver_sql("LOCK TABLE mask_files IN EXCLUSIVE MODE")  # reads pass, writes wait
            late = folder_b / "unet" / "1" / "late_ED.nii.gz"
            write_renamed(late, mask_bytes(20))
            locked_at = time.monotonic()
            _, body = _wait(
                lambda: (r := b.get("/readyz"))[0] == 503 and "stalled" in r[1] and r, 10, "stall"
            )
            assert time.monotonic() - locked_at < 6
            assert "stalled: no progress for" in body
            assert b.metric('cmr_monitor_loop_stalled_seconds{loop="intake"}') >= 2
            locker.rollback()
        _wait(lambda: _scored(direct, [late]), 20, "the late file after the lock")
        _wait(lambda: b.get("/readyz")[0] == 200, 10, "B ready after the lock")
        assert b.metric('cmr_monitor_loop_stalled_seconds{loop="intake"}') == 0

        rows = read_rows(direct)
        assert sorted(r.path for r in rows) == sorted(str(p) for p in [frozen, *fresh, late])
        assert all((r.status, r.scores, r.artifacts) == ("scored", 3, 2) for r in rows), rows
    finally:
        for daemon in (a, b):
            if daemon.alive:
                daemon.signal(signal.SIGCONT)
        proxy.release()
        codes = [a.stop(), b.stop()]
        proxy.stop()
        admin.dispose()
    assert codes == [0, 0], (a.output(), b.output())
