"""Pure summaries of the cases table: how well the pseudo metrics stand in for the real ones.

- correlation of real vs pseudo (Pearson, Spearman, mean absolute error) per structure and phase;
- ranking of the segmenters by mean real and mean pseudo metric, with Spearman's r_s between the two
  rankings (the paper's Table 1);
- flag quality: ``erroneous`` vs structures really missing from the prediction, ``suspicious or
  erroneous`` vs real failures, false alarms on the ground-truth masks themselves (scored as the extra
  pseudo-segmenter ``ground_truth``);
- risk-coverage curves with pDSC as the confidence and their area (AURC).

Every function takes pandas/numpy objects and returns plain dicts or arrays; nan stays nan.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from monitor.evaluation.pairing import GROUND_TRUTH
from monitor.qc.labels import STRUCTURES

__all__ = [
    "FAILURE_DICE",
    "FAILURE_HD_MM",
    "METRICS",
    "PHASES",
    "aurc",
    "correlate",
    "correlation_table",
    "failures",
    "false_alarms",
    "flag_quality",
    "precision_recall",
    "rank_segmenters",
    "risk_coverage",
    "risk_coverage_table",
    "risk_inputs",
    "segmenter_rows",
    "summarise",
    "zero_filled",
]

#: Phase keys of the summary; "all" pools every volume (including those of unknown phase).
PHASES: tuple[str, ...] = ("ED", "ES", "all")
#: Summary metric key -> (real column, pseudo column, True when higher is better).
METRICS: dict[str, tuple[str, str, bool]] = {
    "dice": ("dice", "pdsc", True),
    "hd_mm": ("hd_mm", "phd_mm", False),
}
#: Real failure of a structure: Dice below this ...
FAILURE_DICE = 0.5
#: ... or Hausdorff distance above this (mm).
FAILURE_HD_MM = 50.0


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    return _correlation(stats.pearsonr, x, y)


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    return _correlation(stats.spearmanr, x, y)


def _correlation(method: Any, x: np.ndarray, y: np.ndarray) -> float:
    """``method(x, y)``'s coefficient; nan with fewer than 2 pairs or a constant side."""
    if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(method(x, y)[0])


def correlate(real: Iterable[float], pseudo: Iterable[float]) -> dict[str, float | int]:
    """Agreement of paired real and pseudo values; pairs with a nan on either side are dropped.

    Returns: ``pearson``, ``spearman`` (nan when fewer than 2 pairs or a side is constant), ``mae``
        (mean absolute difference, in the metric's unit; nan when no pairs), ``n`` (pairs used) and
        ``n_dropped``.
    """
    x = np.asarray(list(real), dtype=float)
    y = np.asarray(list(pseudo), dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"real and pseudo must have the same length, got {x.shape} and {y.shape}")
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    return {
        "pearson": _pearson(x, y),
        "spearman": _spearman(x, y),
        "mae": float(np.mean(np.abs(x - y))) if len(x) else float("nan"),
        "n": int(keep.sum()),
        "n_dropped": int((~keep).sum()),
    }


def segmenter_rows(cases: pd.DataFrame) -> pd.DataFrame:
    return cases[cases["segmenter"] != GROUND_TRUTH]


def _phase_rows(cases: pd.DataFrame, phase: str) -> pd.DataFrame:
    return cases if phase == "all" else cases[cases["phase"] == phase]


def correlation_table(cases: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, float | int]]]]:
    """``correlate`` of real vs pseudo for each metric, structure and phase (``ground_truth`` rows left out).

    Returns: ``{metric: {structure: {phase: correlate(...)}}}`` with metric in ``METRICS``.
    """
    data = segmenter_rows(cases)
    out: dict[str, dict[str, dict[str, dict[str, float | int]]]] = {}
    for metric, (real, pseudo, _) in METRICS.items():
        out[metric] = {}
        for structure in STRUCTURES:
            rows = data[data["structure"] == structure.value]
            out[metric][structure.value] = {
                phase: correlate(_phase_rows(rows, phase)[real], _phase_rows(rows, phase)[pseudo])
                for phase in PHASES
            }
    return out


def _ranks(values: np.ndarray, higher_is_better: bool) -> np.ndarray:
    return stats.rankdata(-values if higher_is_better else values, method="average")


