"""In-process tests of ``monitor.daemon`` with a fake scorer (fast): the pipeline end to end, stop(),
signal handling, configuration checks and worker identities."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from monitor.config import Settings
from monitor.daemon import (
    Daemon,
    DaemonConfig,
    artifact_paths,
    is_dead_local_worker,
    on_stop,
    worker_identity,
)
from monitor.io.nifti import MaskVolume, load_mask, save_labels
from monitor.qc.labels import STRUCTURES
from monitor.qc.levels import FlagLevel
from monitor.qc.records import StructureScore, VolumeScore
from tests.daemon._harness import (
    Stream,
    assert_end_state,
    mask_bytes,
    read_rows,
    wait_for_end_state,
    write_renamed,
)
from tests.phantoms import phantom_volume


@dataclass(frozen=True)
class _Scored:
    score: VolumeScore
    pgt: np.ndarray
    inconsistency: np.ndarray


class FakeScorer:
    """Scores instantly: pGT = the mask, everything ok."""

    checkpoint_sha256 = "0" * 64

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []

    def score_batch(self, volumes: list[MaskVolume], images: list | None = None) -> list[_Scored]:
        self.batches.append(len(volumes))
        time.sleep(self.delay_s)
        structures = tuple(
            StructureScore(
                structure=s,
                pdsc=0.9,
                phd_mm=3.0,
                flag=FlagLevel.OK,
                reasons=(),
                mask_voxels=1,
                pgt_voxels=1,
                mask_volume_ml=0.1,
            )
            for s in STRUCTURES
        )
        return [
            _Scored(
                score=VolumeScore(
                    structures=structures,
                    flag=FlagLevel.OK,
                    shape=v.shape,
                    spacing_mm=v.spacing_mm,
                    slices_scored=v.shape[0],
                ),
                pgt=v.labels.copy(),
                inconsistency=np.zeros(v.shape, bool),
            )
            for v in volumes
        ]


def _config(tmp_path: Path, **overrides: object) -> DaemonConfig:
    (tmp_path / "in").mkdir(exist_ok=True)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", artifacts_dir=tmp_path / "artifacts")
    values: dict[str, object] = {
        "roots": (tmp_path / "in",),
        "settings": settings,
        "metrics_port": None,
        "stable_s": 0.3,
        "poll_interval_s": 0.05,
        "incomplete_timeout_s": 1.0,
        "shutdown_timeout_s": 5.0,
        **overrides,
    }
    return DaemonConfig(**values)  # type: ignore[arg-type]


def _start(daemon: Daemon) -> threading.Thread:
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not daemon.readyz()[0]:
        assert thread.is_alive() and time.monotonic() < deadline, "daemon did not start"
        time.sleep(0.02)
    return thread


def _received(daemon: Daemon) -> float:
    """``cmr_monitor_files_received_total`` summed over its segmenter labels."""
    return sum(
        sample.value
        for family in daemon.registry.collect()
        if family.name == "cmr_monitor_files_received"
        for sample in family.samples
        if sample.name == "cmr_monitor_files_received_total"
    )


def test_pipeline_end_to_end_and_stop_within_1s(tmp_path: Path) -> None:
    config = _config(tmp_path)
    scorer = FakeScorer()
    daemon = Daemon(config, scorer_factory=lambda _: scorer)
    thread = _start(daemon)
    try:
        stream = Stream(config.roots[0], n_valid=12, n_duplicates=2, seed=5, max_pause_s=0.01)
        stream.run()
        rows = wait_for_end_state(config.database_url, stream.expected_files, timeout_s=30)
        assert_end_state(rows, stream)
    finally:
        started = time.monotonic()
        daemon.stop()
        daemon.stop()  # idempotent
        thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 1.0
    assert not daemon.readyz()[0]
    file_id, row = next((i, r) for i, r in enumerate(rows, start=1) if r.status == "scored")  # ids from 1
    pgt = load_mask(artifact_paths(config.artifacts_dir, file_id)["pgt"])
    mask = load_mask(row.path)
    assert np.array_equal(pgt.labels, mask.labels) and np.allclose(pgt.affine, mask.affine)  # mask's geometry
    assert _received(daemon) == stream.expected_files


def test_backfill_and_batches_across_files(tmp_path: Path) -> None:
    """Files present before the start are enqueued at once and scored in batches."""
    config = _config(tmp_path, batch_size=4)
    for i in range(9):
        write_renamed(config.roots[0] / "seg" / "v1" / f"c{i}_ED.nii.gz", mask_bytes(200 + i))
    scorer = FakeScorer(delay_s=0.5)
    daemon = Daemon(config, scorer_factory=lambda _: scorer)
    thread = _start(daemon)
    try:
        rows = wait_for_end_state(config.database_url, 9, timeout_s=30)
    finally:
        daemon.stop()
        thread.join(timeout=10)
    assert all(r.status == "scored" for r in rows)
    assert max(scorer.batches) > 1
    # restarting knows every file: nothing enqueued again
    again = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = _start(again)
    again.stop()
    thread.join(timeout=5)
    assert len(read_rows(config.database_url)) == 9
    assert _received(again) == 0


def test_changed_file_is_a_new_version(tmp_path: Path) -> None:
    config = _config(tmp_path)
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = _start(daemon)
    path = config.roots[0] / "p1_ED.nii.gz"
    try:
        write_renamed(path, mask_bytes(1))
        wait_for_end_state(config.database_url, 1, timeout_s=20)
        write_renamed(path, mask_bytes(2))
        rows = wait_for_end_state(config.database_url, 2, timeout_s=20)
    finally:
        daemon.stop()
        thread.join(timeout=5)
    assert [r.status for r in rows] == ["scored", "scored"] and rows[0].content_hash != rows[1].content_hash


def test_a_write_between_hash_and_validation_defers_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segmenter finishes writing just after the intake hashed a partial file and before it parsed
    it: the intake notices the change and takes the file once, with the hash of its final content
    (before the fix it was queued with the partial hash, then rejected as changed and queued again)."""
    import hashlib

    import monitor.io.examine as examine_module  # the intake's examination (shared with the backfill)

    config = _config(tmp_path)
    path = config.roots[0] / "p1_ED.nii.gz"
    full = mask_bytes(7)
    real_load = examine_module.load_mask
    finished = threading.Event()

    def load_after_the_writer_finished(target, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(target) == path and not finished.is_set():
            path.write_bytes(full)  # the last chunk lands between the hash and the parse
            finished.set()
        return real_load(target, *args, **kwargs)

    monkeypatch.setattr(examine_module, "load_mask", load_after_the_writer_finished)
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = _start(daemon)
    try:
        path.write_bytes(full[: len(full) // 2])
        rows = wait_for_end_state(config.database_url, 1, timeout_s=20)
        time.sleep(1.0)  # a second row would come from the later sighting
        rows = read_rows(config.database_url)
    finally:
        daemon.stop()
        thread.join(timeout=5)
    assert finished.is_set()
    assert [(r.status, r.content_hash) for r in rows] == [("scored", hashlib.sha256(full).hexdigest())]


def test_stop_while_waiting_for_the_database(tmp_path: Path) -> None:
    """An unreachable database at start is retried until stop(), which returns promptly."""
    config = _config(tmp_path, settings=Settings(database_url="postgresql://nobody@127.0.0.1:1/none"))
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and daemon.readyz() == (False, "starting") and daemon.healthz()[0]
    daemon.stop()
    thread.join(timeout=3)
    assert not thread.is_alive()


def test_on_stop_calls_back_and_restores_handlers() -> None:
    calls: list[int] = []
    before = signal.getsignal(signal.SIGTERM)
    with on_stop(lambda: calls.append(1)):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert calls == [1] and signal.getsignal(signal.SIGTERM) is before


def test_outputs_inside_watched_folder_refused(tmp_path: Path) -> None:
    inside = tmp_path / "in"
    with pytest.raises(ValueError, match=r"quarantine_dir .* inside the watched folder"):
        _config(tmp_path, quarantine_dir=inside / "quarantine")
    _config(tmp_path, quarantine_dir=inside / ".quarantine")  # hidden folders are never watched
    with pytest.raises(ValueError, match=r"artifacts_dir .* inside the watched folder"):
        _config(tmp_path, settings=Settings(artifacts_dir=inside / "artifacts"))
    with pytest.raises(ValueError, match="artifacts_dir"):
        _config(tmp_path, settings=Settings(artifacts_dir=inside))


def test_dead_local_worker_detection() -> None:
    me = worker_identity()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host, boot, namespace, _ = me.rsplit("/", 3)
    assert is_dead_local_worker(f"{host}/{boot}/{namespace}/{gone.pid}", me)
    assert not is_dead_local_worker(me, me)
    assert not is_dead_local_worker(f"{host}/{boot}/{namespace}/{os.getppid()}", me)
    assert not is_dead_local_worker(f"other-host/{boot}/{namespace}/{gone.pid}", me)
    assert not is_dead_local_worker(f"{host}/{boot}/other-ns/{gone.pid}", me)
    assert not is_dead_local_worker("host:1234", me)


def test_polling_mode_takes_files_when_stable(tmp_path: Path) -> None:
    """Without inotify (NFS/SMB), a file written slowly is taken once its size and mtime are stable."""
    config = _config(tmp_path, polling=True, stable_s=0.5)
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = _start(daemon)
    try:
        stream = Stream(config.roots[0], n_valid=6, n_duplicates=1, seed=6, max_pause_s=0.01)
        stream.run()
        rows = wait_for_end_state(config.database_url, stream.expected_files, timeout_s=30)
        assert_end_state(rows, stream)
    finally:
        daemon.stop()
        thread.join(timeout=5)


def test_sidecar_overrides_and_broken_sidecar_rejects(tmp_path: Path) -> None:
    config = _config(tmp_path, quarantine_dir=tmp_path / "quarantine")
    folder = config.roots[0] / "unet" / "1.0"
    folder.mkdir(parents=True)
    (folder / "p1_ED.json").write_text('{"segmenter": "nnunet", "version": "7", "site": "H1", "case": "P-1"}')
    write_renamed(folder / "p1_ED.nii.gz", mask_bytes(1))
    (folder / "p2_ED.nii.gz.json").write_text('{"segmenter": ')  # never completed
    write_renamed(folder / "p2_ED.nii.gz", mask_bytes(2))
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = _start(daemon)
    try:
        rows = wait_for_end_state(config.database_url, 2, timeout_s=20)
    finally:
        daemon.stop()
        thread.join(timeout=5)
    assert [(r.status, r.reason) for r in rows] == [("scored", None), ("rejected", "bad_sidecar")]
    engine = sa.create_engine(config.database_url)
    with engine.connect() as connection:
        named = connection.execute(
            sa.text(
                "SELECT f.case_key, f.phase, f.site, s.name, s.version FROM mask_files f"
                " JOIN segmenters s ON s.id = f.segmenter_id ORDER BY f.id"
            )
        ).all()
    engine.dispose()
    assert [tuple(r) for r in named] == [
        ("p-1", "ED", "H1", "nnunet", "7"),  # case keys are case-folded (monitor.io.layouts)
        ("p2", "ED", None, "unet", "1.0"),
    ]
    moved = tmp_path / "quarantine" / "unet" / "1.0"
    assert sorted(p.name for p in moved.iterdir()) == ["p2_ED.nii.gz", "p2_ED.nii.gz.json"]


class _FlakyScorer(FakeScorer):
    """Out of memory on any batch of more than one file, and always fails on 5-slice masks."""

    def score_batch(self, volumes: list[MaskVolume], images: list | None = None) -> list[_Scored]:
        self.batches.append(len(volumes))
        if len(volumes) > 1:
            raise MemoryError("batch too large")
        time.sleep(0.5)  # slow enough that the other files are queued and claimed together next
        if volumes[0].shape[0] == 5:
            raise ValueError("cannot score this one")
        return super().score_batch(volumes)


def test_out_of_memory_splits_batches_and_a_failing_mask_is_rejected(tmp_path: Path) -> None:
    config = _config(tmp_path, batch_size=4)
    for i in range(4):
        write_renamed(config.roots[0] / f"c{i}_ED.nii.gz", mask_bytes(300 + i))
    odd = phantom_volume(7, n_slices=5, shape_yx=(96, 96))
    save_labels(config.roots[0] / "odd_ED.nii.gz", odd.labels, odd.affine)
    scorer = _FlakyScorer()
    daemon = Daemon(config, scorer_factory=lambda _: scorer)
    thread = _start(daemon)
    try:
        rows = wait_for_end_state(config.database_url, 5, timeout_s=30)
    finally:
        daemon.stop()
        thread.join(timeout=5)
    by_name = {Path(r.path).name: (r.status, r.reason) for r in rows}
    assert by_name.pop("odd_ED.nii.gz") == ("rejected", "scoring_failed")
    assert set(by_name.values()) == {("scored", None)}
    assert max(scorer.batches) > 1
    value = daemon.registry.get_sample_value
    assert value("cmr_monitor_transient_errors_total", {"kind": "out_of_memory"}) >= 1


class _BrokenScorer(FakeScorer):
    """Returns results the worker cannot use (a bug): the batch fails after scoring."""

    def score_batch(self, volumes: list[MaskVolume], images: list | None = None) -> list[_Scored]:
        return [object() for _ in volumes]  # type: ignore[misc]


def test_a_batch_that_keeps_failing_ends_too_many_attempts(tmp_path: Path) -> None:
    """A bug after scoring does not end the worker; the file is retried max_attempts times, then
    rejected, and the daemon keeps running."""
    config = _config(tmp_path, max_attempts=2)
    write_renamed(config.roots[0] / "p1_ED.nii.gz", mask_bytes(1))
    daemon = Daemon(config, scorer_factory=lambda _: _BrokenScorer())
    thread = _start(daemon)
    try:
        rows = wait_for_end_state(config.database_url, 1, timeout_s=20)
        assert daemon.healthz() == (True, "ok")
    finally:
        daemon.stop()
        thread.join(timeout=5)
    assert [(r.status, r.reason, r.attempts) for r in rows] == [("rejected", "too_many_attempts", 2)]
