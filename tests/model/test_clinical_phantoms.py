"""The clinical stage end to end on phantoms, with the shipped autoencoder and clinical calibration:
an ED mask that misses the base (a slice the ES mask fills) gets a large estimated LVEF error; the
clean pair does not."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.io.clinical import load_clinical_calibration
from monitor.io.nifti import MaskVolume
from monitor.qc.clinical import ClinicalPolicy, PhasePair, assess_patient, clinical_values, indices_from_score
from monitor.qc.levels import FlagLevel
from tests.phantoms import phantom_volume


@pytest.fixture(scope="module")
def scorer():
    from monitor.model.scorer import Scorer

    return Scorer(device="cpu")


@pytest.fixture(scope="module")
def calibration():
    return load_clinical_calibration()


def _without_base(ed: MaskVolume, es: MaskVolume, slices: int) -> MaskVolume:
    """The ED mask with every label removed from its first slices, up to ``slices`` ES cavity slices."""
    first = int(np.flatnonzero(np.any(es.labels == 3, axis=(1, 2)))[0])
    labels = ed.labels.copy()
    labels[: first + slices] = 0
    return MaskVolume(labels=labels, spacing_mm=ed.spacing_mm, affine=ed.affine)


@pytest.mark.parametrize(("seed", "slices"), [(1, 1), (2, 1)], ids=["two-base-slices", "one-base-slice"])
def test_a_base_missed_at_ed_only_gets_a_large_estimated_lvef_error(
    scorer, calibration, seed: int, slices: int
) -> None:
    ed, es = phantom_volume(seed, "ED"), phantom_volume(seed, "ES")
    cut = _without_base(ed, es, slices)
    scored = scorer.score_batch([ed, es, cut])
    ed_i, es_i, cut_i = (
        indices_from_score(v.labels, r.pgt, r.score) for v, r in zip([ed, es, cut], scored, strict=True)
    )
    real_shift = clinical_values(ed_i, es_i).lv_ef_pct - clinical_values(cut_i, es_i).lv_ef_pct
    assert real_shift > 5.0  # the cut really moves the LVEF by more than the limit

    clean = assess_patient(
        PhasePair(case_key="p", ed=ed_i, es=es_i), calibration=calibration, policy=ClinicalPolicy()
    )
    broken = assess_patient(
        PhasePair(case_key="p", ed=cut_i, es=es_i), calibration=calibration, policy=ClinicalPolicy()
    )
    clean_ef, broken_ef = clean.estimates["lv_ef"], broken.estimates["lv_ef"]
    assert clean_ef.value < 3.0 and clean.flag == FlagLevel.OK
    assert broken_ef.value > 5.0 and broken_ef.value > 2 * clean_ef.value
    assert broken_ef.lo <= real_shift <= broken_ef.hi  # the interval holds the real error
    assert broken.estimates["lv_edv"].value > clean.estimates["lv_edv"].value
    point_rule = assess_patient(
        PhasePair(case_key="p", ed=cut_i, es=es_i),
        calibration=calibration,
        policy=ClinicalPolicy(rule="estimate"),
    )
    assert point_rule.flag == FlagLevel.SUSPICIOUS
    if seed == 1:  # two slices lost: even the interval's lower end is above 5 points
        assert broken.flag == FlagLevel.SUSPICIOUS and broken_ef.lo > 5.0
