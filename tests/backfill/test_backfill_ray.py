"""Acceptance of ``cmr-monitor backfill`` on a local Ray of 2 CPUs, on SQLite and PostgreSQL.

160 phantoms and 10 hostile files: a run of the console script is SIGKILLed once it has committed some
rows; the resumed run (2 scoring actors) ends with 160 scored and 10 rejected rows, each file once, the
killed run's rows untouched; a third run adds nothing. One local Ray serves the module (``ray_address``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.backfill import BackfillConfig, run_backfill
from monitor.config import Settings
from tests.backfill.conftest import Archive

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: The installed console script (next to the interpreter), else the module.
_SCRIPT = Path(sys.executable).with_name("cmr-monitor")
_CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "monitor.cli"]


def _rows(url: str) -> dict[str, tuple[int, str, str, str | None]]:
    """path -> (id, content hash, status, rejection reason) of every file row."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT id, path, content_hash, status, rejection_reason FROM mask_files")
            ).all()
    finally:
        engine.dispose()
    return {r.path: (r.id, r.content_hash, r.status, r.rejection_reason) for r in rows}


def _count(url: str, table: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
    finally:
        engine.dispose()


def _kill_part_way(command: list[str], url: str, log: Path, *, at_least: int, timeout_s: float = 300) -> None:
    """Run ``command`` (output to ``log``) and SIGKILL it once the database holds ``at_least`` file rows."""
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = log.read_text(errors="replace")
                pytest.fail(
                    f"the backfill ended before it was killed ({process.returncode}):\n{output[-3000:]}"
                )
            try:
                if _count(url, "mask_files") >= at_least:
                    break
            except sa.exc.OperationalError:
                pass  # SQLite: the writer holds the lock
            time.sleep(0.2)
        else:
            pytest.fail(f"no {at_least} rows within {timeout_s} s")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def test_killed_backfill_resumes_then_adds_nothing(
    archive: Archive, ray_address: str, database_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    command = [
        *_CLI, "backfill", str(archive.root), "--db", database_url, "--address", ray_address,
        "--batch", "8", "--write-batch", "10", "--artifacts", str(artifacts), "--no-progress",
    ]  # fmt: skip
    _kill_part_way(command, database_url, tmp_path / "killed.log", at_least=10)
    killed = _rows(database_url)
    assert 10 <= len(killed) < archive.n_files, "the kill was not part way"

    config = BackfillConfig(
        sources=(archive.root,),
        database_url=database_url,
        workers=2,
        batch=8,
        write_batch=64,
        artifacts_dir=artifacts,
        progress=False,
        settings=Settings(),  # the console script's calibration: else the killed run's scores are stale
    )
    resumed = run_backfill(config)
    assert resumed.input == archive.n_files
    assert resumed.scored + resumed.rejected + resumed.skipped == archive.n_files
    assert resumed.skipped == len(killed) and resumed.rescored == 0

    rows = _rows(database_url)
    assert len(rows) == archive.n_files  # every file once: (path, content_hash) is unique
    assert {path: rows[path] for path in killed} == killed  # the killed run's rows are untouched
    phantoms = {str(p) for p in archive.phantoms}
    assert {rows[p][2] for p in phantoms} == {"scored"}
    for path, reasons in archive.hostile.items():
        _, _, status, reason = rows[str(path)]
        assert status == "rejected" and reason in reasons, (path.name, status, reason)
    assert _count(database_url, "structure_scores") == 3 * len(phantoms)
    assert _count(database_url, "artifacts") == 2 * len(phantoms)
    assert len(list(artifacts.rglob("*.nii.gz"))) >= 2 * len(phantoms)

    again = run_backfill(config)
    assert (again.scored, again.rejected, again.skipped) == (0, 0, archive.n_files)
    assert _rows(database_url) == rows
    assert _count(database_url, "structure_scores") == 3 * len(phantoms)
