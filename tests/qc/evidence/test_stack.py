"""Stack checks (``monitor.qc.evidence.stack``): each fires on a built failure and is silent on the clean phantom."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.qc.evidence import EvidenceSettings, evaluate_evidence
from monitor.qc.labels import Structure
from monitor.qc.metrics import hausdorff_mm
from monitor.qc.reasons import ReasonCode
from monitor.sim.phantoms import make_image
from tests.qc.evidence._helpers import LV, MYO, RV, clean_phantom, codes, failed

S = Structure
C = ReasonCode


@pytest.mark.parametrize("seed", range(6))
def test_clean_phantoms_pass_every_check(seed):
    phantom = clean_phantom(seed)
    found = evaluate_evidence(phantom.labels, phantom.labels, phantom.spacing_mm)
    assert all(found.checks[s] for s in S)  # every structure was checked ...
    assert codes(phantom.labels, phantom.spacing_mm) == set()  # ... and nothing failed
    assert np.array_equal(found.refined_pgt, phantom.labels)  # and the refined pGT adds nothing


def test_missing_basal_slice_fails_the_stack_margin_and_moves_the_refined_phd():
    """Slice 0 empty by protocol (one spare slice), then the basal slice 1 removed: two empty slices."""
    phantom = clean_phantom(base_slice=0.3)
    labels, spacing = phantom.labels.copy(), phantom.spacing_mm
    assert not labels[0].any() and codes(labels, spacing) == set()
    labels[1] = 0
    bad = failed(labels, spacing)
    margin = bad[S.LV][C.STACK_MARGIN]
    assert margin.value == 2 and margin.slices == (0,)  # one slice is the protocol's spare
    assert C.STACK_MARGIN in bad[S.MYO]
    refined = evaluate_evidence(labels, labels, spacing).refined_pgt
    assert refined[0].any() is np.False_ and refined[1].any()  # extended into slice 1 only
    assert hausdorff_mm(labels == LV, refined == LV, spacing) >= spacing[0]


def test_spare_margin_follows_the_slice_spacing():
    settings = EvidenceSettings()
    assert (settings.spare_slices(10.0), settings.spare_slices(5.0), settings.spare_slices(8.0)) == (1, 2, 1)


def test_gap_inside_the_stack():
    phantom = clean_phantom()
    labels = phantom.labels.copy()
    labels[4] = 0
    bad = failed(labels, phantom.spacing_mm)
    for structure in S:
        assert bad[structure][C.STACK_GAP].value == 1 and bad[structure][C.STACK_GAP].slices == (4,)
    refined = evaluate_evidence(labels, labels, phantom.spacing_mm).refined_pgt
    assert (refined[4] == LV).any()  # the one-slice gap is filled from its neighbours
    assert hausdorff_mm(labels == LV, refined == LV, phantom.spacing_mm) >= phantom.spacing_mm[0]


def _shift(labels: np.ndarray, z: int, mm: float, spacing) -> np.ndarray:
    out = labels.copy()
    out[z] = np.roll(labels[z], round(mm / spacing[2]), axis=1)
    return out


def test_displaced_slice_is_a_centroid_jump():
    phantom = clean_phantom()
    spacing = phantom.spacing_mm
    labels = _shift(phantom.labels, 4, 30.0, spacing)
    bad = failed(labels, spacing)
    jump = bad[S.LV][C.CENTROID_JUMP]
    assert jump.value == pytest.approx(30.0, abs=3.0) and 4 in jump.slices
    assert C.CENTROID_JUMP in bad[S.RV] and C.CENTROID_JUMP in bad[S.MYO]
    assert not failed(_shift(phantom.labels, 4, 8.0, spacing), spacing)[S.LV]  # within breathing range


def test_a_jump_the_image_shows_too_is_motion_and_passes():
    phantom = clean_phantom()
    spacing = phantom.spacing_mm
    labels = _shift(phantom.labels, 4, 25.0, spacing)
    moved_image = make_image(labels, np.random.default_rng(1), spacing)  # the image moved with the mask
    still_image = make_image(phantom.labels, np.random.default_rng(1), spacing)  # the mask strayed
    assert C.CENTROID_JUMP not in failed(labels, spacing, image=moved_image)[S.LV]
    assert C.CENTROID_JUMP in failed(labels, spacing, image=still_image)[S.LV]


def _roll_stack(volume: np.ndarray, mm: float, spacing) -> np.ndarray:
    return np.roll(volume, round(mm / spacing[2]), axis=2)


def test_a_slice_displaced_by_10_mm_fires_with_the_image_and_motion_stays_silent():
    phantom = clean_phantom()
    spacing = phantom.spacing_mm
    image = make_image(phantom.labels, np.random.default_rng(1), spacing)
    shifted = _shift(phantom.labels, 4, 10.0, spacing)
    # the mask strayed from the image: its slice's boundary no longer fits, the neighbours' midpoint does
    jump = failed(shifted, spacing, image=image)[S.LV][C.CENTROID_JUMP]
    assert jump.slices == (4,) and jump.value == pytest.approx(10.0, abs=1.5)
    assert C.CENTROID_JUMP in failed(shifted, spacing, image=image)[S.MYO]
    # the image moved with the slice (breath-hold motion): the mask still fits its image
    moved = make_image(shifted, np.random.default_rng(1), spacing)
    assert C.CENTROID_JUMP not in failed(shifted, spacing, image=moved)[S.LV]
    # the clean phantom, and a whole stack shifted by 10 mm with its image, are silent
    assert C.CENTROID_JUMP not in failed(phantom.labels, spacing, image=image)[S.LV]
    whole = _roll_stack(phantom.labels, 10.0, spacing)
    assert C.CENTROID_JUMP not in failed(whole, spacing, image=_roll_stack(image, 10.0, spacing))[S.LV]
    assert C.CENTROID_JUMP not in failed(whole, spacing)[S.LV]
    # without an image 10 mm is within breath-hold motion (dev GT: up to 32 mm): the mask alone is silent
    assert C.CENTROID_JUMP not in failed(shifted, spacing)[S.LV]


def test_a_slice_cut_down_is_an_area_jump():
    phantom = clean_phantom()
    labels = phantom.labels.copy()
    ys, xs = np.nonzero(labels[4] == RV)
    keep = (ys < np.percentile(ys, 3)) | (ys > np.percentile(ys, 100))  # ~3 % of the RV
    cut = labels[4].copy()
    cut[(cut == RV)] = 0
    cut[ys[keep], xs[keep]] = RV
    labels[4] = cut
    assert C.AREA_JUMP in failed(labels, phantom.spacing_mm)[S.RV]


def test_a_heart_that_does_not_taper_fails_the_apex_profile():
    phantom = clean_phantom()
    labels = np.repeat(phantom.labels[2:3], phantom.labels.shape[0], axis=0)  # a cylinder
    assert failed(labels, phantom.spacing_mm)[S.LV][C.APEX_TAPER].value == pytest.approx(1.0)


def test_rv_past_the_apex():
    phantom = clean_phantom(3, apex_slice=7.2)  # 5 mm slices: 8 and 9 empty, within the spare 10 mm
    labels = phantom.labels.copy()
    assert not labels[8:].any() and codes(labels, phantom.spacing_mm) == set()
    rv_slice = np.where(labels[5] == RV, RV, 0).astype(np.uint8)
    labels[8], labels[9] = rv_slice, rv_slice
    bad = failed(labels, phantom.spacing_mm)[S.RV][C.RV_BEYOND_APEX]
    assert bad.value == 2 and bad.slices == (8, 9)


def test_swapped_labels_on_one_slice_are_erroneous():
    phantom = clean_phantom()
    labels = phantom.labels.copy()
    lv, rv = labels[5] == LV, labels[5] == RV
    labels[5][lv], labels[5][rv] = RV, LV
    bad = failed(labels, phantom.spacing_mm)[S.RV][C.RV_POSITION]
    assert bad.value > 90 and bad.slices == (5,)
    assert C.RV_POSITION.default_severity.value == "erroneous"


def test_stray_and_far_components():
    phantom = clean_phantom()
    labels = phantom.labels.copy()
    labels[3, 5:9, 5:9] = MYO  # a blob in a corner of the field of view, far from the heart
    bad = failed(labels, phantom.spacing_mm)[S.MYO]
    assert bad[C.COMPONENTS].value == 2 and bad[C.COMPONENTS].slices == (3,)
    assert bad[C.FAR_COMPONENT].value > 60 and bad[C.FAR_COMPONENT].slices == (3,)
    refined = evaluate_evidence(labels, labels, phantom.spacing_mm).refined_pgt
    assert not refined[3, 5:9, 5:9].any()  # the refined pGT keeps the heart's main body only
