"""monitor.io.clinical: the calibration file round-trips with identical estimates; untrusted or foreign
files are refused; the shipped file loads."""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from monitor.errors import CheckpointError
from monitor.io.clinical import FORMAT, load_clinical_calibration, save_clinical_calibration
from monitor.qc.clinical import FEATURES, INDICES, fit_clinical_calibration


@pytest.fixture(scope="module")
def calibration():
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(240, len(FEATURES)))
    errors = {i: np.abs(rng.normal(2.0, 1.0, size=240)) for i in INDICES}
    return fit_clinical_calibration(rows, errors, np.arange(240) // 2, version="test-1")


def test_round_trip_gives_identical_estimates(calibration, tmp_path: Path) -> None:
    path = tmp_path / "c.skops"
    digest = save_clinical_calibration(calibration, path)
    assert len(digest) == 64
    loaded = load_clinical_calibration(path)
    assert loaded.version == "test-1" and loaded.features == FEATURES and loaded.confidence == 0.9
    rows = np.random.default_rng(1).normal(size=(5, len(FEATURES)))
    before, after = calibration.estimate_rows(rows), loaded.estimate_rows(rows)
    for index in INDICES:
        for a, b in zip(before[index], after[index], strict=True):
            np.testing.assert_array_equal(a, b)
    assert loaded.models["lv_ef"].baseline_column == FEATURES.index("lv_ef_pseudo_error")


def test_untrusted_types_and_other_formats_are_refused(tmp_path: Path) -> None:
    from sklearn.linear_model import LinearRegression

    foreign = tmp_path / "foreign.skops"
    foreign.write_bytes(
        sio.dumps({"format": FORMAT, "model": LinearRegression().fit([[0], [1]], [0, 1]), "x": np.ones(2)})
    )
    untrusted = tmp_path / "untrusted.skops"
    untrusted.write_bytes(sio.dumps({"format": FORMAT, "when": datetime.date(2026, 1, 1)}))
    wrong = tmp_path / "wrong.skops"
    wrong.write_bytes(sio.dumps({"format": "something-else/1"}, compression=zipfile.ZIP_DEFLATED))
    with pytest.raises(CheckpointError, match="untrusted types"):
        load_clinical_calibration(untrusted)
    with pytest.raises(CheckpointError, match="format 'something-else/1'"):
        load_clinical_calibration(wrong)
    with pytest.raises(CheckpointError):
        load_clinical_calibration(foreign)
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_clinical_calibration(tmp_path / "missing.skops")
    broken = tmp_path / "broken.skops"
    broken.write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="not a skops file"):
        load_clinical_calibration(broken)


def test_the_shipped_calibration_loads_and_covers_every_index() -> None:
    shipped = load_clinical_calibration()
    assert set(shipped.models) == set(INDICES)
    assert shipped.version.startswith("clinical-acdc-dev")