def rank_segmenters(cases: pd.DataFrame) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """Rank the segmenters by mean real and by mean pseudo metric (1 = best), per structure and phase.

    Means skip nan values (e.g. HD of a missing structure); a segmenter whose real or pseudo mean is nan
    is left out of that ranking and listed in ``excluded``. ``spearman`` is Spearman's r_s between the
    two rankings (nan with fewer than 2 ranked segmenters). ``ground_truth`` rows are left out.

    Returns: ``{metric: {structure: {phase: {"spearman", "n_segmenters", "excluded",
        "segmenters": {name: {"real_mean", "pseudo_mean", "real_rank", "pseudo_rank", "n_real",
        "n_pseudo"}}}}}}``; ranks are nan for excluded segmenters.
    """
    data = segmenter_rows(cases)
    names = list(dict.fromkeys(data["segmenter"]))
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for metric, (real, pseudo, higher) in METRICS.items():
        out[metric] = {}
        for structure in STRUCTURES:
            out[metric][structure.value] = {}
            by_structure = data[data["structure"] == structure.value]
            for phase in PHASES:
                rows = _phase_rows(by_structure, phase)
                table = {}
                for name in names:
                    mine = rows[rows["segmenter"] == name]
                    r, p = mine[real].to_numpy(float), mine[pseudo].to_numpy(float)
                    table[name] = {
                        "real_mean": float(np.nanmean(r)) if np.isfinite(r).any() else float("nan"),
                        "pseudo_mean": float(np.nanmean(p)) if np.isfinite(p).any() else float("nan"),
                        "real_rank": float("nan"),
                        "pseudo_rank": float("nan"),
                        "n_real": int(np.isfinite(r).sum()),
                        "n_pseudo": int(np.isfinite(p).sum()),
                    }
                ranked = [
                    n
                    for n in names
                    if math.isfinite(table[n]["real_mean"]) and math.isfinite(table[n]["pseudo_mean"])
                ]
                real_means = np.array([table[n]["real_mean"] for n in ranked])
                pseudo_means = np.array([table[n]["pseudo_mean"] for n in ranked])
                if ranked:
                    for n, rr, pr in zip(
                        ranked, _ranks(real_means, higher), _ranks(pseudo_means, higher), strict=True
                    ):
                        table[n]["real_rank"], table[n]["pseudo_rank"] = float(rr), float(pr)
                out[metric][structure.value][phase] = {
                    "spearman": _spearman(real_means, pseudo_means),
                    "n_segmenters": len(ranked),
                    "excluded": [n for n in names if n not in ranked],
                    "segmenters": table,
                }
    return out


def precision_recall(predicted: Iterable[bool], actual: Iterable[bool]) -> dict[str, float | int]:
    """Precision and recall of a binary detector.

    Returns: ``precision`` = tp / (tp + fp), ``recall`` = tp / (tp + fn) (nan when the denominator is
        0), and the counts ``tp``, ``fp``, ``fn``, ``tn``, ``n``.
    """
    pred = np.asarray(list(predicted), dtype=bool)
    act = np.asarray(list(actual), dtype=bool)
    if pred.shape != act.shape:
        raise ValueError(f"predicted and actual must have the same length, got {pred.shape} and {act.shape}")
    tp, fp = int((pred & act).sum()), int((pred & ~act).sum())
    fn, tn = int((~pred & act).sum()), int((~pred & ~act).sum())
    return {
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "n": int(pred.size),
    }


