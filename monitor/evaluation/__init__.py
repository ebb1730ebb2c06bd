"""Pseudo vs real metrics on labelled data: how far to trust pDSC, pHD and the flags.

- ``pairing``: predictions paired with their ground truth by file name (``pair_cases``);
- ``cases``: the cases table, real and pseudo metrics per volume and structure (``evaluate_cases``);
- ``statistics``: pure summaries (correlations, rankings, flag quality, risk-coverage; ``summarise``);
- ``refined``: the paper's plain pseudo metrics and flags beside the refined ones (``plain_vs_refined``);
- ``families``: failure-set manifests and the per-family table (``read_manifest``, ``family_table``);
- ``report``: ``cases.csv``, ``summary.json``, plots and ``report.md`` (``write_report``);
- ``realized``: real metrics recorded for the predictions a results database scored
  (``record_realized_files``, ``calibrate --db``, ``evaluate --db``, the demo);
- ``run``: all of it (``run_evaluation``, the ``cmr-monitor evaluate`` command).

Example::

    from monitor.evaluation import evaluate_cases, pair_cases, summarise, write_report
    from monitor.model import Scorer

    pairing = pair_cases("gt", {"tiramisu": "pred/tiramisu"})
    cases, skipped = evaluate_cases(pairing.pairs, Scorer(), batch_volumes=8)
    write_report(cases, summarise(cases), "report/")
"""

from monitor.evaluation.cases import CASE_COLUMNS, evaluate_cases, paired_image
from monitor.evaluation.families import (
    MANIFEST_NAME,
    FamilySet,
    family_table,
    read_manifest,
    volume_table,
    write_manifest,
)
from monitor.evaluation.pairing import GROUND_TRUTH, CasePair, Pairing, SkippedCase, pair_cases
from monitor.evaluation.refined import plain_vs_refined, volume_failure_quality
from monitor.evaluation.report import write_cases, write_report
from monitor.evaluation.run import run_evaluation
from monitor.evaluation.statistics import (
    FAILURE_DICE,
    FAILURE_HD_MM,
    METRICS,
    PHASES,
    aurc,
    correlate,
    correlation_table,
    failures,
    false_alarms,
    flag_quality,
    precision_recall,
    rank_segmenters,
    risk_coverage,
    risk_coverage_table,
    summarise,
    zero_filled,
)

__all__ = [
    "CASE_COLUMNS",
    "FAILURE_DICE",
    "FAILURE_HD_MM",
    "GROUND_TRUTH",
    "MANIFEST_NAME",
    "METRICS",
    "PHASES",
    "CasePair",
    "FamilySet",
    "Pairing",
    "SkippedCase",
    "aurc",
    "correlate",
    "correlation_table",
    "evaluate_cases",
    "failures",
    "false_alarms",
    "family_table",
    "flag_quality",
    "pair_cases",
    "paired_image",
    "plain_vs_refined",
    "precision_recall",
    "rank_segmenters",
    "read_manifest",
    "risk_coverage",
    "risk_coverage_table",
    "run_evaluation",
    "summarise",
    "volume_failure_quality",
    "volume_table",
    "write_cases",
    "write_manifest",
    "write_report",
    "zero_filled",
]
