"""The backfill pairs each mask with its MR image as the daemon does (no Ray: the stage functions): the
same ``pair_image`` call, the same scores, evidence and flags, the same stored image columns; an image of
another geometry is recorded with its reason; ``image_evidence`` off records ``disabled``. One test runs
the real daemon in process on the same files and compares the stored rows."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from monitor.backfill.decode import OUTCOME_SCORE, DecodeOptions, decode_entry, unpack
from monitor.backfill.scoring import ScorerOptions, ScoreWorker
from monitor.backfill.writer import Writer, _finished
from monitor.config import Settings
from monitor.daemon import Daemon, DaemonConfig
from monitor.io.identity import IngestConfig
from monitor.io.images import pair_image
from monitor.io.nifti import Limits, load_mask, save_labels
from monitor.qc.labels import ACDC
from monitor.sim.phantoms import make_image
from monitor.store import get_case, image_columns, make_engine, make_session_factory, register_model, upgrade
from tests.daemon._harness import wait_for_end_state
from tests.phantoms import phantom_volume

OPTIONS = DecodeOptions(ingest=IngestConfig(), label_map=ACDC, limits=Limits())


@pytest.fixture(scope="module")
def worker() -> ScoreWorker:
    return ScoreWorker(ScorerOptions(device="cpu", threads=1))


def _deliver(root: Path, name: str, seed: int, image: str | None, *, sidecar: bool = True) -> Path:
    """A mask ``root/unet/1/<name>.nii.gz`` with an MR-like image ``root/archive/<name>.nii.gz`` in its
    geometry ("same") or one slice short ("short"), named by a sidecar; None writes no image."""
    volume = phantom_volume(seed, n_slices=6, shape_yx=(64, 64))
    folder = root / "unet" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    if image is not None:
        labels = volume.labels if image == "same" else volume.labels[:-1]
        data = make_image(labels, np.random.default_rng(seed), volume.spacing_mm)
        (root / "archive").mkdir(exist_ok=True)
        target = root / "archive" / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), volume.affine), str(target))
        if sidecar:
            (folder / f"{name}.json").write_text(json.dumps({"image": str(target)}))
    return save_labels(folder / f"{name}.nii.gz", volume.labels, volume.affine)


def _backfill(path: Path, root: Path, worker: ScoreWorker, options: DecodeOptions = OPTIONS, **overrides):
    """The backfill's stages on one file: decode, score, the row the writer stores."""
    row = decode_entry(str(path), str(root), overrides, options, {})
    assert row["outcome"] == OUTCOME_SCORE
    frame = pd.DataFrame([row])
    frame["seq"] = [0]
    out = worker(frame).to_dict("records")[0]
    assert out["outcome"] == OUTCOME_SCORE, out["detail"]
    score, _, pairing = unpack(out["payload"])
    return score, _finished(out, score, datetime.now(UTC), pairing)


def _daemon(path: Path, worker: ScoreWorker, image_path: str | None, enabled: bool = True):
    """What the daemon's worker does with the same file: ``pair_image`` with its settings, the scorer
    given the image, the image columns ``record_scores`` stores."""
    volume = load_mask(path, ACDC, Limits())
    paired = pair_image(volume, image_path=image_path, limits=Limits(), enabled=enabled)
    score = worker._scorer.score_batch([volume], images=[paired.data])[0].score
    return score, image_columns(score, paired.pairing)


def _same(a, b) -> bool:
    """Equal scores, but for the stage timings (nan compares equal through repr)."""
    return repr(replace(a, timings_s={})) == repr(replace(b, timings_s={}))


def test_an_image_named_by_the_sidecar_is_evidence_as_in_the_daemon(tmp_path: Path, worker) -> None:
    path = _deliver(tmp_path, "p1_ED", 1, "same")
    image = str(tmp_path / "archive" / "p1_ED.nii.gz")
    score, stored = _backfill(path, tmp_path, worker)
    expected, columns = _daemon(path, worker, image)
    assert score.image_used and _same(score, expected)
    assert any(s.evidence for s in score.structures)
    assert columns == {"image_used": True, "image_path": image, "image_reason": None, "image_detail": None}
    assert (stored.image_path, stored.image_reason, stored.image_detail) == (image, None, None)
    alone, _ = _daemon(path, worker, None, enabled=False)
    assert not alone.image_used and not _same(score, alone)  # the image changed the evidence


def test_a_manifest_image_is_paired_without_a_sidecar(tmp_path: Path, worker) -> None:
    path = _deliver(tmp_path, "p2_ED", 2, "same", sidecar=False)
    image = str(tmp_path / "archive" / "p2_ED.nii.gz")
    score, stored = _backfill(path, tmp_path, worker, image_path=image)
    expected, _ = _daemon(path, worker, image)
    assert score.image_used and _same(score, expected)
    assert (stored.image_path, stored.image_reason) == (image, None)


