"""The evidence stage and the calibration features give back main's outputs (before issue 23) exactly.

The fixture (``tests/qc/data/frozen_outputs.json``, written by ``tests/qc/frozen_outputs.py`` from main
at ``cf19843``) pins every pDSC/pHD (plain and refined), check value, verdict and implicated slice, the
refined pGT's bytes, and every mask and image feature on 36 volumes; a shipped calibration was fitted
on these numbers, so they must not move (1e-9 relative).
"""

from __future__ import annotations

import json
import math

import pytest

from monitor.qc.calibration.features import image_features, mask_features
from monitor.qc.flags import FlagPolicy
from monitor.qc.scores import score_with_evidence
from tests.qc.frozen_outputs import FIXTURE, Case, cases, features_record, outputs

_FROZEN = json.loads(FIXTURE.read_text())
_CASES = cases()


def _differences(got: object, want: object, where: str = "") -> list[str]:
    """Where ``got`` differs from ``want`` (floats to 1e-9 relative, nan equal to nan)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{where}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for k in want for d in _differences(got[k], want[k], f"{where}/{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{where}: {len(got)} items, want {len(want)}"]
        return [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=True))
            for d in _differences(g, w, f"{where}[{i}]")
        ]
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        same = (math.isnan(want) and math.isnan(got)) or math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
        return [] if same else [f"{where}: {got!r}, want {want!r}"]
    return [] if got == want and type(got) is type(want) else [f"{where}: {got!r}, want {want!r}"]


def test_the_fixture_covers_every_case():
    assert sorted(c.name for c in _CASES) == sorted(_FROZEN)


@pytest.mark.parametrize("case", _CASES, ids=[c.name for c in _CASES])
def test_outputs_equal_main(case: Case):
    assert _differences(outputs(case), _FROZEN[case.name]) == []


@pytest.mark.parametrize("case", _CASES, ids=[c.name for c in _CASES])
def test_features_from_the_evidence_stage_equal_main(case: Case):
    """What the ``Scorer`` does: the features take the evidence stage's ``Anatomy`` of the mask."""
    _, found = score_with_evidence(
        case.mask, case.pgt, case.spacing_mm, policy=FlagPolicy(), slices_scored=0, image=case.image
    )
    assert found is not None and found.anatomy is not None
    frozen = _FROZEN[case.name]
    got = features_record(mask_features(case.mask, case.pgt, case.spacing_mm, anatomy=found.anatomy))
    assert _differences(got, frozen["mask_features"]) == []
    if case.image is not None:
        got = features_record(image_features(case.image, case.mask, anatomy=found.anatomy))
        assert _differences(got, frozen["image_features"]) == []
