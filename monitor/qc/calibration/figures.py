"""How good estimates are against real values: r, MAE, interval coverage, flag quality, rankings.

Pure numpy/scipy summaries used by the model card, ``cmr-monitor calibrate``'s report and the fit
script. Rows with a nan real value or estimate are left out and counted (``n``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

__all__ = ["EstimateFigures", "FlagFigures", "estimate_figures", "flag_figures", "ranking_rho"]


@dataclass(frozen=True, slots=True, kw_only=True)
class EstimateFigures:
    """Agreement of one estimate with the real values."""

    n: int  #: rows with both values defined
    r: float  #: Pearson correlation
    mae: float  #: mean absolute error (the metric's unit: Dice 0-1, HD mm)
    coverage: float  #: share of real values inside [lo, hi] (nan without intervals)
    width: float  #: median interval width (nan without intervals)

    def as_dict(self) -> dict[str, float]:
        """Plain dict (JSON)."""
        return asdict(self)


def estimate_figures(
    real: np.ndarray, estimate: np.ndarray, lo: np.ndarray | None = None, hi: np.ndarray | None = None
) -> EstimateFigures:
    """r, MAE and (with an interval) coverage and median width of ``estimate`` against ``real``."""
    real = np.asarray(real, dtype=float)
    estimate = np.asarray(estimate, dtype=float)
    keep = np.isfinite(real) & np.isfinite(estimate)
    n = int(keep.sum())
    if n < 3:
        return EstimateFigures(n=n, r=math.nan, mae=math.nan, coverage=math.nan, width=math.nan)
    a, b = real[keep], estimate[keep]
    r = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else math.nan
    coverage = width = math.nan
    if lo is not None and hi is not None:
        lo_k, hi_k = np.asarray(lo, dtype=float)[keep], np.asarray(hi, dtype=float)[keep]
        coverage = float(np.mean((a >= lo_k) & (a <= hi_k)))
        width = float(np.median(hi_k - lo_k))
    return EstimateFigures(n=n, r=r, mae=float(np.mean(np.abs(a - b))), coverage=coverage, width=width)


@dataclass(frozen=True, slots=True, kw_only=True)
class FlagFigures:
    """Flags against real failures."""

    n: int  #: rows
    failures: int  #: real failures among them
    flagged: int  #: rows flagged
    precision: float  #: flagged rows that are real failures (nan when none flagged)
    recall: float  #: real failures flagged (nan when there are none)

    def as_dict(self) -> dict[str, float]:
        """Plain dict (JSON)."""
        return asdict(self)


def flag_figures(failed: np.ndarray, flagged: np.ndarray) -> FlagFigures:
    """Precision and recall of boolean ``flagged`` against boolean real ``failed``."""
    failed = np.asarray(failed, dtype=bool)
    flagged = np.asarray(flagged, dtype=bool)
    hits = int(np.sum(failed & flagged))
    return FlagFigures(
        n=int(failed.size),
        failures=int(failed.sum()),
        flagged=int(flagged.sum()),
        precision=hits / int(flagged.sum()) if flagged.any() else math.nan,
        recall=hits / int(failed.sum()) if failed.any() else math.nan,
    )


def ranking_rho(groups: Sequence[str], real: np.ndarray, estimate: np.ndarray) -> float:
    """Spearman correlation between groups ranked by mean real value and by mean estimate.

    Args:
        groups: the group (segmenter) of each row.
        real, estimate: per-row values; nan rows are left out of both means.
    Returns: r_s over the groups; nan with fewer than 3 groups.
    """
    real = np.asarray(real, dtype=float)
    estimate = np.asarray(estimate, dtype=float)
    labels = np.asarray(groups)
    keep = np.isfinite(real) & np.isfinite(estimate)
    names = sorted(set(labels[keep].tolist()))
    if len(names) < 3:
        return math.nan
    means_real = [real[keep & (labels == g)].mean() for g in names]
    means_est = [estimate[keep & (labels == g)].mean() for g in names]
    return float(stats.spearmanr(means_real, means_est).statistic)
