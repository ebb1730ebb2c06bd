"""Fixtures for the backfill tests: an archive of phantoms and hostile files, a local Ray, the databases.

``ray_address``: one local Ray of 2 CPUs per test module (``ray.init(num_cpus=2)`` in the test process,
shut down at the module's end; starting Ray takes seconds), whose address a command in a subprocess
joins; without Ray they are skipped (they fail under ``CI=true``). ``archive``: 160 small phantoms (3 slices) and 10 hostile files under ``unet/1.0/``, written once
per module. ``database_url``: a migrated database per test, SQLite or PostgreSQL (``backend``; a
PostgreSQL that cannot be reached skips, and fails under ``CI=true``).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from monitor.io.nifti import save_labels
from monitor.sim import make_patient
from monitor.store import upgrade
from tests import pg
from tests.hardening.hostile import HOSTILE
from tests.pg import backend_fixture, sqlite_template  # noqa: F401  (fixtures)
from tests.requirements import skip_or_fail

#: Phantoms in the archive.
N_PHANTOMS = 160
#: The hostile inputs of ``tests.hardening.hostile`` in the archive (8, plus a broken sidecar and a FIFO).
HOSTILE_KINDS = (
    "truncated_gz",
    "truncated_nii",
    "text_as_nifti",
    "random_bytes",
    "nan_spacing",
    "float_labels",
    "negative_labels",
    "zero_bytes",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Archive:
    """The files of the ``archive`` fixture."""

    root: Path  #: the folder to backfill (``unet/1.0/`` below it)
    phantoms: tuple[Path, ...]  #: valid masks
    hostile: dict[Path, frozenset[str]]  #: hostile file -> the reasons it may be rejected with

    @property
    def n_files(self) -> int:
        """Every file of the archive."""
        return len(self.phantoms) + len(self.hostile)


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """The address of a local Ray with 2 CPUs, started in this process for the module."""
    try:
        import ray
    except ImportError:
        skip_or_fail("Ray is not installed (the optional extra: pip install -e '.[dev,ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Archive:
    """160 phantoms and 10 hostile files (module docstring)."""
    root = tmp_path_factory.mktemp("archive")
    folder = root / "unet" / "1.0"
    folder.mkdir(parents=True)
    phantoms = []
    for i in range(N_PHANTOMS):
        ed, _ = make_patient(np.random.default_rng(i), n_slices=3)
        phantoms.append(save_labels(folder / f"case{i:03d}_ED.nii.gz", ed.labels, ed.affine))
    hostile: dict[Path, frozenset[str]] = {}
    for n, kind in enumerate(HOSTILE_KINDS):
        spec = HOSTILE[kind]
        path = folder / f"hostile{n:02d}_ED{spec.suffix}"
        path.write_bytes(spec.build())
        hostile[path] = spec.reasons
    sidecar = folder / "sidecar_ED.nii.gz"
    shutil.copyfile(phantoms[0], sidecar)
    (folder / "sidecar_ED.json").write_text('{"segmenter": ')  # cut off while being written
    hostile[sidecar] = frozenset({"bad_sidecar"})
    fifo = folder / "fifo_ED.nii.gz"
    os.mkfifo(fifo)  # would block a reader forever
    hostile[fifo] = frozenset({"not_a_file"})
    return Archive(root=root, phantoms=tuple(phantoms), hostile=hostile)


@pytest.fixture
def database_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database migrated to head, fresh for the test."""
    if backend == "sqlite":
        path = tmp_path / "backfill.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    server = pg.Server(pg.require_admin_url("backfill"))
    name = f"cmrbackfill_{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    url = server.url_of(name)
    upgrade(url)
    try:
        yield url
    finally:
        server.drop_database(name)
        server.close()
