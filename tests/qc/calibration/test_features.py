"""Mask and image features with known values (blocks at known distances, slices, intensities)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.qc.calibration.features import feature_matrix, feature_rows, image_features, mask_features
from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import Structure
from monitor.qc.scores import score_volume

SPACING = (10.0, 1.5, 1.5)


def _heart() -> np.ndarray:
    m = np.zeros((8, 40, 40), np.uint8)
    m[1:6, 10:30, 10:30] = 2  # MYO block around
    m[1:6, 14:26, 14:26] = 3  # LV cavity
    m[1:4, 10:30, 32:38] = 1  # RV on slices 1-3 only
    return m


def test_mask_features_of_a_clean_heart():
    f = mask_features(_heart(), _heart(), SPACING)
    assert f[Structure.LV]["components"] == 1 and f[Structure.LV]["off_mm"] == 0
    assert f[Structure.LV]["n_slices"] == 5 and f[Structure.LV]["slice_gaps"] == 0
    assert f[Structure.RV]["slices_without"] == 2  # LV/MYO on slices 4-5 without RV
    assert f[Structure.LV]["slice_dsc_min"] == 1.0
    assert f[Structure.LV]["margin_min"] == 1 and f[Structure.LV]["margin_max"] == 2
    assert f[Structure.LV]["lv_open"] == 0.0  # the cavity is enclosed by myocardium
    assert f[Structure.LV]["centroid_jump_mm"] == 0.0


def test_a_blob_off_the_heart_and_a_gap():
    m = _heart()
    m[2, 30:33, 2:5] = 3  # an LV blob, 3D-disconnected from the cavity
    lv = mask_features(m, None, SPACING)[Structure.LV]
    assert lv["components"] == 2 and lv["off_share"] == pytest.approx(9 / (9 + 5 * 144))
    # farthest blob voxel (2, 32, 2) to nearest cavity voxel (2, 25, 14): 7 rows, 12 columns of 1.5 mm
    assert lv["off_mm"] == pytest.approx(1.5 * math.hypot(7, 12))
    assert math.isnan(lv["slice_dsc_min"])
    m = _heart()
    m[3] = np.where(m[3] == 3, 2, m[3])  # LV missing on slice 3: a gap
    lv = mask_features(m, None, SPACING)[Structure.LV]
    assert lv["slice_gaps"] == 1 and lv["n_slices"] == 4


def test_image_features_scale_free():
    m = _heart()
    image = np.where(m == 3, 200.0, np.where(m == 2, 60.0, 20.0)).astype(np.float32)
    f = image_features(image, m)
    g = image_features(image * 7.0 + 100.0, m)  # another scanner's scale
    assert f[Structure.LV]["img_mean"] == pytest.approx(g[Structure.LV]["img_mean"], abs=1e-5)
    assert f[Structure.LV]["img_edge"] > 0.5  # bright pool inside, dark myocardium outside
    assert f[Structure.LV]["img_mean"] > f[Structure.MYO]["img_mean"]


def test_feature_rows_and_matrix():
    m = _heart()
    score = score_volume(m, m, SPACING, policy=FlagPolicy(), slices_scored=5, evidence=None)
    rows = feature_rows(score, mask_features(m, m, SPACING))
    assert rows[Structure.LV]["pdsc"] == 1.0 and rows[Structure.LV]["pdsc_RV"] == 1.0
    assert math.isnan(rows[Structure.LV]["pdsc_3d"])  # evidence stage not run
    assert rows[Structure.LV]["ml_ratio"] == 1.0
    assert not any(key.startswith("chk_") for key in rows[Structure.LV])
    with_evidence = feature_rows(score_volume(m, m, SPACING, policy=FlagPolicy(), slices_scored=5))
    lv = with_evidence[Structure.LV]
    assert 0.0 < lv["pdsc_3d"] <= 1.0 and any(key.startswith("chk_") for key in lv)
    x = feature_matrix([rows[Structure.LV], {}], ["pdsc", "nope"])
    assert x.shape == (2, 2) and x[0, 0] == 1.0 and np.isnan(x[0, 1]) and np.isnan(x[1]).all()
