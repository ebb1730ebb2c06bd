"""Plain against refined: the paper's pDSC/pHD and flags beside the 3D-refined ones and the evidence.

The cases table carries both: ``pdsc`` / ``phd_mm`` / ``flag_plain`` (the paper's 2D autoencoder and
thresholds on them alone) and ``pdsc_3d`` / ``phd_mm_3d`` / ``flag`` (refined pGT, checks, image
evidence). ``plain_vs_refined`` summarises each side with the same functions as ``statistics``, so the
two columns of every figure are comparable. Pure: pandas in, plain dicts out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from monitor.evaluation.markdown import fmt, md_table
from monitor.evaluation.statistics import (
    FAILURE_DICE,
    FAILURE_HD_MM,
    correlation_table,
    failures,
    false_alarms,
    flag_quality,
    precision_recall,
    segmenter_rows,
)

__all__ = ["plain_vs_refined", "refined_markdown", "volume_failure_quality"]


def _as_refined_metrics(cases: pd.DataFrame) -> pd.DataFrame:
    """A copy whose pseudo columns are the refined values (for ``correlation_table``)."""
    return cases.assign(pdsc=cases["pdsc_3d"], phd_mm=cases["phd_mm_3d"])


def _as_plain_flags(cases: pd.DataFrame) -> pd.DataFrame:
    """A copy whose flag columns are the paper's plain flags (for ``flag_quality``, ``false_alarms``)."""
    return cases.assign(flag=cases["flag_plain"], volume_flag=cases["volume_flag_plain"])


def volume_failure_quality(
    cases: pd.DataFrame,
    flag_column: str = "volume_flag",
    *,
    failure_dice: float = FAILURE_DICE,
    failure_hd_mm: float = FAILURE_HD_MM,
) -> dict[str, float | int]:
    """Volume level: flag not ok against any structure of the volume being a real failure.

    ``ground_truth`` rows are left out. Returns: ``precision_recall(...)`` over volumes.
    """
    data = segmenter_rows(cases).copy()
    data["failure"] = failures(data, failure_dice=failure_dice, failure_hd_mm=failure_hd_mm)
    volumes = data.groupby(["segmenter", "case"], sort=False).agg(
        failure=("failure", "max"), flag=(flag_column, "first")
    )
    return precision_recall(volumes["flag"] != "ok", volumes["failure"].astype(bool))


def plain_vs_refined(
    cases: pd.DataFrame, *, failure_dice: float = FAILURE_DICE, failure_hd_mm: float = FAILURE_HD_MM
) -> dict[str, Any]:
    """The figures that compare the paper's plain pseudo metrics and flags with the refined ones.

    Returns: ``correlation_refined`` (``correlation_table`` of real vs ``pdsc_3d`` / ``phd_mm_3d``; the
        summary's ``correlation`` stays real vs plain), ``flags_plain`` (``flag_quality`` and
        ``false_alarm`` of the plain flags; the summary's ``flags`` are the refined ones) and
        ``volume_failure`` (``{"refined", "plain", "review"}``: ``volume_failure_quality``; review: every
        failed evidence check raising its code).
    """
    plain = _as_plain_flags(cases)
    limits = {"failure_dice": failure_dice, "failure_hd_mm": failure_hd_mm}
    return {
        "correlation_refined": correlation_table(_as_refined_metrics(cases)),
        "flags_plain": {**flag_quality(plain, **limits), "false_alarm": false_alarms(plain)},
        "volume_failure": {
            "refined": volume_failure_quality(cases, "volume_flag", **limits),
            "plain": volume_failure_quality(cases, "volume_flag_plain", **limits),
            **(
                {"review": volume_failure_quality(cases, "volume_flag_review", **limits)}
                if "volume_flag_review" in cases
                else {}
            ),
        },
    }


def _precision_recall_cells(*figures: Mapping[str, Any]) -> list[Any]:
    """Precision and recall of each ``precision_recall`` result, in order, for one table row."""
    return [pr[k] for pr in figures for k in ("precision", "recall")]


def refined_markdown(summary: Mapping[str, Any]) -> list[str]:
    """The report's "Plain vs refined" section (nothing when the summary has no refined figures)."""
    if "correlation_refined" not in summary:
        return []
    lines = [
        "## Plain vs refined",
        "",
        "The paper's pDSC/pHD and flags (plain) beside the 3D-refined pDSC/pHD and the flags with the "
        "evidence (refined). Pearson r against the real metric, all phases, `ground_truth` left out.",
        "",
    ]
    rows = []
    for metric, title in (("dice", "DSC"), ("hd_mm", "HD")):
        for structure, by_phase in summary["correlation"][metric].items():
            refined = summary["correlation_refined"][metric][structure]["all"]
            rows.append([title, structure, by_phase["all"]["pearson"], refined["pearson"], refined["n"]])
    lines += md_table(["metric", "structure", "r plain", "r refined", "n"], rows)
    rows = []
    nan = {"precision": math.nan, "recall": math.nan}
    for key in summary["flags"]["flagged_vs_failure"]:
        plain = summary["flags_plain"]["flagged_vs_failure"][key]
        refined = summary["flags"]["flagged_vs_failure"][key]
        review = summary["flags"].get("review_vs_failure", {}).get(key, nan)
        rows.append([key, *_precision_recall_cells(plain, refined, review)])
    volume = summary["volume_failure"]
    rows.append(
        ["volume", *_precision_recall_cells(volume["plain"], volume["refined"], volume.get("review", nan))]
    )
    lines += [
        "Real failure (structure DSC or HD past the thresholds; a volume fails when any structure does) "
        "against a flag (suspicious or erroneous):",
        "",
    ]
    lines += md_table(
        [
            "scope",
            "precision plain",
            "recall plain",
            "precision refined",
            "recall refined",
            "precision review",
            "recall review",
        ],
        rows,
    )
    plain, refined = summary["flags_plain"]["false_alarm"], summary["flags"]["false_alarm"]
    lines += ["Ground-truth masks flagged:", ""]
    lines += md_table(
        ["scope", "plain", "refined", "n"],
        (
            [
                k,
                f"{plain[k]['flagged']} ({fmt(plain[k]['rate'])})",
                f"{v['flagged']} ({fmt(v['rate'])})",
                v["n"],
            ]
            for k, v in refined.items()
        ),
    )
    return lines
