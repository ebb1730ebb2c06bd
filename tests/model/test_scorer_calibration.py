"""The Scorer applies a calibration per batch: estimates, version, estimate flags, the same result
whatever the batch."""

from __future__ import annotations

import pytest

from monitor.io.calibration import default_calibration_path, load_calibration
from monitor.model.scorer import Scorer, calibration_from_setting
from monitor.qc.labels import Structure
from monitor.qc.reasons import ReasonCode
from monitor.sim import remove_structure
from tests.phantoms import phantom_volume, segmented_volume

pytestmark = pytest.mark.skipif(not default_calibration_path().is_file(), reason="no shipped calibration")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer(device="cpu", calibration=load_calibration())


def test_estimates_fill_every_present_structure(scorer: Scorer) -> None:
    gt = phantom_volume(3)
    broken = gt.__class__(
        labels=remove_structure(gt.labels, Structure.RV), spacing_mm=gt.spacing_mm, affine=gt.affine
    )
    poor, _ = segmented_volume(3, "failing")
    results = scorer.score_batch([gt, broken, poor])
    for result in results:
        assert result.score.calibration_version == scorer.calibration.version
        assert "calibration" in result.score.timings_s
    good = results[0].score
    for s in good.structures:
        assert s.edsc is not None and s.edsc.lo <= s.edsc.value <= s.edsc.hi
        assert s.ehd_mm is not None and s.ehd_mm.lo <= s.ehd_mm.value <= s.ehd_mm.hi
        assert ReasonCode.PDSC_LOW not in s.reasons and ReasonCode.PHD_HIGH not in s.reasons
    rv = results[1].score.structure(Structure.RV)
    assert rv.edsc is None and rv.reasons == (ReasonCode.MISSING,)
    # one volume alone gets the same estimates as inside a batch
    alone = scorer.score(poor).score
    for a, b in zip(alone.structures, results[2].score.structures, strict=True):
        assert a.edsc == b.edsc and a.ehd_mm == b.ehd_mm and a.flag == b.flag


def test_calibration_setting() -> None:
    assert calibration_from_setting("none") is None and calibration_from_setting(None) is None
    assert calibration_from_setting("shipped").version == load_calibration().version
