"""Calibration files: bit-for-bit round trip, allow-listed types only, checksum, clear refusals."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import skops.io as sio

from monitor.errors import CalibrationError
from monitor.io.calibration import (
    default_calibration_path,
    dump_calibration,
    dumps_calibration,
    load_calibration,
)
from monitor.qc.calibration.fit import fit_correction
from monitor.qc.calibration.targets import Target
from tests.calibration_data import synthetic_rows, tiny_calibration


def _same_predictions(a, b, rows) -> None:
    x = a.matrix(rows.rows, rows.structures)
    pa, pb = a.predict(x), b.predict(x)
    for target in Target:
        for u, v in zip(pa[target], pb[target], strict=True):
            assert np.array_equal(u, v)
    assert b.failure is not None and (b.failure.dice, b.failure.hd_mm) == (a.failure.dice, a.failure.hd_mm)
    assert np.array_equal(a.failure_probability(x, 0.5, 50.0), b.failure_probability(x, 0.5, 50.0))


@pytest.mark.parametrize("stacked", [False, True], ids=["boosted", "site-stacked"])
def test_round_trip_is_bit_for_bit(tmp_path, stacked):
    calibration = tiny_calibration()
    if stacked:
        calibration = fit_correction(calibration, synthetic_rows(12, seed=9, shift=0.3), version="site-2")
    path = tmp_path / "c.skops"
    digest = dump_calibration(calibration, path)
    loaded = load_calibration(path)
    # the same bytes when written again, and the same predictions and settings
    assert dumps_calibration(loaded) == path.read_bytes()
    assert (tmp_path / "c.skops.sha256").read_text().split()[0] == digest
    assert loaded.version == calibration.version and loaded.feature_names == calibration.feature_names
    assert loaded.confidence == calibration.confidence and set(loaded.corrections) == set(
        calibration.corrections
    )
    for target in Target:
        assert loaded.models[target].point.get_params() == calibration.models[target].point.get_params()
    _same_predictions(calibration, loaded, synthetic_rows(10, seed=11))
    with zipfile.ZipFile(path) as archive:  # no pickle inside, only JSON and .npy arrays
        assert all(n == "schema.json" or n.endswith(".npy") for n in archive.namelist())


def test_a_changed_file_fails_its_checksum(tmp_path):
    path = tmp_path / "c.skops"
    dump_calibration(tiny_calibration(), path)
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    assert info.value.reason == "checksum_mismatch"


def test_types_outside_the_allow_list_are_refused(tmp_path):
    path = tmp_path / "evil.skops"
    sio.dump({"format": "cmr-monitor-calibration", "x": os.system}, path)  # a function skops does not trust
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    assert info.value.reason == "untrusted_types" and "system" in info.value.detail


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "not_found"), (b"not a zip", "unreadable"), ({"format": "something else"}, "bad_format")],
    ids=["missing", "garbage", "other-format"],
)
def test_bad_files_are_refused_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "c.skops"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        sio.dump(content, path)
    with pytest.raises(CalibrationError) as info:
        load_calibration(path)
    assert info.value.reason == reason


def test_the_shipped_calibration_loads():
    if not default_calibration_path().is_file():
        pytest.skip("no shipped calibration in this checkout")
    calibration = load_calibration()
    assert calibration.version.startswith("acdc") and default_calibration_path().stat().st_size < 2 * 1024**2
