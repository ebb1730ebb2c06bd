"""Stale scores on a local Ray of 2 CPUs, on SQLite and PostgreSQL: a file scored under calibration
version A (or checkpoint A) is rescored in place by a run with version B (or checkpoint B), then skipped
by the next run with B; ``--keep-stale`` (the console script) and ``rescore_stale=False`` skip it.

The runs are the real stages (``run_backfill``: decode tasks, a scoring actor, the writer) on three small
phantoms; calibration B is the shipped one under another version, checkpoint B the shipped weights saved
again (other bytes, so another SHA-256).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monitor.backfill import BackfillConfig, BackfillSummary, run_backfill
from monitor.config import Settings
from monitor.io.calibration import dump_calibration, load_calibration
from monitor.io.nifti import save_labels
from monitor.model.autoencoder import load_checkpoint, save_checkpoint
from monitor.sim import make_patient
from monitor.store import FileStatus, get_case, known_files, make_engine, make_session_factory

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

#: The installed console script (next to the interpreter), else the module.
_SCRIPT = Path(sys.executable).with_name("cmr-monitor")
_CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "monitor.cli"]
#: Phantoms in the archive.
N_FILES = 3


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``unet/1.0/`` with three 3-slice phantoms."""
    root = tmp_path_factory.mktemp("rescore")
    target = root / "unet" / "1.0"
    target.mkdir(parents=True)
    for i in range(N_FILES):
        ed, _ = make_patient(np.random.default_rng(100 + i), n_slices=3)
        save_labels(target / f"case{i}_ED.nii.gz", ed.labels, ed.affine)
    return root


@pytest.fixture(scope="module")
def calibrations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version name -> calibration file: the shipped calibration as ``site-a`` and as ``site-b``."""
    shipped = load_calibration()
    folder = tmp_path_factory.mktemp("calibrations")
    out = {}
    for version in ("site-a", "site-b"):
        out[version] = folder / f"{version}.skops"
        dump_calibration(dataclasses.replace(shipped, version=version), out[version])
    return out


@pytest.fixture(scope="module")
def checkpoint_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped weights saved again with another note: other bytes, another checkpoint hash."""
    model, meta, _ = load_checkpoint()
    extra = {**meta.extra, "note": "checkpoint B of the rescore tests"}
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "ca_b.pt", model, dataclasses.replace(meta, extra=extra)
    )


def _run(
    folder: Path,
    url: str,
    artifacts: Path,
    calibration: Path,
    checkpoint: Path | None = None,
    *,
    rescore_stale: bool = True,
) -> BackfillSummary:
    settings = Settings(
        database_url=url, calibration=str(calibration), checkpoint=checkpoint, device="cpu", torch_threads=1
    )
    config = BackfillConfig(
        sources=(folder,),
        database_url=url,
        batch=8,
        artifacts_dir=artifacts,
        checkpoint=checkpoint,
        progress=False,
        settings=settings,
        rescore_stale=rescore_stale,
    )
    summary = run_backfill(config)
    assert summary.scored + summary.rescored + summary.rejected + summary.skipped == summary.input == N_FILES
    return summary


def _counts(summary: BackfillSummary) -> tuple[int, int, int, int, int]:
    """(scored, rescored, rejected, skipped, of those kept stale)."""
    return summary.scored, summary.rescored, summary.rejected, summary.skipped, summary.skipped_stale


def _rows(url: str, folder: Path) -> dict[str, tuple[int, str | None, str, int, frozenset[str]]]:
    """path -> (file id, calibration version, checkpoint hash, structure scores, artifact kinds) of the
    folder's files, each stored once and scored (through the store's own reads)."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            known = known_files(session, [str(p) for p in folder.rglob("*.nii.gz")])
            cases = {path: get_case(session, row.file_id) for (path, _), row in known.items()}
    finally:
        engine.dispose()
    assert len(cases) == len(known) == N_FILES
    return {
        path: (
            c.file_id,
            row.calibration_version,
            row.checkpoint_hash,
            len(c.structures),
            frozenset(c.artifacts),
        )
        for (path, _), row in known.items()
        if (c := cases[path]) is not None and c.status == FileStatus.SCORED
    }


def test_a_recalibrated_archive_is_rescored_once(
    folder: Path, calibrations: dict[str, Path], ray_address: str, database_url: str, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    first = _run(folder, database_url, artifacts, calibrations["site-a"])
    assert _counts(first) == (N_FILES, 0, 0, 0, 0)
    before = _rows(database_url, folder)
    assert len(before) == N_FILES and {v for _, v, _, _, _ in before.values()} == {"site-a"}
    assert {(n, len(kinds)) for _, _, _, n, kinds in before.values()} == {(3, 2)}  # LV, RV, MYO; 2 maps

    command = [
        *_CLI, "backfill", str(folder), "--db", database_url, "--address", ray_address,
        "--artifacts", str(artifacts), "--no-progress", "--keep-stale",
    ]  # fmt: skip
    env = {**os.environ, "CMR_MONITOR_CALIBRATION": str(calibrations["site-b"]), "CMR_MONITOR_DEVICE": "cpu"}
    kept = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert kept.returncode == 0, kept.stderr[-3000:]
    assert kept.stdout.startswith(
        f"{N_FILES} files: 0 scored, 0 rescored (stale), 0 rejected, {N_FILES} skipped "
        f"(already stored; {N_FILES} of them stale, kept (--keep-stale))"
    ), kept.stdout
    assert _rows(database_url, folder) == before

    rescored = _run(folder, database_url, artifacts, calibrations["site-b"])
    assert _counts(rescored) == (0, N_FILES, 0, 0, 0)
    after = _rows(database_url, folder)
    same = {path: (i, n, kinds) for path, (i, _, _, n, kinds) in before.items()}
    assert {path: (i, n, kinds) for path, (i, _, _, n, kinds) in after.items()} == same  # in place
    assert {v for _, v, _, _, _ in after.values()} == {"site-b"}
    assert len(list(artifacts.rglob("*.nii.gz"))) == 2 * N_FILES  # the new maps over the old ones

    again = _run(folder, database_url, artifacts, calibrations["site-b"])
    assert _counts(again) == (0, 0, 0, N_FILES, 0)
    assert _rows(database_url, folder) == after


def test_a_new_checkpoint_rescores_the_archive_once(
    folder: Path,
    calibrations: dict[str, Path],
    checkpoint_b: Path,
    ray_address: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    artifacts = tmp_path / "artifacts"
    calibration = calibrations["site-a"]
    assert _counts(_run(folder, database_url, artifacts, calibration)) == (N_FILES, 0, 0, 0, 0)
    before = _rows(database_url, folder)

    rescored = _run(folder, database_url, artifacts, calibration, checkpoint_b)
    assert _counts(rescored) == (0, N_FILES, 0, 0, 0)
    after = _rows(database_url, folder)
    assert {path: row[0] for path, row in after.items()} == {path: row[0] for path, row in before.items()}
    assert len({row[2] for row in before.values()}) == len({row[2] for row in after.values()}) == 1
    assert {row[2] for row in before.values()} != {row[2] for row in after.values()}

    again = _run(folder, database_url, artifacts, calibration, checkpoint_b)
    assert _counts(again) == (0, 0, 0, N_FILES, 0)
    back = _run(folder, database_url, artifacts, calibration, rescore_stale=False)  # checkpoint A: stale
    assert _counts(back) == (0, 0, 0, N_FILES, N_FILES)
    assert _rows(database_url, folder) == after
