"""Image evidence (``monitor.qc.evidence.image``) on a synthetic bright-pool / dark-myocardium image."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.qc.evidence import evaluate_evidence
from monitor.qc.labels import Structure
from monitor.qc.reasons import ReasonCode
from monitor.sim.corruptions import dilate_structure, erode_structure
from monitor.sim.phantoms import make_image
from tests.qc.evidence._helpers import LV, MYO, clean_phantom, failed

S = Structure
C = ReasonCode
IMAGE_CODES = {C.IMAGE_CONTRAST, C.EDGE_OFFSET, C.CLASS_OVERLAP}


def _image(phantom, seed: int = 2) -> np.ndarray:
    return make_image(phantom.labels, np.random.default_rng(seed), phantom.spacing_mm).astype(np.float32)


def _image_failures(labels, phantom, image) -> dict:
    return {
        s: {code: check for code, check in found.items() if code in IMAGE_CODES}
        for s, found in failed(labels, phantom.spacing_mm, image=image).items()
    }


@pytest.mark.parametrize("seed", range(4))
def test_ground_truth_passes_every_image_check(seed):
    phantom = clean_phantom(seed)
    found = evaluate_evidence(phantom.labels, phantom.labels, phantom.spacing_mm, _image(phantom, seed))
    assert found.image_used
    ran = {(s, c.code) for s, checks in found.checks.items() for c in checks}
    assert {(S.LV, C.EDGE_OFFSET), (S.LV, C.IMAGE_CONTRAST), (S.RV, C.IMAGE_CONTRAST)} <= ran
    assert {(S.LV, C.CLASS_OVERLAP), (S.MYO, C.CLASS_OVERLAP)} <= ran
    assert all(c.passed for checks in found.checks.values() for c in checks)


def test_dilated_lv_fails_and_the_intensity_scale_changes_nothing(phantom):
    image = _image(phantom)
    dilated = dilate_structure(phantom.labels, "LV", 2)
    bad = _image_failures(dilated, phantom, image)[S.LV]
    assert bad[C.EDGE_OFFSET].value < -1.2  # the image's edge lies inside the mask
    for scale in (7.0, 1 / 7.0):
        scaled = evaluate_evidence(dilated, dilated, phantom.spacing_mm, image * scale)
        plain = evaluate_evidence(dilated, dilated, phantom.spacing_mm, image)
        for s in S:
            for a, b in zip(scaled.checks[s], plain.checks[s], strict=True):
                assert a.code == b.code and a.passed == b.passed
                assert a.value == pytest.approx(b.value, rel=1e-4, abs=1e-6)


def test_eroded_lv_fails_the_edge_offset(phantom):
    eroded = erode_structure(phantom.labels, "LV", 2)
    bad = _image_failures(eroded, phantom, _image(phantom))[S.LV]
    assert bad[C.EDGE_OFFSET].value > 0.6  # the image's edge lies outside the mask


def test_lv_and_myo_swapped_overlap_in_intensity(phantom):
    swapped = phantom.labels.copy()
    swapped[phantom.labels == LV] = MYO
    swapped[phantom.labels == MYO] = LV
    bad = _image_failures(swapped, phantom, _image(phantom))
    assert bad[S.LV][C.CLASS_OVERLAP].value > 0.9 and C.IMAGE_CONTRAST in bad[S.LV]


def test_no_image_or_a_flat_one_gives_no_image_checks(phantom):
    for image in (None, np.full(phantom.labels.shape, 7.0, dtype=np.float32)):
        found = evaluate_evidence(phantom.labels, phantom.labels, phantom.spacing_mm, image)
        assert not found.image_used
        assert not {c.code for checks in found.checks.values() for c in checks} & IMAGE_CODES


def test_image_of_another_shape_is_refused(phantom):
    with pytest.raises(ValueError, match="image and mask must have the same shape"):
        evaluate_evidence(phantom.labels, phantom.labels, phantom.spacing_mm, _image(phantom)[:, :-1])
