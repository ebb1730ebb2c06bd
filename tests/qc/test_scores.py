"""Tests of ``monitor.qc.scores``: the one per-structure loop and the post-model step, on analytic masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.scores import compare_structures, score_volume
from monitor.sim.phantoms import make_image, make_phantom

SPACING = (10.0, 1.5, 1.0)


def _boxes(lv: tuple[slice, ...] | None, rv: tuple[slice, ...] | None, myo: tuple[slice, ...] | None):
    labels = np.zeros((4, 40, 40), dtype=np.uint8)
    for value, box in ((3, lv), (1, rv), (2, myo)):
        if box is not None:
            labels[box] = value
    return labels


def test_compare_structures_real_numbers():
    mask = _boxes((slice(1, 3), slice(5, 15), slice(5, 15)), (slice(1, 3), slice(20, 30), slice(5, 15)), None)
    ref = _boxes((slice(1, 3), slice(5, 15), slice(5, 13)), (slice(1, 3), slice(20, 30), slice(5, 15)), None)
    lv, rv, myo = compare_structures(mask, ref, SPACING)
    assert [c.structure for c in (lv, rv, myo)] == [Structure.LV, Structure.RV, Structure.MYO]
    assert (lv.mask_voxels, lv.ref_voxels) == (200, 160)
    assert lv.dice == pytest.approx(2 * 160 / 360)
    assert lv.hd_mm == pytest.approx(2.0)  # two columns of 1 mm in x
    assert (rv.dice, rv.hd_mm) == (1.0, 0.0)
    assert math.isnan(myo.dice) and math.isnan(myo.hd_mm) and myo.mask_voxels == myo.ref_voxels == 0
    fast = compare_structures(mask, ref, SPACING, hausdorff=False)
    assert [c.dice for c in fast[:2]] == [lv.dice, rv.dice] and math.isnan(fast[2].dice)
    assert all(math.isnan(c.hd_mm) for c in fast)
    with pytest.raises(ValueError, match="same shape"):
        compare_structures(mask, ref[:2], SPACING)


def test_score_volume_flags_with_codes():
    box = (slice(1, 3), slice(5, 15), slice(5, 15))
    mask = _boxes(box, (slice(1, 3), slice(20, 30), slice(5, 15)), (slice(1, 3), slice(16, 18), slice(5, 15)))
    pgt = _boxes(box, None, (slice(1, 3), slice(16, 18), slice(5, 15)))
    score = score_volume(
        mask, pgt, SPACING, policy=FlagPolicy(), slices_scored=2, timings_s={"model": 0.1}, evidence=None
    )
    assert score.flag == FlagLevel.ERRONEOUS and score.shape == (4, 40, 40) and score.slices_scored == 2
    lv, rv = score.structure(Structure.LV), score.structure(Structure.RV)
    assert (lv.flag, lv.reasons, lv.pdsc) == (FlagLevel.OK, (), 1.0)
    assert lv.mask_volume_ml == pytest.approx(200 * 15.0 / 1000)
    assert (rv.flag, rv.reasons, rv.pgt_voxels) == (FlagLevel.ERRONEOUS, (ReasonCode.VANISHED,), 0)
    assert score.timings_s == {"model": 0.1}


def test_score_volume_with_evidence_fills_the_refined_fields():
    """A clean phantom scored against itself: refined = plain, every check passes, image recorded."""
    phantom = make_phantom(np.random.default_rng(3), rv_extent=1.1, apex_slice=7.6, n_slices=8)
    labels, spacing = phantom.labels, phantom.spacing_mm
    image = make_image(labels, np.random.default_rng(3), spacing)
    without = score_volume(labels, labels, spacing, policy=FlagPolicy(), slices_scored=5)
    with_image = score_volume(labels, labels, spacing, policy=FlagPolicy(), slices_scored=5, image=image)
    assert (without.image_used, with_image.image_used) == (False, True)
    for score in (without, with_image):
        assert score.flag == FlagLevel.OK and "evidence" in score.timings_s
        for s in score.structures:
            assert (s.pdsc, s.phd_mm, s.pdsc_3d, s.phd_mm_3d) == (1.0, 0.0, 1.0, 0.0)
            assert s.pgt_volume_ml == pytest.approx(s.mask_volume_ml)
            assert s.evidence and all(c.passed for c in s.evidence)
    codes = {c.code for s in with_image.structures for c in s.evidence}
    assert {ReasonCode.EDGE_OFFSET, ReasonCode.IMAGE_CONTRAST, ReasonCode.CLASS_OVERLAP} <= codes
    assert ReasonCode.EDGE_OFFSET not in {c.code for s in without.structures for c in s.evidence}


def test_score_volume_flags_on_refined_values_and_failed_checks():
    """The basal slice dropped from the mask: the pGT (of the mask) misses it too, so the plain pHD is 0,
    but the refined pGT extends into the empty stack end and the stack check fails."""
    phantom = make_phantom(np.random.default_rng(3), base_slice=-0.5, spacing_mm=(10.0, 1.5, 1.5))
    labels, spacing = phantom.labels.copy(), phantom.spacing_mm
    labels[:2] = 0
    score = score_volume(labels, labels, spacing, policy=FlagPolicy(), slices_scored=5)
    lv = score.structure(Structure.LV)
    assert lv.phd_mm == 0.0 and lv.phd_mm_3d >= spacing[0]
    assert ReasonCode.STACK_MARGIN in lv.reasons and lv.flag == FlagLevel.SUSPICIOUS
    with pytest.raises(ValueError, match="image and mask"):
        score_volume(labels, labels, spacing, policy=FlagPolicy(), slices_scored=5, image=labels[:2])
