"""monitor.qc.clinical: analytic volumes and EF of ellipsoids, pairing, pseudo errors and the flag."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitor.qc.clinical import (
    ClinicalPolicy,
    ClinicalReason,
    ClinicalValues,
    PhasePair,
    assess_patient,
    clinical_values,
    ejection_fraction_pct,
    flag_patient,
    pair_phases,
    pseudo_errors,
    volume_indices,
)
from monitor.qc.clinical.indices import ed_lv_deficit_ml, lvef_deficit_shift_pct
from monitor.qc.levels import FlagLevel
from monitor.qc.records import Estimate

SPACING = (2.0, 0.8, 0.8)  # (dz, dy, dx) mm, anisotropic


def _ellipsoid(shape: tuple[int, int, int], semi_mm: tuple[float, float, float]) -> np.ndarray:
    """bool [z, y, x]: an ellipsoid of semi-axes (c, b, a) mm centred in the grid."""
    axes = [(np.arange(n) - (n - 1) / 2) * d for n, d in zip(shape, SPACING, strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    return (z / semi_mm[0]) ** 2 + (y / semi_mm[1]) ** 2 + (x / semi_mm[2]) ** 2 <= 1.0


def _ellipsoid_ml(semi_mm: tuple[float, float, float]) -> float:
    return 4.0 / 3.0 * math.pi * semi_mm[0] * semi_mm[1] * semi_mm[2] / 1000.0


def _heart(
    lv_semi: tuple[float, float, float], wall_mm: float, rv_semi: tuple[float, float, float]
) -> np.ndarray:
    """uint8 [z, y, x]: LV ellipsoid (3) inside a MYO shell (2), an RV ellipsoid (1) beside them."""
    shape = (60, 140, 200)
    labels = np.zeros(shape, np.uint8)
    outer = _ellipsoid(shape, tuple(s + wall_mm for s in lv_semi))
    labels[outer] = 2
    labels[_ellipsoid(shape, lv_semi)] = 3
    rv = np.roll(_ellipsoid(shape, rv_semi), 70, axis=2)  # 56 mm to the side, clear of the LV
    labels[rv & (labels == 0)] = 1
    return labels


ED_LV, ES_LV, WALL = (45.0, 25.0, 22.0), (40.0, 18.0, 16.0), 8.0
ED_RV, ES_RV = (40.0, 20.0, 12.0), (36.0, 15.0, 9.0)


def _outer(semi: tuple[float, float, float]) -> tuple[float, float, float]:
    return tuple(s + WALL for s in semi)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def ellipsoid_pair():
    ed, es = _heart(ED_LV, WALL, ED_RV), _heart(ES_LV, WALL, ES_RV)
    return volume_indices(ed, ed, SPACING), volume_indices(es, es, SPACING)


def test_ellipsoid_volumes_mass_and_ef_match_analytic_values_within_2_percent(ellipsoid_pair) -> None:
    ed, es = ellipsoid_pair
    values = clinical_values(ed, es)
    lv_edv, lv_esv = _ellipsoid_ml(ED_LV), _ellipsoid_ml(ES_LV)
    rv_edv, rv_esv = _ellipsoid_ml(ED_RV), _ellipsoid_ml(ES_RV)
    mass = 1.05 * (_ellipsoid_ml(_outer(ED_LV)) - lv_edv)
    expected = {
        "lv_edv": lv_edv,
        "lv_esv": lv_esv,
        "lv_ef": 100 * (lv_edv - lv_esv) / lv_edv,
        "rv_edv": rv_edv,
        "rv_esv": rv_esv,
        "rv_ef": 100 * (rv_edv - rv_esv) / rv_edv,
        "lv_mass": mass,
    }
    for index, value in expected.items():
        assert values.get(index) == pytest.approx(value, rel=0.02), index
    assert ed.lv_mass_g == pytest.approx(mass, rel=0.02)
    # the mask is its own pGT here: every pseudo error is 0
    pgt = clinical_values(ed, es, source="pgt")
    assert all(v == pytest.approx(0.0, abs=1e-9) for v in pseudo_errors(values, pgt).as_dict().values())


def test_refined_pgt_volumes_replace_the_counted_ones() -> None:
    labels = _heart(ES_LV, WALL, ES_RV)
    indices = volume_indices(labels, labels, SPACING, refined_pgt_ml={"LV": 123.0, "RV": math.nan})  # type: ignore[dict-item]
    assert indices.pgt_lv_volume_ml == 123.0
    assert indices.pgt_rv_volume_ml == pytest.approx(indices.rv_volume_ml)


def test_ejection_fraction_edge_cases() -> None:
    assert ejection_fraction_pct(100.0, 40.0) == pytest.approx(60.0)
    assert math.isnan(ejection_fraction_pct(0.0, 10.0))
    assert ejection_fraction_pct(50.0, 60.0) == pytest.approx(-20.0)  # not clipped: the flag says why


def test_an_ed_slice_lost_where_es_has_cavity_adds_to_the_pgt_edv(ellipsoid_pair) -> None:
    ed_full = _heart(ED_LV, WALL, ED_RV)
    es = _heart(ES_LV, WALL, ES_RV)
    first = int(np.flatnonzero(np.any(es == 3, axis=(1, 2)))[0])
    cut = ed_full.copy()
    cut[first] = 0  # the ED mask loses the basal slice of the ES cavity
    ed_i, es_i = volume_indices(cut, cut, SPACING), volume_indices(es, es, SPACING)
    lost_es_ml = float(np.count_nonzero(es[first] == 3)) * np.prod(SPACING) / 1000
    assert ed_lv_deficit_ml(ed_i, es_i, scaled=False) == pytest.approx(lost_es_ml)
    shared = [e / s for e, s in zip(ed_i.lv_slice_ml, es_i.lv_slice_ml, strict=True) if e > 0 and s > 0]
    scaled = lost_es_ml * float(np.clip(np.median(shared), 1.0, 3.0))
    assert ed_lv_deficit_ml(ed_i, es_i) == pytest.approx(scaled)
    pgt = clinical_values(ed_i, es_i, source="pgt")
    assert pgt.lv_edv_ml == pytest.approx(ed_i.lv_volume_ml + scaled)
    # the LVEF shift of putting the volume back: the lower bound uses the ES volume only
    ef = ejection_fraction_pct
    assert lvef_deficit_shift_pct(ed_i, es_i, scaled=False) == pytest.approx(
        ef(ed_i.lv_volume_ml + lost_es_ml, es_i.lv_volume_ml) - ef(ed_i.lv_volume_ml, es_i.lv_volume_ml)
    )
    assert ed_lv_deficit_ml(*ellipsoid_pair) == 0.0


@pytest.mark.parametrize("order", ["ed_first", "es_first"])
def test_pairing_does_not_depend_on_arrival_order(order: str) -> None:
    items = [("p1", "ED", "a"), ("p2", "ES", "b"), ("p1", "ES", "c"), ("p3", "frame05", "d")]
    if order == "es_first":
        items = items[::-1]
    pairs = pair_phases(items)
    assert [(p.case_key, p.ed, p.es, p.complete, p.missing) for p in pairs] == [
        ("p1", "a", "c", True, ()),
        ("p2", None, "b", False, ("ED",)),
    ]


def test_pairing_refuses_two_frames_of_one_phase() -> None:
    with pytest.raises(ValueError, match="'p1' has two ED frames"):
        pair_phases([("p1", "ED", 1), ("p1", "ED", 2)])


def test_an_incomplete_patient_waits_with_its_missing_phase(ellipsoid_pair) -> None:
    ed, _ = ellipsoid_pair
    result = assess_patient(
        PhasePair(case_key="p1", ed=ed, es=None), calibration=None, policy=ClinicalPolicy()
    )
    assert not result.complete
    assert result.missing == ("ES",)
    assert result.mask is None and result.flag is None


def test_a_complete_patient_without_calibration_gets_values_and_physiological_checks(ellipsoid_pair) -> None:
    ed, es = ellipsoid_pair
    result = assess_patient(PhasePair(case_key="p1", ed=ed, es=es), calibration=None, policy=ClinicalPolicy())
    assert result.complete and result.flag == FlagLevel.OK and result.estimates == {}
    swapped = assess_patient(
        PhasePair(case_key="p1", ed=es, es=ed), calibration=None, policy=ClinicalPolicy()
    )
    assert swapped.flag == FlagLevel.SUSPICIOUS
    assert set(swapped.reasons) == {ClinicalReason.EF_IMPOSSIBLE, ClinicalReason.ESV_ABOVE_EDV}


def _values(**over: float) -> ClinicalValues:
    base = {
        "lv_edv_ml": 150.0,
        "lv_esv_ml": 60.0,
        "lv_ef_pct": 60.0,
        "rv_edv_ml": 160.0,
        "rv_esv_ml": 70.0,
        "rv_ef_pct": 56.25,
        "lv_mass_g": 120.0,
    }
    base.update(over)
    return ClinicalValues(**base)


@pytest.mark.parametrize(
    ("estimate", "rule", "limit", "flagged"),
    [
        (Estimate(value=8.0, lo=5.5, hi=14.0), "lo", 5.0, True),
        (Estimate(value=8.0, lo=4.5, hi=14.0), "lo", 5.0, False),
        (Estimate(value=8.0, lo=4.5, hi=14.0), "estimate", 5.0, True),
        (Estimate(value=8.0, lo=5.5, hi=14.0), "lo", 6.0, False),
    ],
    ids=["interval-above", "interval-straddles", "point-rule", "higher-limit"],
)
def test_lvef_flag_follows_the_interval_and_the_limit(estimate, rule, limit, flagged) -> None:
    policy = ClinicalPolicy(lvef_error_limit_pct=limit, rule=rule)
    level, reasons = flag_patient(_values(), {"lv_ef": estimate}, policy)
    assert (level == FlagLevel.SUSPICIOUS) is flagged
    assert (ClinicalReason.LVEF_ERROR_HIGH in reasons) is flagged


def test_an_undefined_rv_ef_is_impossible() -> None:
    level, reasons = flag_patient(
        _values(rv_edv_ml=0.0, rv_esv_ml=0.0, rv_ef_pct=math.nan), None, ClinicalPolicy()
    )
    assert level == FlagLevel.SUSPICIOUS and reasons == (ClinicalReason.EF_IMPOSSIBLE,)


def test_policy_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="rule must be"):
        ClinicalPolicy(rule="median")
    with pytest.raises(ValueError, match="lvef_error_limit_pct"):
        ClinicalPolicy(lvef_error_limit_pct=-1.0)