def failures(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> pd.Series:
    """Real failure of each row: Dice < ``failure_dice`` or HD > ``failure_hd_mm`` (nan compares False)."""
    d = cases["dice"].astype(float)
    h = cases["hd_mm"].astype(float)
    return (d < failure_dice) | (h > failure_hd_mm)


def _by_structure(cases: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    return [(s.value, cases[cases["structure"] == s.value]) for s in STRUCTURES] + [("all", cases)]


def flag_quality(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, dict[str, dict[str, float | int]]]:
    """Structure-level quality of the flags on the segmenters' predictions (``ground_truth`` left out).

    - ``erroneous_vs_missing``: flag ``erroneous`` against the structure being absent from the prediction
      while present in the ground truth (column ``missing``);
    - ``flagged_vs_failure``: flag ``suspicious`` or ``erroneous`` against a real failure (``failures``);
    - ``review_vs_failure``: the same in review mode (column ``flag_review``: every failed evidence
      check raising its code), when the table has that column.

    Returns: ``{name: {structure or "all": precision_recall(...)}}``.
    """
    data = segmenter_rows(cases)
    out: dict[str, dict[str, dict[str, float | int]]] = {"erroneous_vs_missing": {}, "flagged_vs_failure": {}}
    for key, rows in _by_structure(data):
        out["erroneous_vs_missing"][key] = precision_recall(rows["flag"] == "erroneous", rows["missing"])
        out["flagged_vs_failure"][key] = precision_recall(
            rows["flag"] != "ok", failures(rows, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm)
        )
        if "flag_review" in rows:
            out.setdefault("review_vs_failure", {})[key] = precision_recall(
                rows["flag_review"] != "ok",
                failures(rows, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm),
            )
    return out


def false_alarms(cases: pd.DataFrame) -> dict[str, dict[str, float | int]]:
    """How often the ground-truth masks themselves (segmenter ``ground_truth``) get flagged.

    Returns: ``{structure or "all": {"rate", "flagged", "erroneous", "n"}}`` over structures (``rate`` =
        flagged / n, flagged = suspicious or erroneous; nan when n = 0) and ``"volume_any"`` over volumes
        (a volume counts when any of its structures is flagged).
    """
    gt = cases[cases["segmenter"] == GROUND_TRUTH]
    out: dict[str, dict[str, float | int]] = {}
    for key, rows in _by_structure(gt):
        flagged = int((rows["flag"] != "ok").sum())
        out[key] = {
            "rate": flagged / len(rows) if len(rows) else float("nan"),
            "flagged": flagged,
            "erroneous": int((rows["flag"] == "erroneous").sum()),
            "n": len(rows),
        }
    # astype(bool): without ground-truth rows (``--no-ground-truth``) the aggregate keeps the flag
    # column's string dtype, whose sum is "" rather than 0
    volumes = gt.groupby("case", sort=False)["flag"].agg(lambda f: bool((f != "ok").any())).astype(bool)
    erroneous = (
        gt.groupby("case", sort=False)["flag"].agg(lambda f: bool((f == "erroneous").any())).astype(bool)
    )
    out["volume_any"] = {
        "rate": float(volumes.mean()) if len(volumes) else float("nan"),
        "flagged": int(volumes.sum()),
        "erroneous": int(erroneous.sum()),
        "n": len(volumes),
    }
    return out


def risk_coverage(confidence: Iterable[float], risk: Iterable[float]) -> tuple[np.ndarray, np.ndarray]:
    """Risk-coverage curve: mean risk of the k most confident items, for k = 1..n.

    Items with nan risk are dropped; nan confidence counts as the lowest. Items of equal confidence
    share their mean risk, which is the expected curve over every order of the ties.

    Returns: (coverage k/n, selective risk), both float [n]; empty arrays when nothing is left.
    """
    conf = np.asarray(list(confidence), dtype=float)
    r = np.asarray(list(risk), dtype=float)
    if conf.shape != r.shape:
        raise ValueError(f"confidence and risk must have the same length, got {conf.shape} and {r.shape}")
    keep = np.isfinite(r)
    conf, r = np.where(np.isfinite(conf[keep]), conf[keep], -np.inf), r[keep]
    if r.size == 0:
        return np.zeros(0), np.zeros(0)
    order = np.argsort(-conf, kind="stable")
    conf, r = conf[order], r[order]
    _, group, counts = np.unique(-conf, return_inverse=True, return_counts=True)
    r = np.bincount(group, weights=r)[group] / counts[group]
    k = np.arange(1, r.size + 1)
    return k / r.size, np.cumsum(r) / k


def aurc(confidence: Iterable[float], risk: Iterable[float]) -> dict[str, float | int]:
    """Area under the risk-coverage curve (mean of the selective risks over k = 1..n; lower is better).

    Returns: ``aurc``; ``optimal`` (an oracle ordering by risk); ``random`` (the expected value for a
        random ordering, i.e. the mean risk); ``excess`` = aurc - optimal; ``n`` (items used) and
        ``n_dropped`` (nan risk). Areas are nan when nothing is left.
    """
    conf = np.asarray(list(confidence), dtype=float)
    r = np.asarray(list(risk), dtype=float)
    _, selective = risk_coverage(conf, r)
    kept = np.sort(r[np.isfinite(r)])
    if kept.size == 0:
        nan = float("nan")
        return {"aurc": nan, "optimal": nan, "random": nan, "excess": nan, "n": 0, "n_dropped": int(r.size)}
    area = float(selective.mean())
    optimal = float((np.cumsum(kept) / np.arange(1, kept.size + 1)).mean())
    return {
        "aurc": area,
        "optimal": optimal,
        "random": float(kept.mean()),
        "excess": area - optimal,
        "n": int(kept.size),
        "n_dropped": int(r.size - kept.size),
    }


def risk_inputs(
    cases: pd.DataFrame, failure_dice: float, failure_hd_mm: float
) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Scope -> (confidence, {risk name: risk}) for LV, RV, MYO, all structures and whole volumes."""
    data = segmenter_rows(cases).copy()
    data["failure"] = failures(data, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm).astype(float)
    out = {}
    for key, rows in _by_structure(data):
        out[key] = (
            rows["pdsc"].to_numpy(float),
            {"dice": 1.0 - rows["dice"].to_numpy(float), "failure": rows["failure"].to_numpy(float)},
        )
    volumes = data.groupby(["segmenter", "case"], sort=False).agg(
        pdsc=("pdsc", "mean"), dice=("dice", "mean"), failure=("failure", "max")
    )
    out["volume"] = (
        volumes["pdsc"].to_numpy(float),
        {"dice": 1.0 - volumes["dice"].to_numpy(float), "failure": volumes["failure"].to_numpy(float)},
    )
    return out


def risk_coverage_table(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, dict[str, dict[str, float | int]]]:
    """AURC with pDSC as confidence, per scope and risk (``ground_truth`` rows left out).

    Scopes: ``LV``, ``RV``, ``MYO``, ``all`` (every structure row) and ``volume`` (confidence = mean pDSC
    of the volume's structures, risk = 1 - mean real Dice, or any structure failing). Risks: ``dice``
    (1 - real Dice) and ``failure`` (0/1, ``failures``).

    Returns: ``{scope: {risk: aurc(...)}}``.
    """
    return {
        scope: {name: aurc(conf, risk) for name, risk in risks.items()}
        for scope, (conf, risks) in risk_inputs(cases, failure_dice, failure_hd_mm).items()
    }


def _per_segmenter(
    cases: pd.DataFrame, failure_dice: float, failure_hd_mm: float
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(cases["segmenter"]):
        rows = cases[cases["segmenter"] == name]
        volume_flags = rows.groupby("case", sort=False)["volume_flag"].first()
        out[name] = {
            "n_volumes": int(rows["case"].nunique()),
            "mean": {
                structure: {column: _nan_mean(part[column]) for column in ("dice", "pdsc", "hd_mm", "phd_mm")}
                for structure, part in _by_structure(rows)
            },
            "structure_flags": {
                lvl: int((rows["flag"] == lvl).sum()) for lvl in ("ok", "suspicious", "erroneous")
            },
            "volume_flags": {
                lvl: int((volume_flags == lvl).sum()) for lvl in ("ok", "suspicious", "erroneous")
            },
            "missing_structures": int(rows["missing"].sum()),
            "failed_structures": int(
                failures(rows, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm).sum()
            ),
        }
    return out


def _nan_mean(values: pd.Series) -> float:
    v = values.to_numpy(float)
    return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")


def zero_filled(cases: pd.DataFrame) -> pd.DataFrame:
    """The paper's convention for erroneous structures: pDSC = 0 where it is undefined.

    When a structure is missing from both the mask and its pGT, pDSC is nan here (nothing to
    compare), while the real DSC is 0 (the reference has the structure). The paper scores such cases
    pDSC = pHD = 0; this copy sets pDSC to 0 for erroneous rows with a nan pDSC, so that correlations
    can be compared with the paper's. HD columns are left as they are (the real HD is undefined there).
    """
    out = cases.copy()
    fill = (out["flag"] == "erroneous") & out["pdsc"].isna()
    out.loc[fill, "pdsc"] = 0.0
    return out


def summarise(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, Any]:
    """Every figure of the evaluation from the cases table (pure; nan stays nan).

    Returns: a dict with ``n_volumes`` (segmenters' volumes), ``n_ground_truth_volumes``, ``segmenters``,
        ``thresholds``, ``per_segmenter``, ``correlation`` (``correlation_table``), ``ranking``
        (``rank_segmenters``), ``flags`` (``flag_quality`` plus ``false_alarm``: ``false_alarms``) and
        ``aurc`` (``risk_coverage_table``).
    """
    data = segmenter_rows(cases)
    gt = cases[cases["segmenter"] == GROUND_TRUTH]
    return {
        "n_volumes": int(data.groupby(["segmenter", "case"]).ngroups) if len(data) else 0,
        "n_ground_truth_volumes": int(gt["case"].nunique()),
        "segmenters": list(dict.fromkeys(data["segmenter"])),
        "thresholds": {"failure_dice": failure_dice, "failure_hd_mm": failure_hd_mm},
        "per_segmenter": _per_segmenter(cases, failure_dice, failure_hd_mm),
        "correlation": correlation_table(cases),
        "correlation_zero_filled": {"dice": correlation_table(zero_filled(cases))["dice"]},
        "ranking": rank_segmenters(cases),
        "flags": {
            **flag_quality(cases, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm),
            "false_alarm": false_alarms(cases),
        },
        "aurc": risk_coverage_table(cases, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm),
    }
