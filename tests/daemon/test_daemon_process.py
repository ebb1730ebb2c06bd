"""Acceptance tests: the real daemon as a subprocess on SQLite and PostgreSQL.

Each test writes a stream of masks the hard ways (see ``_harness.Stream``) and checks the end state:
every valid mask scored exactly once, every invalid one rejected with a reason that names the problem.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.daemon._harness import (
    DaemonProcess,
    Stream,
    TcpProxy,
    assert_end_state,
    mask_bytes,
    read_rows,
    wait_for_end_state,
    write_renamed,
)

pytestmark = pytest.mark.slow


def _daemon(
    tmp_path: Path, url: str, checkpoint: Path, name: str = "daemon", **kwargs: object
) -> DaemonProcess:
    return DaemonProcess(
        [tmp_path / "incoming"],
        url=url,
        artifacts=tmp_path / "artifacts",
        checkpoint=checkpoint,
        log=tmp_path / f"{name}.log",
        **kwargs,  # type: ignore[arg-type]
    )


@pytest.fixture
def incoming(tmp_path: Path) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    return folder


def test_stream_scored_once_rejected_with_reason(
    db_url: str, incoming: Path, tmp_path: Path, checkpoint: Path
) -> None:
    """60 masks at random intervals (renamed, chunked, direct), 5 duplicates, 5 invalid files; invalid
    files are moved to quarantine."""
    quarantine = tmp_path / "quarantine"
    daemon = _daemon(tmp_path, db_url, checkpoint, extra=("--quarantine", str(quarantine))).start()
    try:
        daemon.wait_ready()
        stream = Stream(incoming, seed=1)
        stream.run()
        rows = wait_for_end_state(db_url, stream.expected_files, alive=lambda: daemon.alive)
        assert_end_state(rows, stream)
        assert daemon.metric("cmr_monitor_files_scored_total") == len(stream.valid)
        assert daemon.metric("cmr_monitor_files_rejected_total") == len(stream.invalid)
        assert daemon.metric("cmr_monitor_scoring_latency_seconds_count") == len(stream.valid)
    finally:
        code = daemon.stop()
    assert code == 0, daemon.output()
    for path in stream.invalid:
        assert not path.exists() and (quarantine / path.relative_to(incoming)).is_file()
    assert all(path.is_file() for path in stream.valid)
    assert len(list((tmp_path / "artifacts").rglob("*.nii.gz"))) == 2 * len(stream.valid)


def test_kill_9_mid_stream_then_restart(
    db_url: str, incoming: Path, tmp_path: Path, checkpoint: Path
) -> None:
    """SIGKILL half way through the stream; the restarted daemon backfills and takes back the dead
    worker's claims: the same end state, no duplicate scores."""
    first = _daemon(tmp_path, db_url, checkpoint, name="first").start()
    first.wait_ready()
    stream = Stream(incoming, seed=2)
    killed = threading.Event()

    def kill_half_way(index: int) -> None:
        if index == 35 and not killed.is_set():
            first.kill()
            killed.set()

    stream.run(on_written=kill_half_way)
    assert killed.is_set()
    before = read_rows(db_url)
    assert 0 < sum(r.status == "scored" for r in before) < len(stream.valid)
    second = _daemon(tmp_path, db_url, checkpoint, name="second").start()
    try:
        rows = wait_for_end_state(db_url, stream.expected_files, alive=lambda: second.alive)
        assert_end_state(rows, stream)
    finally:
        assert second.stop() == 0, second.output()


