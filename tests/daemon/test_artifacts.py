"""Tests of ``monitor.daemon.artifacts``: artifacts written or given up per file, the folder's state,
and temporary files swept at start and discarded on abandon (in-process, on a real folder)."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.daemon.artifacts import ArtifactsFolder, artifact_paths, errno_name
from monitor.io.nifti import MaskVolume
from monitor.qc.labels import ACDC
from monitor.telemetry import build_metrics
from tests.daemon._harness import free_pid


class _Scored:
    """What the folder needs of a ``ScoredVolume``: the pGT and the inconsistency map."""

    def __init__(self) -> None:
        self.pgt = np.zeros((2, 8, 8), np.uint8)
        self.inconsistency = np.zeros((2, 8, 8), np.uint8)


def _volume() -> MaskVolume:
    return MaskVolume(labels=np.zeros((2, 8, 8), np.uint8), spacing_mm=(8.0, 1.5, 1.5), affine=np.eye(4))


def test_a_failed_file_leaves_nothing_and_the_folder_recovers(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    folder = ArtifactsFolder(tmp_path, metrics=build_metrics(registry), label_map=ACDC)
    paths = artifact_paths(tmp_path, 7)
    paths["inconsistency"].mkdir(parents=True)  # the second artifact cannot be written
    assert folder.write(7, _volume(), _Scored()) == {}  # type: ignore[arg-type]
    assert sorted(p.name for p in paths["pgt"].parent.iterdir()) == ["7_inconsistency.nii.gz"]  # pGT removed
    assert folder.problem is not None and folder.problem.errno_name == "EISDIR"
    assert registry.get_sample_value("cmr_monitor_artifact_errors_total", {"errno": "other"}) == 1
    assert registry.get_sample_value("cmr_monitor_artifacts_writable") == 0
    folder.probe()  # the folder itself takes writes: the probe clears the failure
    assert folder.problem is None
    assert registry.get_sample_value("cmr_monitor_artifacts_writable") == 1
    written = folder.write(8, _volume(), _Scored())  # type: ignore[arg-type]
    assert written == {kind: str(p) for kind, p in artifact_paths(tmp_path, 8).items()}
    assert not [p for p in tmp_path.rglob(".*")]  # no probe or temporary file left


def test_errno_names() -> None:
    assert errno_name(OSError(errno.ENOSPC, "No space left on device")) == "ENOSPC"
    assert errno_name(OSError(errno.EROFS, "Read-only file system")) == "EROFS"
    assert errno_name(PermissionError(errno.EACCES, "Permission denied")) == "EACCES"
    assert errno_name(OSError("no errno")) == "other"


def test_sweep_at_start_and_discard_on_abandon(tmp_path: Path) -> None:
    """At start: temporary files of this process id (a previous run's) and of dead writers older than a
    minute go; a live writer's and a fresh one of an unknown writer stay. On abandon: this process's
    temporary files and the partial artifacts of the abandoned files go."""
    folder = ArtifactsFolder(tmp_path, metrics=build_metrics(CollectorRegistry()), label_map=ACDC)
    shard = tmp_path / "000000"
    shard.mkdir()
    old = time.time() - 120
    names = {
        "own": f".1_pgt.nii.gz.{os.getpid()}.tmp.nii.gz",
        "dead_old": f".2_pgt.nii.gz.{free_pid()}.tmp.nii.gz",
        "dead_fresh": f".3_pgt.nii.gz.{free_pid()}.tmp.nii.gz",
        "live_old": f".4_pgt.nii.gz.{os.getppid()}.tmp.nii.gz",
    }
    for key, name in names.items():
        (shard / name).write_bytes(b"")
        if key.endswith("old"):
            os.utime(shard / name, (old, old))
    (shard / "5_pgt.nii.gz").write_bytes(b"kept")
    assert folder.sweep() == 2
    assert sorted(p.name for p in shard.iterdir()) == sorted(
        [names["dead_fresh"], names["live_old"], "5_pgt.nii.gz"]
    )
    (shard / f".9_inconsistency.nii.gz.{os.getpid()}.tmp.nii.gz").write_bytes(b"")
    (shard / "9_pgt.nii.gz").write_bytes(b"partial")
    folder.discard({9})
    assert sorted(p.name for p in shard.iterdir()) == sorted(
        [names["dead_fresh"], names["live_old"], "5_pgt.nii.gz"]
    )