def test_an_image_of_another_geometry_is_recorded_with_its_reason(tmp_path: Path, worker) -> None:
    path = _deliver(tmp_path, "p3_ED", 3, "short")
    image = str(tmp_path / "archive" / "p3_ED.nii.gz")
    score, stored = _backfill(path, tmp_path, worker)
    expected, columns = _daemon(path, worker, image)
    assert not score.image_used and _same(score, expected)
    assert (stored.image_path, stored.image_reason) == (image, "geometry_mismatch")
    assert stored.image_detail == "image shape [5, 64, 64] [z, y, x] differs from the mask's [6, 64, 64]"
    assert columns["image_detail"] == stored.image_detail


def test_no_image_and_image_evidence_off_are_recorded_as_the_daemon_does(tmp_path: Path, worker) -> None:
    none = _deliver(tmp_path, "p4_ED", 4, None)
    score, stored = _backfill(none, tmp_path, worker)
    assert not score.image_used
    assert (stored.image_path, stored.image_reason) == (None, "not_found")
    assert stored.image_detail == "no MR image found"
    path = _deliver(tmp_path, "p5_ED", 5, "same")
    off = replace(OPTIONS, image_evidence=False)
    score, stored = _backfill(path, tmp_path, worker, off)
    expected, columns = _daemon(path, worker, str(tmp_path / "archive" / "p5_ED.nii.gz"), enabled=False)
    assert not score.image_used and _same(score, expected)
    assert stored.image_reason == "disabled" == columns["image_reason"]


def test_the_daemon_and_the_backfill_store_the_same_rows(tmp_path: Path) -> None:
    """The real daemon (in process, the real scorer) and the backfill's stages and writer, on the same
    two files (an image in the mask's geometry, one a slice short): the stored flags, structure scores,
    evidence and image columns are the same."""
    incoming = tmp_path / "in"
    paths = [_deliver(incoming, "p1_ED", 1, "same"), _deliver(incoming, "p3_ED", 3, "short")]
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'daemon.db'}",
        artifacts_dir=tmp_path / "artifacts",
        device="cpu",
        torch_threads=1,
    )
    daemon = Daemon(
        DaemonConfig(
            roots=(incoming,),
            settings=settings,
            metrics_addr="127.0.0.1",
            metrics_port=0,
            migrate=True,
            stable_s=0.2,
            poll_interval_s=0.05,
            shutdown_timeout_s=5.0,
        )
    )
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        wait_for_end_state(settings.database_url, len(paths), timeout_s=120, alive=thread.is_alive)
    finally:
        daemon.stop()
        thread.join(10)

    backfill_url = f"sqlite:///{tmp_path / 'backfill.db'}"
    upgrade(backfill_url)
    options = replace(OPTIONS, image_evidence=settings.image_evidence and settings.evidence)
    rows = [decode_entry(str(p), str(incoming), {}, options, {}) for p in paths]
    frame = pd.DataFrame(rows)
    frame["seq"] = range(len(rows))
    worker = ScoreWorker(ScorerOptions(device="cpu", threads=1, settings=settings))
    engine = make_engine(backfill_url)
    try:
        sessions = make_session_factory(engine)
        with sessions() as session:
            model_id = register_model(session, "backfill-images-test", {})
        writer = Writer(sessions, model_id=model_id, artifacts_dir=None)
        writer.add(worker(frame))
        writer.flush()
        assert (writer.tally.scored, writer.tally.total) == (2, 2)
        assert writer.tally.images == {"used": 1, "geometry_mismatch": 1}
    finally:
        engine.dispose()

    daemon_cases, backfill_cases = _cases(settings.database_url), _cases(backfill_url)
    assert set(daemon_cases) == set(backfill_cases) == {"p1_ED", "p3_ED"}
    for name, case in backfill_cases.items():
        theirs = daemon_cases[name]
        assert case.flag == theirs.flag
        assert repr(case.structures) == repr(theirs.structures)
        image = (case.image_used, case.image_path, case.image_reason, case.image_detail)
        assert image == (theirs.image_used, theirs.image_path, theirs.image_reason, theirs.image_detail)
    assert backfill_cases["p1_ED"].image_used is True
    assert backfill_cases["p3_ED"].image_reason == "geometry_mismatch"
    assert any(s.evidence for s in backfill_cases["p1_ED"].structures)


def _cases(url: str) -> dict:
    """File name (without .nii.gz) -> its ``CaseRecord``."""
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            ids = session.execute(sa.text("SELECT id FROM mask_files")).scalars().all()
            cases = [get_case(session, i) for i in ids]
    finally:
        engine.dispose()
    return {Path(c.path).name.removesuffix(".nii.gz"): c for c in cases if c is not None}
