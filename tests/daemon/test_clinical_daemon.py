"""The daemon's clinical stage: a patient's ED and ES, arriving in either order, are paired by case key
and phase; the case waits (incomplete) until both are scored; the estimated LVEF error reaches a real
``/metrics`` scrape. Fake scorer (pGT = the mask), real database, real endpoint, shipped calibration."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import Settings
from monitor.daemon import Daemon, DaemonConfig
from monitor.io.nifti import save_labels
from monitor.store import list_patients, make_engine, make_session_factory
from tests.daemon._harness import free_port, wait_for_end_state
from tests.daemon.test_daemon_inprocess import FakeScorer
from tests.phantoms import phantom_volume


def _config(tmp_path: Path) -> DaemonConfig:
    (tmp_path / "in").mkdir()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'm.db'}", artifacts_dir=tmp_path / "artifacts")
    return DaemonConfig(
        roots=(tmp_path / "in",),
        settings=settings,
        metrics_port=free_port(),
        stable_s=0.3,
        poll_interval_s=0.05,
        incomplete_timeout_s=1.0,
        shutdown_timeout_s=5.0,
    )


def _patients(url: str):
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            return list_patients(session)
    finally:
        engine.dispose()


def _write(folder: Path, seed: int, phase: str) -> None:
    volume = phantom_volume(seed, phase)
    save_labels(folder / f"patient{seed:03d}_{phase}.nii.gz", volume.labels, volume.affine)


def _lvef_histogram_count(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    for family in text_string_to_metric_families(body):
        if family.name == "cmr_monitor_lvef_estimated_error_ratio":
            return sum(s.value for s in family.samples if s.name.endswith("_count"))
    raise AssertionError("cmr_monitor_lvef_estimated_error_ratio is not exported")


@pytest.mark.parametrize("first", ["ED", "ES"])
def test_ed_and_es_pair_in_either_order_and_the_estimate_is_exported(tmp_path: Path, first: str) -> None:
    config = _config(tmp_path)
    daemon = Daemon(config, scorer_factory=lambda _: FakeScorer())
    thread = threading.Thread(target=daemon.run, daemon=True)
    thread.start()
    second = "ES" if first == "ED" else "ED"
    folder = config.roots[0]
    try:
        deadline = time.monotonic() + 120  # a migration and two models to load, on a busy machine
        while not daemon.readyz()[0]:
            assert thread.is_alive() and time.monotonic() < deadline, "daemon did not start"
            time.sleep(0.05)
        _write(folder, 7, first)
        wait_for_end_state(config.database_url, 1, timeout_s=60)
        deadline = time.monotonic() + 10
        while not (rows := _patients(config.database_url)):
            assert time.monotonic() < deadline, "no patient row after the first frame"
            time.sleep(0.1)
        (waiting,) = rows
        assert not waiting.complete and waiting.missing == (second,) and waiting.flag is None
        assert _lvef_histogram_count(config.metrics_port) == 0  # type: ignore[arg-type]

        _write(folder, 7, second)
        wait_for_end_state(config.database_url, 2, timeout_s=60)
        deadline = time.monotonic() + 10
        while not (done := _patients(config.database_url)[0]).complete:
            assert time.monotonic() < deadline, "the patient did not complete"
            time.sleep(0.1)
        deadline = time.monotonic() + 5
        while _lvef_histogram_count(config.metrics_port) < 1:  # type: ignore[arg-type]
            assert time.monotonic() < deadline, "the estimated LVEF error was not observed"
            time.sleep(0.1)
    finally:
        daemon.stop()
        thread.join(timeout=10)
    ed, es = phantom_volume(7, "ED"), phantom_volume(7, "ES")
    voxel_ml = float(np.prod(ed.spacing_mm)) / 1000
    edv, esv = np.count_nonzero(ed.labels == 3) * voxel_ml, np.count_nonzero(es.labels == 3) * voxel_ml
    assert done.case_key == "patient007" and done.missing == ()
    assert done.values["lv_edv"] == pytest.approx(edv) and done.values["lv_esv"] == pytest.approx(esv)
    assert done.values["lv_ef"] == pytest.approx(100 * (edv - esv) / edv)
    assert done.pseudo_error["lv_edv"] == pytest.approx(0.0)  # the fake pGT is the mask itself
    estimate = done.estimates["lv_ef"]
    assert 0 <= estimate.lo <= estimate.value <= estimate.hi
    assert done.calibration_version is not None