@pytest.mark.postgres
def test_database_outage_loses_nothing(
    postgres, pg_database: str, incoming: Path, tmp_path: Path, checkpoint: Path
) -> None:  # type: ignore[no-untyped-def]
    """The database goes away (a proxy in front of PostgreSQL is stopped) in the middle of the stream
    and comes back: no file is lost and the daemon does not exit."""
    proxy = TcpProxy(("127.0.0.1", postgres.admin_url.port or 5432))
    proxy.start()
    url = postgres.url_of(pg_database, port=proxy.port)
    direct_url = postgres.url_of(pg_database)
    daemon = _daemon(tmp_path, url, checkpoint).start()
    try:
        daemon.wait_ready()
        stream = Stream(incoming, n_valid=36, seed=3)
        outage: dict[str, float] = {}

        def cut(index: int) -> None:
            if index == 10:
                proxy.stop()
                outage["start"] = time.monotonic()
            elif index == 32:
                time.sleep(max(0.0, outage["start"] + 3.0 - time.monotonic()))  # at least 3 s down
                assert daemon.alive
                assert daemon.get("/readyz")[0] == 503
                assert daemon.get("/healthz")[0] == 200
                proxy.start()
                outage["end"] = time.monotonic()

        stream.run(on_written=cut)
        assert outage["end"] - outage["start"] >= 3.0
        rows = wait_for_end_state(direct_url, stream.expected_files, alive=lambda: daemon.alive)
        assert_end_state(rows, stream)
        assert daemon.alive
        assert daemon.metric('cmr_monitor_transient_errors_total{kind="database"}') >= 1
    finally:
        code = daemon.stop()
        proxy.stop()
    assert code == 0, daemon.output()


@pytest.mark.postgres
def test_two_daemons_share_database_and_folder(
    postgres,
    pg_database: str,
    incoming: Path,
    tmp_path: Path,
    checkpoint: Path,  # type: ignore[no-untyped-def]
) -> None:
    """Two daemons on one PostgreSQL database and one folder: each file scored exactly once, by one of
    them, and both did work."""
    url = postgres.url_of(pg_database)
    daemons = [
        _daemon(tmp_path, url, checkpoint, name=f"d{i}", extra=("--batch-size", "2")).start()
        for i in range(2)
    ]
    try:
        for daemon in daemons:
            daemon.wait_ready()
        stream = Stream(incoming, n_valid=36, seed=4)
        stream.run()
        rows = wait_for_end_state(url, stream.expected_files, alive=lambda: all(d.alive for d in daemons))
        assert_end_state(rows, stream)
        scored = [d.metric("cmr_monitor_files_scored_total") for d in daemons]
        assert sum(scored) == len(stream.valid) and min(scored) > 0, scored
    finally:
        codes = [d.stop() for d in daemons]
    assert codes == [0, 0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_exits_0_in_bounded_time(
    signum: int, incoming: Path, tmp_path: Path, checkpoint: Path
) -> None:
    """/healthz and /readyz answer over HTTP; a signal in the middle of scoring stops the daemon with
    exit code 0 within a few seconds and leaves nothing claimed. (A new SQLite file is created.)"""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    daemon = _daemon(tmp_path, url, checkpoint).start()
    daemon.wait_ready()
    assert daemon.get("/healthz") == (200, "ok\n")
    assert daemon.get("/readyz") == (200, "ok\n")
    assert "\n# TYPE cmr_monitor_files_received_total counter\n" in daemon.get("/metrics")[1]
    assert daemon.metric("cmr_monitor_files_received_total") == 0
    for i in range(12):
        write_renamed(incoming / f"case{i:02d}_ED.nii.gz", mask_bytes(100 + i))
    deadline = time.monotonic() + 30
    while daemon.metric("cmr_monitor_files_scored_total") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    daemon.signal(signum)
    code = daemon.process.wait(timeout=15)  # type: ignore[union-attr]
    assert code == 0, daemon.output()
    assert time.monotonic() - started < 12
    rows = read_rows(url)
    assert not [r for r in rows if r.status == "scoring"]
    assert "stopped" in daemon.output()


def test_refuses_old_schema_unless_migrate(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, checkpoint: Path, incoming: Path
) -> None:
    """An existing database not at head is refused (exit 1, naming `db upgrade`); --migrate upgrades it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        engine = sa.create_engine(url)
        with engine.begin() as connection:  # an existing database that was never migrated
            connection.exec_driver_sql("CREATE TABLE unrelated (id INTEGER)")
        engine.dispose()
    else:
        postgres = request.getfixturevalue("postgres")
        name = postgres.create(migrated=False)
        request.addfinalizer(lambda: postgres.drop(name))
        url = postgres.url_of(name)
    refused = _daemon(tmp_path, url, checkpoint, name="refused").start()
    assert refused.process.wait(timeout=60) == 1  # type: ignore[union-attr]
    assert "db upgrade" in refused.output()
    migrated = _daemon(tmp_path, url, checkpoint, name="migrated", extra=("--migrate",)).start()
    try:
        migrated.wait_ready()
    finally:
        assert migrated.stop() == 0
