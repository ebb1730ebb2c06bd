"""Content that comes back to its path, through the real daemon (issue 19): a file deleted while queued
(``rejected missing``) and restored with the same bytes is scored, while the daemon runs and after a
restart; a file changed A -> B -> A ends with A's row current. Before, (path, hash) was enqueued once
forever: the restored file was never scored and B's scores stayed current.

A restore from a backup keeps the old ``mtime`` (``cp -p``, ``rsync -a``), so the restored files here
get an ``mtime`` an hour old.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from monitor.sim import make_patient
from tests.daemon._harness import DaemonProcess, _to_gz, mask_bytes, read_rows

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _wait(condition, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def _rows(url: str) -> dict[str, list[tuple[int, str, str, str | None, object]]]:
    """path -> [(id, content_hash, status, rejection_reason, superseded_at)] in id order."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            result = connection.execute(
                sa.text(
                    "SELECT path, id, content_hash, status, rejection_reason, superseded_at"
                    " FROM mask_files ORDER BY id"
                )
            ).all()
    finally:
        engine.dispose()
    rows: dict[str, list[tuple[int, str, str, str | None, object]]] = {}
    for path, *rest in result:
        rows.setdefault(path, []).append(tuple(rest))  # type: ignore[arg-type]
    return rows


def _status(url: str, path: Path) -> tuple[str, str | None] | None:
    found = _rows(url).get(str(path))
    return None if not found else (found[-1][2], found[-1][3])


def _restore(path: Path, data: bytes) -> None:
    """Put ``data`` back at ``path`` as a restore from a backup does: the old mtime, renamed into place."""
    temporary = path.with_name(f".{path.name}.restore")
    temporary.write_bytes(data)
    old = time.time() - 3600
    os.utime(temporary, (old, old))
    os.replace(temporary, path)


def _big_mask() -> bytes:
    """A mask that takes the CPU a second or two to score (40 slices of 320 x 320)."""
    import nibabel as nib

    ed, _ = make_patient(np.random.default_rng(7), n_slices=40, shape_yx=(320, 320))
    return _to_gz(nib.Nifti1Image(np.ascontiguousarray(ed.labels.transpose(2, 1, 0)), ed.affine))


def test_content_that_comes_back_is_scored_or_relinked(
    tmp_path: Path, checkpoint: Path, sqlite_template: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    (tmp_path / "monitor.db").write_bytes(sqlite_template.read_bytes())
    folder = tmp_path / "incoming" / "unet" / "1"
    folder.mkdir(parents=True)

    def daemon(name: str) -> DaemonProcess:
        return DaemonProcess(
            [tmp_path / "incoming"],
            url=url,
            artifacts=tmp_path / "artifacts",
            checkpoint=checkpoint,
            log=tmp_path / f"{name}.log",
            extra=("--batch-size", "1"),
        ).start()

    first = daemon("first")
    try:
        first.wait_ready()
        # P and Q queued behind two slow masks, then deleted: rejected missing.
        big = _big_mask()
        for i in range(2):
            (folder / f"slow{i}_ED.nii.gz").write_bytes(big)
        _wait(lambda: _status(url, folder / "slow0_ED.nii.gz") == ("scoring", None), 30, "slow0 scoring")
        p, q = folder / "p_ED.nii.gz", folder / "q_ED.nii.gz"
        p_bytes, q_bytes = mask_bytes(1), mask_bytes(2)
        p.write_bytes(p_bytes)
        q.write_bytes(q_bytes)
        _wait(lambda: _status(url, p) == _status(url, q) == ("pending", None), 10, "p and q pending")
        p.unlink()
        q.unlink()
        _wait(lambda: _status(url, p) == _status(url, q) == ("rejected", "missing"), 30, "p, q missing")
        ((p_id, *_),) = _rows(url)[str(p)]

        # P restored while the daemon runs: its row is queued again and scored.
        _restore(p, p_bytes)
        _wait(lambda: _status(url, p) == ("scored", None), 30, "restored p scored")
        assert [row[0] for row in _rows(url)[str(p)]] == [p_id]

        # R: A, then B, then A again: A's row is current again.
        r = folder / "r_ES.nii.gz"
        a_bytes, b_bytes = mask_bytes(3), mask_bytes(4)
        _restore(r, a_bytes)
        _wait(lambda: _status(url, r) == ("scored", None), 30, "A scored")
        r.write_bytes(b_bytes)
        _wait(lambda: len(_rows(url).get(str(r), [])) == 2 and _status(url, r) == ("scored", None), 30, "B")
        _restore(r, a_bytes)
        _wait(lambda: _rows(url)[str(r)][0][4] is None, 30, "A current again")
        (a_row, b_row) = _rows(url)[str(r)]
        assert (a_row[2], a_row[4], b_row[2]) == ("scored", None, "scored")
        assert b_row[4] is not None  # B superseded
    finally:
        assert first.stop() == 0, first.output()

    # Q restored while no daemon runs (old mtime): the next start's backfill takes it and scores it.
    _restore(q, q_bytes)
    second = daemon("second")
    try:
        _wait(lambda: _status(url, q) == ("scored", None), 60, "q scored after the restart")
    finally:
        assert second.stop() == 0, second.output()
    rows = read_rows(url)
    assert sorted(r.path for r in rows) == sorted(
        str(x) for x in [folder / "slow0_ED.nii.gz", folder / "slow1_ED.nii.gz", p, q, r, r]
    )
    assert all((row.status, row.scores, row.artifacts) == ("scored", 3, 2) for row in rows), rows
