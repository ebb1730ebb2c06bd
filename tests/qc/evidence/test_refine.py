"""The 3D-refined pGT (``monitor.qc.evidence.refine``): each rule on a built pGT, analytic where possible."""

from __future__ import annotations

import numpy as np

from monitor.qc.evidence import EvidenceSettings, refine_pgt
from monitor.qc.metrics import hausdorff_mm
from tests.qc.evidence._helpers import LV, MYO, RV, clean_phantom


def test_ground_truth_comes_back_unchanged(phantom):
    assert np.array_equal(refine_pgt(phantom.labels, phantom.spacing_mm), phantom.labels)
    assert not refine_pgt(np.zeros((3, 8, 8), np.uint8), (10.0, 1.0, 1.0)).any()


def test_stray_pieces_off_the_main_body_are_dropped(phantom):
    pgt = phantom.labels.copy()
    pgt[2, 3:8, 3:8] = LV  # a blob far from the heart: not the LV's largest component
    pgt[6, -8:-3, -8:-3] = MYO  # a MYO piece touching neither LV nor RV
    refined = refine_pgt(pgt, phantom.spacing_mm)
    assert np.array_equal(refined, phantom.labels)


def test_lv_without_myo_and_myo_far_past_the_lv_are_dropped(phantom):
    pgt = phantom.labels.copy()
    pgt[9][pgt[9] == MYO] = 0  # the apical slice: LV only
    refined = refine_pgt(pgt, phantom.spacing_mm)
    assert not (refined[9] == LV).any()
    pgt = phantom.labels.copy()
    pgt[7:][pgt[7:] == LV] = MYO  # MYO only from slice 7: slice 8 and 9 are past slice 6 + 1
    refined = refine_pgt(pgt, phantom.spacing_mm, EvidenceSettings(stack_margin=False))
    assert (refined[7] == MYO).any() and not np.isin(refined[8:], (LV, MYO)).any()


def test_one_slice_gaps_are_filled_and_one_run_is_kept(phantom):
    pgt = phantom.labels.copy()
    pgt[4][pgt[4] == RV] = 0
    refined = refine_pgt(pgt, phantom.spacing_mm)
    assert np.array_equal(
        refined[4] == RV, (pgt[3] == RV) & (pgt[5] == RV) & (pgt[4] == 0)
    )  # neighbours' overlap
    pgt = phantom.labels.copy()
    pgt[4] = 0  # a slice gap splits the LV and MYO: the larger part is kept
    refined = refine_pgt(pgt, phantom.spacing_mm, EvidenceSettings(stack_margin=False))
    area = [(pgt[z] == LV).sum() for z in range(10)]
    kept = [z for z in range(10) if (refined[z] == LV).any()]
    assert kept == ([0, 1, 2, 3] if sum(area[:4]) > sum(area[5:]) else [5, 6, 7, 8, 9])
    pgt = phantom.labels.copy()
    pgt[3:5] = 0  # a two-slice gap: the larger run (slices 5-9 vs 0-2 by voxels) is kept
    refined = refine_pgt(pgt, phantom.spacing_mm, EvidenceSettings(stack_margin=False))
    kept = [z for z in range(10) if (refined[z] == LV).any()]
    area = [(pgt[z] == LV).sum() for z in range(10)]
    first = sum(area[0:3]) > sum(area[5:10])
    assert kept == ([0, 1, 2] if first else [5, 6, 7, 8, 9])


def test_rv_is_extended_towards_the_apex():
    phantom = clean_phantom()
    pgt = phantom.labels.copy()
    pgt[5:][pgt[5:] == RV] = 0  # the RV stops at slice 4, five slices short of the apex (slice 9)
    refined = refine_pgt(pgt, phantom.spacing_mm)
    rv_slices = [z for z in range(10) if (refined[z] == RV).any()]
    assert rv_slices == list(range(9))  # extended to one slice short of the apex
    assert np.array_equal(refined[8] == RV, (pgt[4] == RV) & (pgt[8] == 0))
    spacing = phantom.spacing_mm
    assert hausdorff_mm(pgt == RV, refined == RV, spacing) >= 3 * spacing[0]


def test_stack_margin_extends_lv_and_myo_and_can_be_turned_off():
    phantom = clean_phantom()
    pgt = phantom.labels.copy()
    pgt[:3] = 0  # three empty basal slices: one is the protocol's spare, two are extended into
    refined = refine_pgt(pgt, phantom.spacing_mm)
    assert not refined[0].any()
    for z in (1, 2):
        assert np.array_equal(np.isin(refined[z], (LV, MYO)), np.isin(pgt[3], (LV, MYO)))
        assert not (refined[z] == RV).any()
    off = refine_pgt(pgt, phantom.spacing_mm, EvidenceSettings(stack_margin=False))
    assert np.array_equal(off, pgt)
