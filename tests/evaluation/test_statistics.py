"""Tests of ``monitor.evaluation.statistics`` on hand-made tables with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from monitor.evaluation import (
    GROUND_TRUTH,
    PHASES,
    aurc,
    correlate,
    correlation_table,
    false_alarms,
    flag_quality,
    precision_recall,
    rank_segmenters,
    risk_coverage,
)
from tests.evaluation.conftest import STRUCTURES


def _table(records: list[tuple]) -> pd.DataFrame:
    """(segmenter, case, phase, structure, dice, hd_mm, pdsc, phd_mm, flag, missing) -> cases table."""
    columns = [
        "segmenter",
        "case",
        "phase",
        "structure",
        "dice",
        "hd_mm",
        "pdsc",
        "phd_mm",
        "flag",
        "missing",
    ]
    frame = pd.DataFrame(records, columns=columns)
    frame["patient"] = frame["case"].str.split("_").str[0]
    worst = {"ok": 0, "suspicious": 1, "erroneous": 2}
    frame["volume_flag"] = frame.groupby(["segmenter", "case"])["flag"].transform(
        lambda f: max(f, key=worst.__getitem__)
    )
    return frame


def test_correlate_matches_numpy_and_drops_nan_pairs() -> None:
    rng = np.random.default_rng(3)
    real = rng.uniform(0, 1, 40)
    pseudo = real + rng.normal(0, 0.2, 40)
    real[[2, 7]] = np.nan
    pseudo[[7, 11, 30]] = np.nan
    got = correlate(real, pseudo)
    keep = np.isfinite(real) & np.isfinite(pseudo)
    x, y = real[keep], pseudo[keep]
    assert got["n"] == 36 and got["n_dropped"] == 4
    assert got["pearson"] == pytest.approx(np.corrcoef(x, y)[0, 1])
    ranks_x, ranks_y = pd.Series(x).rank().to_numpy(), pd.Series(y).rank().to_numpy()
    assert got["spearman"] == pytest.approx(np.corrcoef(ranks_x, ranks_y)[0, 1])
    assert got["mae"] == pytest.approx(np.mean(np.abs(x - y)))
    empty = correlate([np.nan, 1.0], [0.5, np.nan])
    assert empty["n"] == 0 and math.isnan(empty["pearson"]) and math.isnan(empty["mae"])
    assert math.isnan(correlate([1.0, 1.0, 1.0], [0.1, 0.2, 0.3])["pearson"])  # constant side


def test_correlation_table_per_structure_and_phase() -> None:
    cases = _table(
        [
            ("A", "p1_ED", "ED", "LV", 0.9, 5.0, 0.8, 6.0, "ok", False),
            ("A", "p1_ES", "ES", "LV", 0.7, 9.0, 0.6, 12.0, "ok", False),
            ("B", "p1_ED", "ED", "LV", 0.5, 20.0, 0.55, 18.0, "ok", False),
            ("B", "p1_ES", "ES", "LV", 0.0, np.nan, 0.0, np.nan, "erroneous", True),
            (GROUND_TRUTH, "p1_ED", "ED", "LV", 1.0, 0.0, 0.1, 90.0, "suspicious", False),
        ]
    )
    table = correlation_table(cases)
    assert set(table) == {"dice", "hd_mm"}
    assert set(table["dice"]) == set(STRUCTURES)
    assert set(table["dice"]["LV"]) == set(PHASES)
    assert table["dice"]["LV"]["ED"]["n"] == 2  # ground_truth left out
    assert table["dice"]["LV"]["all"]["pearson"] == pytest.approx(
        np.corrcoef([0.9, 0.7, 0.5, 0.0], [0.8, 0.6, 0.55, 0.0])[0, 1]
    )
    assert (table["hd_mm"]["LV"]["all"]["n"], table["hd_mm"]["LV"]["all"]["n_dropped"]) == (3, 1)
    assert table["dice"]["RV"]["all"]["n"] == 0


def test_rankings_and_their_spearman() -> None:
    records = []
    # mean real Dice A 0.9 > B 0.7 > C 0.5; mean pDSC B 0.65 > A 0.6 > C 0.3
    for name, d, pd_ in (("A", 0.9, 0.6), ("B", 0.7, 0.65), ("C", 0.5, 0.3)):
        for case, shift in (("p1_ED", -0.05), ("p2_ED", 0.05)):
            hd = np.nan if name == "C" else {"A": 5.0, "B": 10.0}[name] + shift
            records.append((name, case, "ED", "LV", d + shift, hd, pd_ + shift, 7.0 + shift, "ok", False))
    ranking = rank_segmenters(_table(records))
    lv = ranking["dice"]["LV"]["ED"]
    assert [lv["segmenters"][n]["real_rank"] for n in "ABC"] == [1.0, 2.0, 3.0]
    assert [lv["segmenters"][n]["pseudo_rank"] for n in "ABC"] == [2.0, 1.0, 3.0]
    assert lv["segmenters"]["B"]["pseudo_mean"] == pytest.approx(0.65)
    assert lv["spearman"] == pytest.approx(1 - 6 * 2 / (3 * (9 - 1)))  # = 0.5
    assert ranking["dice"]["LV"]["all"]["spearman"] == pytest.approx(0.5)
    assert ranking["dice"]["LV"]["ES"]["n_segmenters"] == 0
    hd = ranking["hd_mm"]["LV"]["ED"]
    assert hd["excluded"] == ["C"] and hd["n_segmenters"] == 2
    assert hd["segmenters"]["A"]["real_rank"] == 1.0  # lower HD is better
    assert math.isnan(hd["segmenters"]["C"]["real_rank"])
    # pHD means are 7.0 for both A and B: the pseudo ranking is a tie, r_s undefined
    assert hd["segmenters"]["A"]["pseudo_rank"] == hd["segmenters"]["B"]["pseudo_rank"] == 1.5
    assert math.isnan(hd["spearman"])


def test_precision_recall_counts() -> None:
    got = precision_recall([True, True, False, False, True], [True, False, True, False, True])
    assert (got["tp"], got["fp"], got["fn"], got["tn"], got["n"]) == (2, 1, 1, 1, 5)
    assert got["precision"] == pytest.approx(2 / 3) and got["recall"] == pytest.approx(2 / 3)
    none = precision_recall([False, False], [False, False])
    assert math.isnan(none["precision"]) and math.isnan(none["recall"])


def test_flag_quality_and_false_alarms_on_a_hand_made_table() -> None:
    cases = _table(
        [
            # missing RV, caught
            ("A", "p1_ED", "ED", "RV", 0.0, np.nan, 0.0, np.nan, "erroneous", True),
            # erroneous although present (vanished from pGT) and fine: false alarm of both detectors
            ("A", "p1_ED", "ED", "LV", 0.95, 4.0, np.nan, np.nan, "erroneous", False),
            # real failure by HD only, flagged suspicious
            ("A", "p1_ED", "ED", "MYO", 0.8, 60.0, 0.6, 70.0, "suspicious", False),
            # real failure by Dice, missed
            ("B", "p1_ED", "ED", "LV", 0.4, 12.0, 0.7, 10.0, "ok", False),
            # fine and ok
            ("B", "p1_ED", "ED", "RV", 0.9, 8.0, 0.8, 9.0, "ok", False),
            ("B", "p1_ED", "ED", "MYO", 0.85, 7.0, 0.7, 8.0, "ok", False),
            # ground truth: one volume with a suspicious MYO, one clean
            (GROUND_TRUTH, "p1_ED", "ED", "LV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p1_ED", "ED", "RV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p1_ED", "ED", "MYO", 1.0, 0.0, 0.4, 9.0, "suspicious", False),
            (GROUND_TRUTH, "p2_ED", "ED", "LV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p2_ED", "ED", "RV", 1.0, 0.0, 0.9, 5.0, "ok", False),
            (GROUND_TRUTH, "p2_ED", "ED", "MYO", 1.0, 0.0, 0.8, 5.0, "ok", False),
        ]
    )
    quality = flag_quality(cases)
    missing = quality["erroneous_vs_missing"]
    assert (missing["all"]["tp"], missing["all"]["fp"], missing["all"]["fn"]) == (1, 1, 0)
    assert missing["all"]["precision"] == 0.5 and missing["all"]["recall"] == 1.0
    assert missing["RV"]["precision"] == 1.0 and missing["LV"]["precision"] == 0.0
    assert math.isnan(missing["MYO"]["precision"]) and missing["all"]["n"] == 6
    failure = quality["flagged_vs_failure"]["all"]
    # failures: A-RV (Dice 0), A-MYO (HD 60), B-LV (Dice 0.4); flagged: A-RV, A-LV, A-MYO
    assert (failure["tp"], failure["fp"], failure["fn"], failure["tn"]) == (2, 1, 1, 2)
    alarms = false_alarms(cases)
    assert alarms["MYO"] == {"rate": 0.5, "flagged": 1, "erroneous": 0, "n": 2}
    assert alarms["LV"]["rate"] == 0.0
    assert alarms["all"]["rate"] == pytest.approx(1 / 6)
    assert alarms["volume_any"] == {"rate": 0.5, "flagged": 1, "erroneous": 0, "n": 2}


def test_risk_coverage_and_aurc_by_hand() -> None:
    coverage, risk = risk_coverage([0.9, 0.8, 0.7, 0.6], [0.0, 1.0, 0.0, 1.0])
    assert coverage == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert risk == pytest.approx([0.0, 0.5, 1 / 3, 0.5])
    got = aurc([0.6, 0.9, 0.7, 0.8], [1.0, 0.0, 0.0, 1.0])  # same items, shuffled
    assert got["aurc"] == pytest.approx((0 + 0.5 + 1 / 3 + 0.5) / 4)
    assert got["optimal"] == pytest.approx((0 + 0 + 1 / 3 + 0.5) / 4)
    assert got["random"] == 0.5 and got["excess"] == pytest.approx(got["aurc"] - got["optimal"])
    # a perfect confidence reaches the optimum
    perfect = aurc([0.9, 0.5, 0.1], [0.1, 0.3, 0.8])
    assert perfect["aurc"] == pytest.approx(perfect["optimal"])
    # ties share their mean risk: the expected area over both orders, (0.25 + 0.75) / 2
    assert aurc([0.5, 0.5], [0.0, 1.0])["aurc"] == pytest.approx(0.5)
    # nan risk dropped; nan confidence counts as the least confident
    got = aurc([np.nan, 0.9, 0.8], [1.0, 0.0, np.nan])
    assert (got["n"], got["n_dropped"]) == (2, 1)
    assert got["aurc"] == pytest.approx((0.0 + 0.5) / 2)
    assert math.isnan(aurc([0.1], [np.nan])["aurc"])
