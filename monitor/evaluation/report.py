"""The evaluation report: ``cases.csv``, ``summary.json``, PNG plots (real vs pseudo scatter,
risk-coverage) and ``report.md`` linking them (``write_report``)."""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import monitor.evaluation.statistics as statistics
from monitor.evaluation.families import families_markdown
from monitor.evaluation.markdown import fmt as _fmt
from monitor.evaluation.markdown import md_table as _md_table
from monitor.evaluation.pairing import GROUND_TRUTH
from monitor.evaluation.refined import refined_markdown
from monitor.qc.labels import STRUCTURES

__all__ = ["write_cases", "write_report"]

log = logging.getLogger(__name__)


def _nan_to_none(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _jsonable(value: Any) -> Any:
    """Plain JSON types; nan/inf become null, numpy scalars and paths become Python ones."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _nan_to_none(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _plot_scatter(cases: pd.DataFrame, metric: str, path: Path) -> None:
    from matplotlib.figure import Figure

    real, pseudo, _ = statistics.METRICS[metric]
    label = {"dice": ("DSC", "pDSC"), "hd_mm": ("HD (mm)", "pHD (mm)")}[metric]
    data = statistics.segmenter_rows(cases)
    names = list(dict.fromkeys(data["segmenter"]))
    fig = Figure(figsize=(4.2 * len(STRUCTURES), 4.4), layout="constrained")
    axes = fig.subplots(1, len(STRUCTURES))
    colours = _colours(len(names))
    for ax, structure in zip(axes, STRUCTURES, strict=True):
        rows = data[data["structure"] == structure.value]
        x_all, y_all = rows[real].to_numpy(float), rows[pseudo].to_numpy(float)
        ok = np.isfinite(x_all) & np.isfinite(y_all)
        for name, colour in zip(names, colours, strict=True):
            mine = rows[(rows["segmenter"] == name)]
            ax.scatter(mine[real], mine[pseudo], s=12, alpha=0.7, color=colour, label=name, linewidths=0)
        top = (
            1.0
            if metric == "dice"
            else float(max(np.max(x_all[ok], initial=1.0), np.max(y_all[ok], initial=1.0)))
        )
        lim = (0.0, top * 1.03)
        ax.plot(lim, lim, color="0.3", lw=1, ls="--", label="identity")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        ax.set_aspect("equal")
        stats = statistics.correlate(x_all, y_all)
        ax.set_title(f"{structure.value}: r = {_fmt(stats['pearson'])}, n = {stats['n']}")
        ax.set_xlabel(f"real {label[0]}")
        ax.set_ylabel(label[1])
        ax.grid(alpha=0.3)
    axes[-1].legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=110)


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _plot_risk_coverage(cases: pd.DataFrame, path: Path, failure_dice: float, failure_hd_mm: float) -> None:
    from matplotlib.figure import Figure

    inputs = statistics.risk_inputs(cases, failure_dice, failure_hd_mm)
    fig = Figure(figsize=(10, 4.4), layout="constrained")
    axes = fig.subplots(1, 2)
    titles = {"dice": "risk = 1 - real DSC", "failure": "risk = real failure (0/1)"}
    for ax, risk_name in zip(axes, ("dice", "failure"), strict=True):
        for (scope, label), colour in zip(
            (("all", "structures"), ("volume", "volumes")), _colours(2), strict=True
        ):
            conf, risks = inputs[scope]
            coverage, selective = statistics.risk_coverage(conf, risks[risk_name])
            if coverage.size == 0:
                continue
            area = statistics.aurc(conf, risks[risk_name])
            ax.plot(coverage, selective, color=colour, label=f"{label} by pDSC (AURC {area['aurc']:.3f})")
            kept = np.sort(risks[risk_name][np.isfinite(risks[risk_name])])
            optimal = np.cumsum(kept) / np.arange(1, kept.size + 1)
            ax.plot(coverage, optimal, color=colour, ls=":", label=f"{label} optimal ({area['optimal']:.3f})")
        ax.set_xlabel("coverage")
        ax.set_ylabel("selective risk")
        ax.set_xlim(0, 1)
        ax.set_title(titles[risk_name])
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
    fig.savefig(path, dpi=110)


def _report_markdown(summary: Mapping[str, Any], plots: Mapping[str, str | None]) -> str:
    lines = ["# cmr-monitor evaluation: pseudo vs real metrics", ""]
    meta = summary.get("inputs", {})
    if meta:
        lines += [f"- ground truth: `{meta.get('gt_dir', '')}`"]
        lines += [f"- predictions: {', '.join(f'{k} = `{v}`' for k, v in meta.get('pred_dirs', {}).items())}"]
    lines += [
        f"- checkpoint: `{summary.get('checkpoint', '')}` (sha256 `{summary.get('checkpoint_sha256', '')}`)",
        f"- volumes evaluated: {summary['n_volumes']} predicted, {summary['n_ground_truth_volumes']} "
        "ground truth scored as a pseudo-segmenter",
        f"- real failure: DSC < {summary['thresholds']['failure_dice']:g} or HD > "
        f"{summary['thresholds']['failure_hd_mm']:g} mm",
        "",
    ]
    pairing = summary.get("pairing", {})
    problems = [*pairing.get("unpaired", []), *pairing.get("skipped", [])]
    lines += ["## Pairing", ""]
    lines += [
        f"{len(pairing.get('unpaired', []))} predictions without ground truth (not evaluated), "
        f"{len(pairing.get('skipped', []))} volumes skipped (unreadable or geometry mismatch), "
        f"{sum(pairing.get('missing_predictions', {}).values())} ground truths without a prediction.",
        "",
    ]
    if problems:
        lines += _md_table(
            ["segmenter", "case", "reason", "detail"],
            ([p["segmenter"], p["case"], p["reason"], p["detail"]] for p in problems),
        )
    missing = {k: v for k, v in pairing.get("missing_predictions", {}).items() if v}
    if missing:
        lines += _md_table(["segmenter", "ground truths without a prediction"], missing.items())

    lines += [
        "## Per segmenter",
        "",
        "Means over volumes (nan values skipped); flags counted per structure.",
        "",
    ]
    rows = []
    for name, item in summary["per_segmenter"].items():
        mean = item["mean"]["all"]
        flags = item["structure_flags"]
        rows.append(
            [
                name,
                item["n_volumes"],
                mean["dice"],
                mean["pdsc"],
                _fmt(mean["hd_mm"], 1),
                _fmt(mean["phd_mm"], 1),
                f"{flags['ok']} / {flags['suspicious']} / {flags['erroneous']}",
                item["missing_structures"],
                item["failed_structures"],
            ]
        )
    lines += _md_table(
        ["segmenter", "volumes", "DSC", "pDSC", "HD mm", "pHD mm", "ok / susp. / err.", "missing", "failed"],
        rows,
    )

    lines += ["## Real vs pseudo metrics", ""]
    lines += [
        "Pearson and Spearman correlation, mean absolute error (MAE, DSC units or mm) and pairs used "
        "(pairs with a nan on either side dropped). The `ground_truth` pseudo-segmenter is left out.",
        "",
    ]
    rows = []
    for metric, by_structure in summary["correlation"].items():
        for structure, by_phase in by_structure.items():
            for phase, c in by_phase.items():
                rows.append(
                    [metric, structure, phase, c["pearson"], c["spearman"], c["mae"], c["n"], c["n_dropped"]]
                )
    lines += _md_table(
        ["metric", "structure", "phase", "Pearson r", "Spearman ρ", "MAE", "n", "dropped"], rows
    )
    rows = [
        [structure, phase, c["pearson"], c["spearman"], c["mae"], c["n"], c["n_dropped"]]
        for structure, by_phase in summary.get("correlation_zero_filled", {}).get("dice", {}).items()
        for phase, c in by_phase.items()
    ]
    if rows:
        lines += [
            "DSC vs pDSC with the paper's convention (pDSC = 0 for an erroneous structure that is missing "
            "from both mask and pGT, where it is otherwise undefined and dropped):",
            "",
        ]
        lines += _md_table(["structure", "phase", "Pearson r", "Spearman ρ", "MAE", "n", "dropped"], rows)
    for metric in statistics.METRICS:
        if plots.get(f"scatter_{metric}"):
            lines += [f"![{metric}: real vs pseudo]({plots[f'scatter_{metric}']})", ""]

    lines += ["## Ranking of the segmenters", ""]
    lines += [
        "Rank 1 = best (highest mean DSC, lowest mean HD); r_s = Spearman correlation of the ranking by "
        "the real metric with the ranking by the pseudo metric.",
        "",
    ]
    rows = []
    for metric, by_structure in summary["ranking"].items():
        for structure, by_phase in by_structure.items():
            rows.append([metric, structure, *(by_phase[p]["spearman"] for p in statistics.PHASES)])
    lines += _md_table(["metric", "structure", *(f"r_s {p}" for p in statistics.PHASES)], rows)
    for metric, by_structure in summary["ranking"].items():
        names = list(summary["per_segmenter"])
        names = [n for n in names if n != GROUND_TRUTH]
        header = ["segmenter"]
        for structure in by_structure:
            header += [f"{structure} real (rank)", f"{structure} pseudo (rank)"]
        rows = []
        for name in names:
            row = [name]
            for by_phase in by_structure.values():
                s = by_phase["all"]["segmenters"].get(name, {})
                digits = 3 if metric == "dice" else 1
                row += [
                    f"{_fmt(s.get('real_mean'), digits)} ({_fmt(s.get('real_rank'), 1)})",
                    f"{_fmt(s.get('pseudo_mean'), digits)} ({_fmt(s.get('pseudo_rank'), 1)})",
                ]
            rows.append(row)
        rows.append(["r_s", *[x for b in by_structure.values() for x in (_fmt(b["all"]["spearman"]), "")]])
        lines += [f"### {metric}, all phases", "", *_md_table(header, rows)]

    flags = summary["flags"]
    lines += ["## Flags", "", "Structure level, `ground_truth` left out.", ""]
    rows = []
    for name, title in (
        ("erroneous_vs_missing", "erroneous vs structure missing"),
        ("flagged_vs_failure", "suspicious or erroneous vs real failure"),
        ("review_vs_failure", "review mode (every failed check raises) vs real failure"),
    ):
        for key, pr in flags.get(name, {}).items():
            rows.append([title, key, pr["precision"], pr["recall"], pr["tp"], pr["fp"], pr["fn"], pr["n"]])
    lines += _md_table(["detector", "structure", "precision", "recall", "tp", "fp", "fn", "n"], rows)
    lines += ["False alarms on the ground-truth masks (flag suspicious or erroneous):", ""]
    lines += _md_table(
        ["structure", "rate", "flagged", "erroneous", "n"],
        ([k, v["rate"], v["flagged"], v["erroneous"], v["n"]] for k, v in flags["false_alarm"].items()),
    )

    lines += refined_markdown(summary)
    lines += families_markdown(summary)
    lines += ["## Risk-coverage", ""]
    lines += [
        "Confidence = pDSC (volume: mean pDSC of its structures); lower AURC is better; `optimal` orders by "
        "the real risk, `random` is the mean risk.",
        "",
    ]
    rows = []
    for scope, by_risk in summary["aurc"].items():
        for risk, a in by_risk.items():
            rows.append([scope, risk, a["aurc"], a["optimal"], a["random"], a["excess"], a["n"]])
    lines += _md_table(["scope", "risk", "AURC", "optimal", "random", "excess", "n"], rows)
    if plots.get("risk_coverage"):
        lines += [f"![risk-coverage]({plots['risk_coverage']})", ""]
    if plots.get("error"):
        lines += [f"Plots not written: {plots['error']}", ""]
    versions = summary.get("versions", {})
    if versions:
        lines += ["## Versions", "", ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(lines)


def write_cases(cases: pd.DataFrame, out_dir: Path | str) -> Path:
    """Write ``cases.csv`` (one row per volume and structure) to ``out_dir`` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cases.to_csv(out / "cases.csv", index=False)
    return out / "cases.csv"


def write_report(
    cases: pd.DataFrame,
    summary: Mapping[str, Any],
    out_dir: Path | str,
    *,
    plots: bool = True,
) -> dict[str, Path]:
    """Write ``cases.csv``, ``summary.json``, the PNG plots and ``report.md`` (linking them) to ``out_dir``.

    Args:
        cases: from ``evaluate_cases``.
        summary: from ``summarise`` (optionally extended with ``inputs``, ``pairing``, ``checkpoint``,
            ``checkpoint_sha256`` and ``versions`` as ``run_evaluation`` does).
        out_dir: created if needed; files of the same names are replaced.
        plots: draw the PNG plots (needs matplotlib; when it is missing the report says so).
    Returns: name -> path of every file written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {"cases": write_cases(cases, out)}
    (out / "summary.json").write_text(json.dumps(_jsonable(dict(summary)), indent=2, allow_nan=False) + "\n")
    written["summary"] = out / "summary.json"
    links: dict[str, str | None] = {}
    if plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            links["error"] = "matplotlib is not installed"
            log.warning("matplotlib is not installed: evaluation plots skipped")
        else:
            for metric in statistics.METRICS:
                name = f"scatter_{metric}"
                _plot_scatter(cases, metric, out / f"{name}.png")
                written[name], links[name] = out / f"{name}.png", f"{name}.png"
            thresholds = summary.get("thresholds", {})
            _plot_risk_coverage(
                cases,
                out / "risk_coverage.png",
                float(thresholds.get("failure_dice", statistics.FAILURE_DICE)),
                float(thresholds.get("failure_hd_mm", statistics.FAILURE_HD_MM)),
            )
            written["risk_coverage"], links["risk_coverage"] = out / "risk_coverage.png", "risk_coverage.png"
    (out / "report.md").write_text(_report_markdown(_jsonable(dict(summary)), links))
    written["report"] = out / "report.md"
    return written
