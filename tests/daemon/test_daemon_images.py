"""The daemon pairs each mask with its MR image (in process, a recording fake scorer): the image the
sidecar names reaches the scorer as an array in the mask's geometry; an image of another geometry, or
none, is not used and the reason is logged and stored; ``image_evidence=False`` switches pairing off;
every reason code of the evidence is stored and counted by ``cmr_monitor_flag_reasons_total`` on a real
/metrics scrape. One test (``slow``, about 45 s) runs ``cmr-monitor watch`` as a subprocess with the real
scorer and evidence stage."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monitor.config import Settings
from monitor.daemon import Daemon, DaemonConfig
from monitor.io.nifti import MaskVolume, save_labels
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Check, StructureScore, VolumeScore
from monitor.store import get_case, make_engine, make_session_factory
from tests.daemon._harness import wait_for_end_state
from tests.phantoms import phantom_volume
from tests.telemetry._helpers import samples

#: Every code fails on the LV: what the evidence stage adds is stored and counted unchanged.
LV_CHECKS = tuple(Check(code=code, value=1.5, passed=False, slices=(1,)) for code in ReasonCode)


@dataclass(frozen=True)
class _Scored:
    score: VolumeScore
    pgt: np.ndarray
    inconsistency: np.ndarray


class RecordingScorer:
    """Records the image given with each volume; flags the LV with every reason code."""

    checkpoint_sha256 = "1" * 64

    def __init__(self) -> None:
        self.images: dict[int, np.ndarray | None] = {}  # mask voxel count -> the image it came with

    def score_batch(self, volumes: list[MaskVolume], images: list | None = None) -> list[_Scored]:
        images = images if images is not None else [None] * len(volumes)
        out = []
        for volume, image in zip(volumes, images, strict=True):
            self.images[int(np.count_nonzero(volume.labels))] = image
            structures = tuple(
                StructureScore(
                    structure=s,
                    pdsc=0.9,
                    phd_mm=3.0,
                    flag=FlagLevel.ERRONEOUS if s == Structure.LV else FlagLevel.OK,
                    reasons=tuple(ReasonCode) if s == Structure.LV else (),
                    mask_voxels=1,
                    pgt_voxels=1,
                    mask_volume_ml=0.1,
                    pdsc_3d=0.5,
                    phd_mm_3d=20.0,
                    pgt_volume_ml=0.2,
                    evidence=LV_CHECKS if s == Structure.LV else (),
                )
                for s in STRUCTURES
            )
            score = VolumeScore(
                structures=structures,
                flag=FlagLevel.ERRONEOUS,
                shape=volume.shape,
                spacing_mm=volume.spacing_mm,
                slices_scored=volume.shape[0],
                image_used=image is not None,
            )
            out.append(_Scored(score, volume.labels.copy(), np.zeros(volume.shape, bool)))
        return out


def _image_data(labels: np.ndarray) -> np.ndarray:
    return np.where(labels == 2, 60.0, np.where(labels > 0, 215.0, 90.0)).astype(np.float32)


def _deliver(incoming: Path, archive: Path, name: str, seed: int, image: str | None) -> MaskVolume:
    """A mask in ``incoming/unet/1`` whose sidecar names ``archive/<name>.nii.gz`` written as ``image``
    says: "same" (the mask's geometry), "short" (one slice fewer) or None (no sidecar, no image)."""
    volume = phantom_volume(seed, n_slices=6, shape_yx=(64, 64))
    folder = incoming / "unet" / "1"
    folder.mkdir(parents=True, exist_ok=True)
    if image is not None:
        data = _image_data(volume.labels if image == "same" else volume.labels[:-1])
        archive.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(data.transpose(2, 1, 0), volume.affine), str(archive / f"{name}.nii.gz"))
        (folder / f"{name}.json").write_text(json.dumps({"image": str(archive / f"{name}.nii.gz")}))
    save_labels(folder / f"{name}.nii.gz", volume.labels, volume.affine)  # a temporary name, renamed
    return volume


