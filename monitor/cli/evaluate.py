"""``cmr-monitor evaluate``: pseudo vs real metrics of segmenters with ground truth, as a report.

Heavy imports (torch, pandas, matplotlib) happen inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.options import (
    CheckpointOption,
    DeviceOption,
    GroundTruthOption,
    LabelledLabelMapOption,
    RealizedDbOption,
    checked_realized_db,
)

__all__ = ["evaluate", "parse_pred_specs"]


def parse_pred_specs(specs: list[str]) -> dict[str, Path]:
    """``NAME=DIR`` options -> {name: folder}.

    Raises: typer.BadParameter (exit 2) for a malformed spec, a duplicate or reserved name, or a folder
        that does not exist.
    """
    from monitor.evaluation import GROUND_TRUTH

    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, folder = spec.partition("=")
        name = name.strip()
        if not sep or not name or not folder:
            raise typer.BadParameter(f"expected NAME=DIR, got {spec!r}", param_hint="--pred")
        if name == GROUND_TRUTH:
            raise typer.BadParameter(f"the name {GROUND_TRUTH!r} is reserved", param_hint="--pred")
        if name in out:
            raise typer.BadParameter(f"segmenter {name!r} given twice", param_hint="--pred")
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise typer.BadParameter(f"prediction folder of {name!r} not found: {path}", param_hint="--pred")
        out[name] = path
    return out


def evaluate(
    gt: GroundTruthOption,
    out: Annotated[Path, typer.Option(help="Report folder: report.md, cases.csv, summary.json, PNG plots.")],
    pred: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=DIR of a segmenter's predictions (patientNNN_ED.nii.gz ... or X.nii.gz); repeat "
            "for several segmenters."
        ),
    ] = None,
    families: Annotated[
        Path | None,
        typer.Option(
            help="A failure set's manifest (families.json from bench/failure_set.py): each family and "
            "strength is evaluated as a segmenter and the report gets a per-family table.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    checkpoint: CheckpointOption = None,
    label_map: LabelledLabelMapOption = None,
    device: DeviceOption = None,
    batch: Annotated[int, typer.Option(min=1, help="Volumes per scoring batch.")] = 8,
    ground_truth: Annotated[
        bool,
        typer.Option(
            "--ground-truth/--no-ground-truth",
            help="Also score the ground-truth masks (pseudo-segmenter 'ground_truth') for the false-alarm rate.",
        ),
    ] = True,
    plots: Annotated[
        bool, typer.Option("--plots/--no-plots", help="Draw the PNG plots (matplotlib).")
    ] = True,
    images: Annotated[
        bool,
        typer.Option(
            "--images/--no-images",
            help="Pair the MR image beside each ground truth (ACDC patientNNN_frameFF.nii.gz) and use it "
            "as evidence.",
        ),
    ] = True,
    db: RealizedDbOption = None,
) -> None:
    """Compare pseudo metrics (pDSC, pHD, flags) with real ones against ground truth; write a report."""
    from monitor.config import get_settings
    from monitor.evaluation import read_manifest, run_evaluation
    from monitor.io.clinical import calibration_from_settings
    from monitor.io.nifti import Limits
    from monitor.model.scorer import Scorer
    from monitor.qc.clinical import ClinicalPolicy
    from monitor.qc.labels import get_label_map

    if not pred and families is None:
        raise typer.BadParameter(
            "give at least one --pred NAME=DIR or a --families manifest", param_hint="--pred"
        )
    pred_dirs = parse_pred_specs(pred or [])
    try:
        sets = read_manifest(families) if families is not None else ()
    except (FileNotFoundError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--families") from exc
    clash = sorted(set(pred_dirs) & {s.name for s in sets})
    if clash:
        raise typer.BadParameter(
            f"segmenter names also used by the failure set: {clash}", param_hint="--pred"
        )
    db = checked_realized_db(db)
    settings = get_settings().with_overrides(
        checkpoint=checkpoint, label_map=label_map, device=device.value if device else None
    )
    scorer = Scorer.from_settings(settings)
    summary = run_evaluation(
        gt,
        pred_dirs,
        scorer,
        out,
        label_map=get_label_map(settings.label_map),
        batch_volumes=batch,
        include_ground_truth=ground_truth,
        plots=plots,
        limits=Limits.from_settings(settings),
        families=sets,
        images=images,
        clinical_calibration=calibration_from_settings(settings),
        clinical_policy=ClinicalPolicy(lvef_error_limit_pct=settings.lvef_error_limit_pct)
        if settings.clinical
        else None,
        database_url=db,
    )
    _print_summary(summary, out)


def _print_summary(summary: dict, out: Path) -> None:
    import math

    def fmt(value: float) -> str:
        return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"

    pairing = summary["pairing"]
    for item in pairing["unpaired"]:
        typer.echo(f"no ground truth for {item['segmenter']}: {item['path']} (not evaluated)", err=True)
    for item in pairing["skipped"]:
        typer.echo(
            f"skipped {item['segmenter']}: {item['path']} ({item['reason']}: {item['detail']})", err=True
        )
    sets = set(summary["inputs"].get("families", []))
    for name, count in pairing["missing_predictions"].items():
        if count and name not in sets:
            typer.echo(f"{name}: {count} ground-truth volumes have no prediction", err=True)
    edits = sum(pairing["missing_predictions"].get(name, 0) for name in sets)
    if edits:
        # a failure set covers a subset of the ground truth, and an edit is not made where it cannot be
        typer.echo(f"failure sets: {edits} (set, ground truth) pairs without an edited mask", err=True)
    typer.echo(
        f"{summary['n_volumes']} volumes of {len(summary['segmenters'])} segmenters evaluated"
        f" ({len(pairing['unpaired'])} predictions without ground truth, {len(pairing['skipped'])} skipped)"
    )
    for metric, title in (("dice", "DSC vs pDSC"), ("hd_mm", "HD vs pHD")):
        by_structure = summary["correlation"][metric]
        ranking = summary["ranking"][metric]
        cells = ", ".join(
            f"{s} r={fmt(by_structure[s]['all']['pearson'])} r_s(rank)={fmt(ranking[s]['all']['spearman'])}"
            for s in by_structure
        )
        typer.echo(f"{title}: {cells}")
    estimates = summary.get("estimates", {})
    if estimates.get("calibrated"):
        for metric, title in (("edsc", "DSC vs eDSC"), ("ehd_mm", "HD vs eHD")):
            cells = ", ".join(
                f"{s} r={fmt(estimates[s][metric]['r'])} MAE={fmt(estimates[s][metric]['mae'])} "
                f"coverage={fmt(estimates[s][metric]['coverage'])}"
                for s in ("LV", "RV", "MYO")
                if s in estimates
            )
            typer.echo(f"{title} ({summary.get('calibration_version')}): {cells}")
    flags = summary["flags"]
    missing, failing = flags["erroneous_vs_missing"]["all"], flags["flagged_vs_failure"]["all"]
    typer.echo(
        f"missing structures caught: {missing['tp']} of {missing['tp'] + missing['fn']} "
        f"({missing['fp']} false alarms); failures flagged: precision {fmt(failing['precision'])}, "
        f"recall {fmt(failing['recall'])}"
    )
    alarm = flags["false_alarm"]["volume_any"]
    if alarm["n"]:
        typer.echo(f"ground-truth volumes flagged: {alarm['flagged']} of {alarm['n']}")
    volume = summary.get("volume_failure")
    if volume:
        plain, refined = volume["plain"], volume["refined"]
        typer.echo(
            f"failed volumes flagged: plain precision {fmt(plain['precision'])} recall {fmt(plain['recall'])}, "
            f"refined precision {fmt(refined['precision'])} recall {fmt(refined['recall'])}"
        )
    table = summary.get("families")
    if table:
        for name, item in table["sets"].items():
            mark = " *" if item["clearly_wrong"] else ""
            typer.echo(
                f"family {name}{mark}: {item['flagged']} of {item['n_volumes']} flagged "
                f"(plain {item['flagged_plain']})"
            )
        cw = table["clearly_wrong"]
        typer.echo(
            f"clearly wrong flagged: {cw['flagged']} of {cw['n_volumes']} ({fmt(cw['flagged_rate'])}); "
            f"below {cw['aim']:g}: {', '.join(cw['sets_below_aim']) or 'none'}"
        )
    clinical = summary.get("clinical")
    if clinical and clinical.get("n_patients"):
        lvef = clinical["lv_ef"]
        typer.echo(
            f"clinical ({clinical['n_patients']} patients): |LVEF error| real vs estimated r={fmt(lvef['pearson_abs_error'])}, "
            f"MAE {fmt(lvef['mae'])} points, 90% coverage {fmt(lvef['coverage'])}; LVEF flag precision "
            f"{fmt(lvef['flag_precision'])}, recall {fmt(lvef['flag_recall'])} (real error > {clinical['limit_pct']:g} points)"
        )
    realized = summary.get("realized")
    if realized is not None:
        typer.echo(
            f"realized metrics recorded for {realized['recorded']} scored files "
            f"({realized['not_in_database']} evaluated predictions not in the database)"
        )
    typer.echo(f"report: {out / 'report.md'}")
