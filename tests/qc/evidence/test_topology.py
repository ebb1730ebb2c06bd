"""Per-slice topology checks (``monitor.qc.evidence.topology``) on built failures of the clean phantom."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from monitor.qc.labels import Structure
from monitor.qc.reasons import ReasonCode
from tests.qc.evidence._helpers import LV, MYO, RV, failed

S = Structure
C = ReasonCode


def _wedge(labels: np.ndarray, z: int, half_angle_deg: float) -> np.ndarray:
    """bool [y, x]: a wedge of slice ``z`` about the LV centre, pointing to +x."""
    ys, xs = np.nonzero(labels[z] == LV)
    cy, cx = ys.mean(), xs.mean()
    yy, xx = np.mgrid[0 : labels.shape[1], 0 : labels.shape[2]]
    return np.abs(np.degrees(np.arctan2(yy - cy, xx - cx))) < half_angle_deg


def test_broken_ring_is_open_and_lets_the_cavity_touch_background(phantom):
    labels = phantom.labels.copy()
    labels[5][_wedge(labels, 5, 20) & (labels[5] == MYO)] = 0
    bad = failed(labels, phantom.spacing_mm)
    assert bad[S.MYO][C.MYO_OPEN].value == pytest.approx(1.0) and bad[S.MYO][C.MYO_OPEN].slices == (5,)
    assert C.LV_BACKGROUND in bad[S.LV] and bad[S.LV][C.LV_BACKGROUND].slices == (5,)


def test_the_most_basal_slice_may_be_open(phantom):
    labels = phantom.labels.copy()
    labels[0][_wedge(labels, 0, 20) & (labels[0] == MYO)] = 0  # an open ring at the base (outflow tract)
    bad = failed(labels, phantom.spacing_mm)
    assert C.MYO_OPEN not in bad[S.MYO] and C.LV_BACKGROUND not in bad[S.LV]


def test_cavity_touching_background_inside_a_closed_ring(phantom):
    """The inner half of the wall cleared over a third of the ring: still closed, but the LV meets background."""
    labels = phantom.labels.copy()
    z = 5
    lv = labels[z] == LV
    grown = lv.copy()
    for _ in range(2):  # two pixels of wall next to the cavity
        grown = (
            grown
            | np.roll(grown, 1, 0)
            | np.roll(grown, -1, 0)
            | np.roll(grown, 1, 1)
            | np.roll(grown, -1, 1)
        )
    inner = grown & ~lv & (labels[z] == MYO) & _wedge(labels, z, 60)
    labels[z][inner] = 0
    bad = failed(labels, phantom.spacing_mm)
    assert bad[S.LV][C.LV_BACKGROUND].value > 0.1 and bad[S.LV][C.LV_BACKGROUND].slices == (z,)
    assert C.MYO_OPEN not in bad[S.MYO]  # the outer wall still closes the ring


def test_rv_away_from_the_septum(phantom):
    labels = phantom.labels.copy()
    z = 4
    rv = labels[z] == RV
    labels[z][rv] = 0
    ys, xs = np.nonzero(rv)
    step = round(25.0 / phantom.spacing_mm[2])
    direction = -1 if xs.mean() < np.nonzero(labels[z] == LV)[1].mean() else 1  # away from the LV
    labels[z][ys, xs + direction * step] = RV
    bad = failed(labels, phantom.spacing_mm)[S.RV]
    assert bad[C.RV_SEPTUM].value == 1 and bad[C.RV_SEPTUM].slices == (z,)


@pytest.mark.parametrize("structure", [S.LV, S.RV, S.MYO])
def test_holes(phantom, structure):
    labels = phantom.labels.copy()
    z = 3
    value = {S.LV: LV, S.RV: RV, S.MYO: MYO}[structure]
    # a hole of 3 x 3 pixels where the structure is thick: the pixel deepest inside it
    depth = ndimage.distance_transform_edt(labels[z] == value)
    cy, cx = np.unravel_index(int(np.argmax(depth)), depth.shape)
    assert depth[cy, cx] >= 2.5
    labels[z, cy - 1 : cy + 2, cx - 1 : cx + 2] = 0
    settings_mm2 = 9 * phantom.spacing_mm[1] * phantom.spacing_mm[2]
    bad = failed(labels, phantom.spacing_mm)
    if settings_mm2 > 20.0:
        assert bad[structure][C.HOLES].value == pytest.approx(settings_mm2)
        assert bad[structure][C.HOLES].slices == (z,)
    else:  # below the tolerance (20 mm^2): a 5 x 5 hole then
        labels[z, cy - 2 : cy + 3, cx - 2 : cx + 3] = 0
        assert C.HOLES in failed(labels, phantom.spacing_mm)[structure]
