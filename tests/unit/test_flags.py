from __future__ import annotations

import math

import pytest

from monitor.flags import FlagPolicy, flag_structure, worst_flag
from monitor.labels import Structure
from monitor.records import FlagLevel

NAN = math.nan


@pytest.mark.parametrize(
    ("pdsc", "phd", "mask", "pgt", "level"),
    [
        (0.9, 10.0, 100, 100, FlagLevel.OK),
        (0.5, 50.0, 100, 100, FlagLevel.OK),  # thresholds are strict inequalities
        (0.49, 10.0, 100, 100, FlagLevel.SUSPICIOUS),
        (0.9, 50.1, 100, 100, FlagLevel.SUSPICIOUS),
        (0.0, NAN, 0, 100, FlagLevel.ERRONEOUS),  # missing from the mask
        (0.0, NAN, 100, 0, FlagLevel.ERRONEOUS),  # vanished from the pGT
        (NAN, NAN, 0, 0, FlagLevel.ERRONEOUS),
    ],
    ids=["ok", "at-threshold", "low-dice", "high-hd", "missing", "vanished", "both-empty"],
)
def test_flag_levels(pdsc, phd, mask, pgt, level):
    got, reasons = flag_structure(Structure.LV, pdsc=pdsc, phd_mm=phd, mask_voxels=mask, pgt_voxels=pgt)
    assert got == level
    assert bool(reasons) == (level != FlagLevel.OK)
    assert all(r.startswith("LV") for r in reasons)


def test_custom_policy_and_worst():
    level, reasons = flag_structure(
        Structure.RV,
        pdsc=0.7,
        phd_mm=30.0,
        mask_voxels=5,
        pgt_voxels=5,
        policy=FlagPolicy(suspicious_hd_mm=20.0),
    )
    assert level == FlagLevel.SUSPICIOUS and reasons == ("RV pHD 30.0 mm > 20 mm",)
    assert worst_flag([FlagLevel.OK, FlagLevel.ERRONEOUS, FlagLevel.SUSPICIOUS]) == FlagLevel.ERRONEOUS
    assert worst_flag([]) == FlagLevel.OK
    with pytest.raises(ValueError):
        FlagPolicy(suspicious_dice=1.5)