def _run(tmp_path: Path, *, image_evidence: bool, deliveries: dict[str, tuple[int, str | None]]):
    incoming, archive = tmp_path / "in", tmp_path / "archive"
    incoming.mkdir()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        artifacts_dir=tmp_path / "artifacts",
        image_evidence=image_evidence,
    )
    config = DaemonConfig(
        roots=(incoming,),
        settings=settings,
        metrics_addr="127.0.0.1",
        metrics_port=0,
        migrate=True,
        stable_s=0.3,
        poll_interval_s=0.05,
        shutdown_timeout_s=5.0,
    )
    scorer = RecordingScorer()
    daemon = Daemon(config, scorer_factory=lambda _: scorer)
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not daemon.readyz()[0]:
            assert thread.is_alive() and time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.02)
        volumes = {
            name: _deliver(incoming, archive, name, seed, image) for name, (seed, image) in deliveries.items()
        }
        wait_for_end_state(settings.database_url, len(deliveries), timeout_s=60)
        assert daemon.metrics_url is not None
        with urllib.request.urlopen(f"{daemon.metrics_url}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        daemon.stop()
        thread.join(10)
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            ids = range(1, len(deliveries) + 1)
            cases = {Path(c.path).name.removesuffix(".nii.gz"): c for i in ids if (c := get_case(session, i))}
    finally:
        engine.dispose()
    return scorer, volumes, cases, samples(body), archive


def test_images_paired_passed_stored_and_reasons_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    deliveries = {"p1_ED": (1, "same"), "p2_ED": (2, "short"), "p3_ED": (3, None)}
    with caplog.at_level(logging.INFO, logger="monitor.daemon.worker"):
        scorer, volumes, cases, metrics, archive = _run(tmp_path, image_evidence=True, deliveries=deliveries)
    assert set(cases) == set(deliveries) and all(c.status == "scored" for c in cases.values())

    given = {name: scorer.images[int(np.count_nonzero(v.labels))] for name, v in volumes.items()}
    assert given["p1_ED"] is not None
    np.testing.assert_array_equal(given["p1_ED"], _image_data(volumes["p1_ED"].labels))  # [z, y, x]
    assert given["p2_ED"] is None and given["p3_ED"] is None

    p1, p2, p3 = cases["p1_ED"], cases["p2_ED"], cases["p3_ED"]
    assert (p1.image_used, p1.image_path, p1.image_reason) == (True, str(archive / "p1_ED.nii.gz"), None)
    assert (p2.image_used, p2.image_path, p2.image_reason) == (
        False,
        str(archive / "p2_ED.nii.gz"),
        "geometry_mismatch",
    )
    assert p2.image_detail == "image shape [5, 64, 64] [z, y, x] differs from the mask's [6, 64, 64]"
    assert (p3.image_used, p3.image_path, p3.image_reason) == (False, None, "not_found")
    warned = [r for r in caplog.records if getattr(r, "action", "") == "image_not_used"]
    assert [r.reason for r in warned] == ["geometry_mismatch"]  # type: ignore[attr-defined]
    assert "p2_ED" not in warned[0].getMessage()  # the file id, never its name

    for case in cases.values():
        lv = case.structures[0]
        assert lv.reasons == tuple(str(code) for code in ReasonCode)
        assert [c.code for c in lv.evidence] == [str(code) for code in ReasonCode]
        assert (lv.pdsc_3d, lv.phd_mm_3d, lv.pgt_volume_ml) == (0.5, 20.0, 0.2)
    labels = {"segmenter": "unet", "segmenter_version": "1", "structure": "LV"}
    for code in ReasonCode:
        key = ("cmr_monitor_flag_reasons_total", frozenset({**labels, "reason": str(code)}.items()))
        assert metrics[key] == 3, code
    reasons = {dict(k[1])["reason"] for k in metrics if k[0] == "cmr_monitor_flag_reasons_total"}
    assert reasons == {str(code) for code in ReasonCode}  # bounded: the enum, nothing else
    images = {dict(k[1])["outcome"]: v for k, v in metrics.items() if k[0] == "cmr_monitor_images_total"}
    assert images == {
        "used": 1,
        "geometry_mismatch": 1,
        "not_found": 1,
        "unreadable": 0,
        "disabled": 0,
        "not_evaluated": 0,
    }


def test_image_evidence_switched_off(tmp_path: Path) -> None:
    scorer, _, cases, _, _ = _run(tmp_path, image_evidence=False, deliveries={"p1_ED": (1, "same")})
    assert list(scorer.images.values()) == [None]
    case = cases["p1_ED"]
    assert (case.image_used, case.image_reason) == (False, "disabled")
    assert case.image_path is not None and case.image_path.endswith("archive/p1_ED.nii.gz")  # the sidecar's


def test_image_evidence_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CMR_MONITOR_IMAGE_EVIDENCE", "false")
    assert Settings().image_evidence is False
    monkeypatch.setenv("CMR_MONITOR_IMAGE_EVIDENCE", "true")
    assert Settings().image_evidence is True


@pytest.mark.slow
def test_real_daemon_uses_the_image_as_evidence(
    tmp_path: Path, checkpoint: Path, sqlite_template: Path
) -> None:
    """``cmr-monitor watch`` as a subprocess with the real scorer: a mask whose sidecar names its MR image
    is scored with image evidence (checks stored, ``image_used``), one without an image is scored too."""
    import shutil

    from tests.daemon._harness import DaemonProcess

    incoming, archive = tmp_path / "in", tmp_path / "archive"
    incoming.mkdir()
    shutil.copyfile(sqlite_template, tmp_path / "m.db")
    url = f"sqlite:///{tmp_path / 'm.db'}"
    daemon = DaemonProcess(
        [incoming], url=url, artifacts=tmp_path / "artifacts", checkpoint=checkpoint, log=tmp_path / "d.log"
    ).start()
    try:
        daemon.wait_ready()
        _deliver(incoming, archive, "p1_ED", 1, "same")
        _deliver(incoming, archive, "p2_ED", 2, None)
        wait_for_end_state(url, 2, timeout_s=120, alive=lambda: daemon.alive)
        status, body = daemon.get("/metrics")
    finally:
        assert daemon.stop() == 0, daemon.output()
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            cases = [get_case(session, i) for i in (1, 2)]
            # ids follow arrival, which the two deliveries do not fix: tell them apart by name
            with_image, without = sorted(cases, key=lambda c: "p2_ED" in str(c.path) if c else True)
    finally:
        engine.dispose()
    assert with_image is not None and without is not None
    assert (with_image.status, with_image.image_used, with_image.image_reason) == ("scored", True, None)
    assert (without.status, without.image_used, without.image_reason) == ("scored", False, "not_found")
    image_codes = {"image_contrast", "edge_offset", "class_overlap"}
    checked = {c.code for s in with_image.structures for c in s.evidence}
    assert (
        checked & image_codes and not {c.code for s in without.structures for c in s.evidence} & image_codes
    )
    assert all(math.isfinite(s.pdsc_3d) for s in with_image.structures)
    exported = samples(body)
    assert status == 200
    assert exported[("cmr_monitor_images_total", frozenset({("outcome", "used")}))] == 1
    assert exported[("cmr_monitor_images_total", frozenset({("outcome", "not_found")}))] == 1
