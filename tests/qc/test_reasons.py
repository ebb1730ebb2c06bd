"""Tests of ``monitor.qc.reasons``: stable codes, their titles and the text rendered from them."""

from __future__ import annotations

import math

import pytest

from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode, describe, describe_all, reason_title
from monitor.qc.records import StructureScore


def test_codes_are_the_stored_values():
    assert [str(c) for c in ReasonCode][:4] == ["missing", "vanished", "phd_high", "pdsc_low"]
    assert {"edsc_low", "ehd_high"} <= {str(c) for c in ReasonCode}
    assert len(set(ReasonCode)) == len(ReasonCode) == 22
    assert all(c.title for c in ReasonCode)
    quiet = {c for c in ReasonCode if c.default_severity == FlagLevel.OK}
    assert quiet == {ReasonCode.AREA_JUMP, ReasonCode.LV_BACKGROUND, ReasonCode.RV_SEPTUM, ReasonCode.HOLES}
    assert all(len(c) <= 64 for c in ReasonCode)
    assert ReasonCode.MISSING.default_severity == FlagLevel.ERRONEOUS
    assert ReasonCode.PDSC_LOW.default_severity == FlagLevel.SUSPICIOUS
    assert ReasonCode.RV_POSITION.default_severity == FlagLevel.ERRONEOUS  # swapped labels
    assert ReasonCode.FAR_COMPONENT.default_severity == FlagLevel.ERRONEOUS


def test_evidence_codes_quote_the_check_value():
    assert describe("centroid_jump", "LV", value=23.4) == "LV centre jumps 23.4 mm between slices"
    assert describe(ReasonCode.EDGE_OFFSET, "LV", value=2.14) == (
        "LV contour +2.1 px from the image's edge (+: mask too small, -: too large)"
    )
    assert describe("stack_margin", "MYO", value=2) == (
        "MYO: the heart ends 2 slice(s) before the end of the stack (base or apex missing)"
    )


@pytest.mark.parametrize(
    ("code", "policy", "text"),
    [
        ("missing", None, "LV missing from the mask"),
        ("vanished", None, "LV vanished from the pseudo ground truth (shape not recognised)"),
        ("phd_high", FlagPolicy(), "LV pHD 61.3 mm > 50 mm"),
        ("phd_high", FlagPolicy(suspicious_hd_mm=20.0), "LV pHD 61.3 mm > 20 mm"),
        ("phd_high", None, "LV pHD 61.3 mm above the threshold"),
        ("pdsc_low", FlagPolicy(), "LV pDSC 0.42 < 0.5"),
        ("pdsc_low", None, "LV pDSC 0.42 below the threshold"),
        ("ring_open", None, "LV ring_open"),  # a code of a newer version
    ],
    ids=[
        "missing",
        "vanished",
        "phd",
        "phd-custom",
        "phd-no-threshold",
        "pdsc",
        "pdsc-no-threshold",
        "unknown",
    ],
)
def test_describe(code, policy, text):
    assert describe(code, Structure.LV, pdsc=0.421, phd_mm=61.27, thresholds=policy) == text


def test_titles_and_all_reasons_of_a_volume():
    assert reason_title("phd_high") == "pHD high" and reason_title(ReasonCode.VANISHED) == "vanished from pGT"
    assert reason_title("ring_open") == "ring_open"
    scores = [
        StructureScore(
            structure=Structure.RV,
            pdsc=0.3,
            phd_mm=55.0,
            flag=FlagLevel.SUSPICIOUS,
            reasons=(ReasonCode.PHD_HIGH, ReasonCode.PDSC_LOW),
            mask_voxels=10,
            pgt_voxels=12,
            mask_volume_ml=1.0,
        ),
        StructureScore(
            structure=Structure.MYO,
            pdsc=math.nan,
            phd_mm=math.nan,
            flag=FlagLevel.ERRONEOUS,
            reasons=(ReasonCode.MISSING,),
            mask_voxels=0,
            pgt_voxels=0,
            mask_volume_ml=0.0,
        ),
    ]
    assert describe_all(scores, FlagPolicy()) == (
        "RV pHD 55.0 mm > 50 mm",
        "RV pDSC 0.30 < 0.5",
        "MYO missing from the mask",
    )
