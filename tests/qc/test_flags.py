"""Tests of ``monitor.qc.flags``: thresholds, reason codes and the level each code raises."""

from __future__ import annotations

import math

import pytest

from monitor.qc.flags import FlagPolicy, flag_structure, worst_flag
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode

NAN = math.nan


@pytest.mark.parametrize(
    ("pdsc", "phd", "mask", "pgt", "level", "codes"),
    [
        (0.9, 10.0, 100, 100, FlagLevel.OK, ()),
        (0.5, 50.0, 100, 100, FlagLevel.OK, ()),  # thresholds are strict inequalities
        (0.49, 10.0, 100, 100, FlagLevel.SUSPICIOUS, (ReasonCode.PDSC_LOW,)),
        (0.9, 50.1, 100, 100, FlagLevel.SUSPICIOUS, (ReasonCode.PHD_HIGH,)),
        (0.3, 70.0, 100, 100, FlagLevel.SUSPICIOUS, (ReasonCode.PHD_HIGH, ReasonCode.PDSC_LOW)),
        (0.0, NAN, 0, 100, FlagLevel.ERRONEOUS, (ReasonCode.MISSING,)),  # missing from the mask
        (0.0, NAN, 100, 0, FlagLevel.ERRONEOUS, (ReasonCode.VANISHED,)),  # vanished from the pGT
        (NAN, NAN, 0, 0, FlagLevel.ERRONEOUS, (ReasonCode.MISSING,)),
    ],
    ids=["ok", "at-threshold", "low-dice", "high-hd", "both", "missing", "vanished", "both-empty"],
)
def test_flag_levels(pdsc, phd, mask, pgt, level, codes):
    got, reasons = flag_structure(pdsc=pdsc, phd_mm=phd, mask_voxels=mask, pgt_voxels=pgt)
    assert got == level
    assert reasons == codes


def test_custom_policy_and_worst():
    level, reasons = flag_structure(
        pdsc=0.7, phd_mm=30.0, mask_voxels=5, pgt_voxels=5, policy=FlagPolicy(suspicious_hd_mm=20.0)
    )
    assert level == FlagLevel.SUSPICIOUS and reasons == (ReasonCode.PHD_HIGH,)
    assert worst_flag([FlagLevel.OK, FlagLevel.ERRONEOUS, FlagLevel.SUSPICIOUS]) == FlagLevel.ERRONEOUS
    assert worst_flag([]) == FlagLevel.OK
    with pytest.raises(ValueError):
        FlagPolicy(suspicious_dice=1.5)


def test_severity_of_a_code_can_be_configured():
    strict = FlagPolicy(severities={"phd_high": "erroneous"})
    assert strict.severity(ReasonCode.PHD_HIGH) == FlagLevel.ERRONEOUS
    assert strict.severity(ReasonCode.PDSC_LOW) == FlagLevel.SUSPICIOUS  # the default
    level, reasons = flag_structure(pdsc=0.9, phd_mm=80.0, mask_voxels=9, pgt_voxels=9, policy=strict)
    assert (level, reasons) == (FlagLevel.ERRONEOUS, (ReasonCode.PHD_HIGH,))
    lenient = FlagPolicy(severities={ReasonCode.VANISHED: FlagLevel.SUSPICIOUS})
    level, _ = flag_structure(pdsc=0.0, phd_mm=NAN, mask_voxels=9, pgt_voxels=0, policy=lenient)
    assert level == FlagLevel.SUSPICIOUS
    with pytest.raises(ValueError, match="suspicious or erroneous"):
        FlagPolicy(severities={ReasonCode.MISSING: FlagLevel.OK})
    with pytest.raises(ValueError):
        FlagPolicy(severities={"no_such_code": FlagLevel.ERRONEOUS})


def test_failed_checks_raise_their_code_unless_set_to_ok():
    from monitor.qc.records import Check

    checks = (
        Check(code=ReasonCode.STACK_MARGIN, value=2.0, passed=False, slices=(0,)),
        Check(code=ReasonCode.HOLES, value=0.0, passed=True),
        Check(code=ReasonCode.RV_POSITION, value=170.0, passed=False, slices=(5,)),
    )
    policy = FlagPolicy(severities={ReasonCode.RV_POSITION: FlagLevel.SUSPICIOUS})
    level, reasons = flag_structure(
        pdsc=0.9, phd_mm=5.0, mask_voxels=9, pgt_voxels=9, policy=policy, checks=checks
    )
    assert (level, reasons) == (FlagLevel.SUSPICIOUS, (ReasonCode.STACK_MARGIN, ReasonCode.RV_POSITION))
    quiet = FlagPolicy(
        severities={ReasonCode.STACK_MARGIN: FlagLevel.OK, ReasonCode.RV_POSITION: FlagLevel.OK}
    )
    level, reasons = flag_structure(
        pdsc=0.9, phd_mm=5.0, mask_voxels=9, pgt_voxels=9, policy=quiet, checks=checks
    )
    assert (level, reasons) == (FlagLevel.OK, ())  # recorded in the evidence only
    with pytest.raises(ValueError, match="suspicious or erroneous"):
        FlagPolicy(severities={ReasonCode.PHD_HIGH: FlagLevel.OK})


def test_hard_mode_raises_only_the_hard_checks_and_review_mode_raises_every_check():
    from monitor.qc.records import Check

    checks = (
        Check(code=ReasonCode.MYO_OPEN, value=1.0, passed=False, slices=(3,)),  # broken ring
        Check(code=ReasonCode.CENTROID_JUMP, value=12.0, passed=False, slices=(4,)),  # displaced slice
        Check(code=ReasonCode.FAR_COMPONENT, value=61.0, passed=False, slices=(7,)),
    )

    def verdict(policy: FlagPolicy, *use: Check) -> tuple[FlagLevel, tuple[ReasonCode, ...]]:
        return flag_structure(pdsc=0.9, phd_mm=5.0, mask_voxels=9, pgt_voxels=9, policy=policy, checks=use)

    hard, review = FlagPolicy(), FlagPolicy(evidence_flags="all")
    assert hard.evidence_flags == "hard"
    # soft checks alone: recorded only by default, suspicious in review mode
    assert verdict(hard, *checks[:2]) == (FlagLevel.OK, ())
    assert verdict(review, *checks[:2]) == (
        FlagLevel.SUSPICIOUS,
        (ReasonCode.MYO_OPEN, ReasonCode.CENTROID_JUMP),
    )
    # a hard check raises in both modes, at its own severity
    assert verdict(hard, *checks) == (FlagLevel.ERRONEOUS, (ReasonCode.FAR_COMPONENT,))
    assert verdict(review, *checks)[0] == FlagLevel.ERRONEOUS
    # an explicit severity wins over the mode; the metrics' own codes are never silenced by it
    opened = FlagPolicy(severities={ReasonCode.MYO_OPEN: FlagLevel.SUSPICIOUS})
    assert verdict(opened, *checks[:2]) == (FlagLevel.SUSPICIOUS, (ReasonCode.MYO_OPEN,))
    assert hard.severity(ReasonCode.EHD_HIGH) == FlagLevel.SUSPICIOUS
    assert hard.severity(ReasonCode.STACK_MARGIN) == FlagLevel.SUSPICIOUS
    with pytest.raises(ValueError, match="evidence_flags"):
        FlagPolicy(evidence_flags="some")
