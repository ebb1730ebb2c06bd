"""The calibration stage: failure probability from an interval, estimate flags, scores of a batch."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from monitor.qc.calibration.apply import calibrate_scores, probability_below, reflag
from monitor.qc.calibration.targets import Target
from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Estimate, StructureScore, VolumeScore
from tests.calibration_data import tiny_calibration


@pytest.mark.parametrize(
    ("estimate", "threshold", "target", "expected"),
    [
        (Estimate(value=50.0, lo=30.0, hi=80.0), 50.0, Target.HD, 0.5),  # at the median
        (Estimate(value=50.0, lo=30.0, hi=80.0), 80.0, Target.HD, 0.95),  # at the upper end
        (Estimate(value=50.0, lo=30.0, hi=80.0), 30.0, Target.HD, 0.05),  # at the lower end
        (Estimate(value=0.6, lo=0.4, hi=0.8), 0.4, Target.DSC, 0.05),
        (Estimate(value=0.6, lo=0.4, hi=0.8), 0.8, Target.DSC, 0.95),
        (Estimate(value=0.6, lo=0.6, hi=0.6), 0.5, Target.DSC, 0.0),  # zero width: a step
        (Estimate(value=0.6, lo=0.6, hi=0.6), 0.7, Target.DSC, 1.0),
    ],
    ids=["median", "upper", "lower", "dsc-lower", "dsc-upper", "step-below", "step-above"],
)
def test_probability_below_reads_the_interval_as_quantiles(estimate, threshold, target, expected):
    assert probability_below(estimate, threshold, target) == pytest.approx(expected, abs=1e-3)


def _structure(**kwargs) -> StructureScore:
    base = dict(
        structure=Structure.LV,
        pdsc=0.4,
        phd_mm=60.0,
        flag=FlagLevel.SUSPICIOUS,
        reasons=(ReasonCode.PHD_HIGH, ReasonCode.PDSC_LOW),
        mask_voxels=1000,
        pgt_voxels=900,
        mask_volume_ml=100.0,
    )
    base.update(kwargs)
    return StructureScore(**base)


def test_estimates_replace_the_pseudo_metric_reasons():
    good = _structure(edsc=Estimate(value=0.9, lo=0.8, hi=0.95), ehd_mm=Estimate(value=8.0, lo=5.0, hi=14.0))
    assert reflag(good, FlagPolicy()).flag == FlagLevel.OK and reflag(good, FlagPolicy()).reasons == ()
    bad = _structure(edsc=Estimate(value=0.3, lo=0.1, hi=0.6), ehd_mm=Estimate(value=70.0, lo=40.0, hi=90.0))
    flagged = reflag(bad, FlagPolicy())
    assert flagged.reasons == (ReasonCode.EDSC_LOW, ReasonCode.EHD_HIGH)
    assert flagged.flag == FlagLevel.SUSPICIOUS
    # the paper's policy keeps pDSC/pHD reasons; a missing structure keeps "missing"
    assert reflag(good, FlagPolicy(basis="paper")) == good
    strict = reflag(good, FlagPolicy(suspicious_dice=0.92, fail_probability=0.5))
    assert strict.reasons == (ReasonCode.EDSC_LOW,)


def test_calibrate_scores_fills_estimates_version_and_flags():
    lv = _structure(pdsc=0.95, phd_mm=5.0, flag=FlagLevel.OK, reasons=())
    rv = _structure(structure=Structure.RV, pdsc=0.35, phd_mm=75.0)
    myo = _structure(
        structure=Structure.MYO, mask_voxels=0, flag=FlagLevel.ERRONEOUS, reasons=(ReasonCode.MISSING,)
    )
    score = VolumeScore(
        structures=(lv, rv, myo),
        flag=FlagLevel.ERRONEOUS,
        shape=(8, 64, 64),
        spacing_mm=(10.0, 1.5, 1.5),
        slices_scored=8,
    )
    (out,) = calibrate_scores(tiny_calibration(), [score], policy=FlagPolicy())
    assert out.calibration_version == "test-tiny-1"
    lv_out, rv_out, myo_out = out.structures
    assert lv_out.edsc.value > 0.85 and lv_out.ehd_mm.value < 15
    assert rv_out.edsc.value < 0.5 and rv_out.ehd_mm.value > 50
    assert rv_out.reasons == (ReasonCode.EDSC_LOW, ReasonCode.EHD_HIGH)
    assert myo_out.edsc is None and myo_out.reasons == (ReasonCode.MISSING,)
    assert out.flag == FlagLevel.ERRONEOUS
    for item in (lv_out, rv_out):
        for e in (item.edsc, item.ehd_mm):
            assert e.lo <= e.value <= e.hi and not math.isnan(e.value)
    assert calibrate_scores(tiny_calibration(), [], policy=FlagPolicy()) == []


def test_the_failure_probability_decides_when_the_calibration_has_one():
    # intervals that point at a low Dice (P ~0.7) more than at a high HD (P ~0.3)
    doubtful = _structure(
        edsc=Estimate(value=0.45, lo=0.2, hi=0.7), ehd_mm=Estimate(value=40.0, lo=20.0, hi=70.0)
    )
    policy = FlagPolicy(fail_probability=0.5)
    assert reflag(replace(doubtful, p_failure=0.2), policy).flag == FlagLevel.OK  # the model says no
    likely = reflag(replace(doubtful, p_failure=0.8), policy)
    assert likely.flag == FlagLevel.SUSPICIOUS and likely.reasons == (ReasonCode.EDSC_LOW,)
    # without a failure probability the intervals decide: Dice alone passes 0.5
    assert reflag(doubtful, policy).reasons == (ReasonCode.EDSC_LOW,)


def test_calibrate_scores_uses_the_failure_model_only_at_its_thresholds():
    rv = _structure(structure=Structure.RV, pdsc=0.35, phd_mm=75.0)
    lv = _structure(pdsc=0.95, phd_mm=5.0, flag=FlagLevel.OK, reasons=())
    score = VolumeScore(
        structures=(lv, rv),
        flag=FlagLevel.SUSPICIOUS,
        shape=(8, 64, 64),
        spacing_mm=(10.0, 1.5, 1.5),
        slices_scored=8,
    )
    (out,) = calibrate_scores(tiny_calibration(), [score], policy=FlagPolicy())
    lv_out, rv_out = out.structures
    assert lv_out.p_failure is not None and lv_out.p_failure < 0.1
    assert rv_out.p_failure is not None and rv_out.p_failure > 0.9 and rv_out.flag == FlagLevel.SUSPICIOUS
    # other thresholds than the model was fitted for: no probability, the intervals decide
    (other,) = calibrate_scores(tiny_calibration(), [score], policy=FlagPolicy(suspicious_dice=0.7))
    assert all(s.p_failure is None for s in other.structures)
