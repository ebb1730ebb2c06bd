"""``cmr-monitor calibrate``: re-calibrate eDSC/eHD on a site's own labelled cases.

Heavy imports (torch, scikit-learn) happen inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from monitor.cli.evaluate import parse_pred_specs
from monitor.cli.options import (
    CheckpointOption,
    DeviceOption,
    GroundTruthOption,
    LabelledLabelMapOption,
    RealizedDbOption,
    checked_realized_db,
)

__all__ = ["calibrate"]


def calibrate(
    gt: GroundTruthOption,
    pred: Annotated[
        list[str],
        typer.Option(help="NAME=DIR of a segmenter's predictions; repeat for several segmenters."),
    ],
    out: Annotated[
        Path, typer.Option(help="Output folder: calibration.skops (+ .sha256), report.json, report.md.")
    ],
    base: Annotated[
        Path | None,
        typer.Option(
            help="Calibration to stack on and compare with (env CMR_MONITOR_CALIBRATION; default: shipped)."
        ),
    ] = None,
    mode: Annotated[
        str,
        typer.Option(
            help="stack: a robust linear correction of the base estimates (few dozen volumes); refit: a "
            "new model from the site's cases alone; auto: refit from 300 volumes, else stack."
        ),
    ] = "auto",
    version: Annotated[
        str | None, typer.Option(help="Version of the new calibration (default: <base>+site-<UTC time>).")
    ] = None,
    folds: Annotated[int, typer.Option(min=2, help="Cross-validation folds by patient.")] = 5,
    checkpoint: CheckpointOption = None,
    label_map: LabelledLabelMapOption = None,
    device: DeviceOption = None,
    db: RealizedDbOption = None,
) -> None:
    """Fit a new calibration version on labelled cases; report it against the base, cross-validated."""
    from monitor.config import get_settings
    from monitor.evaluation.recalibrate import MODES, run_calibration
    from monitor.io.calibration import load_calibration
    from monitor.io.nifti import Limits
    from monitor.model.scorer import Scorer, calibration_from_setting
    from monitor.qc.labels import get_label_map

    if mode not in MODES:
        raise typer.BadParameter(f"expected one of {', '.join(MODES)}, got {mode!r}", param_hint="--mode")
    pred_dirs = parse_pred_specs(pred)
    db = checked_realized_db(db)
    settings = get_settings().with_overrides(
        checkpoint=checkpoint, label_map=label_map, device=device.value if device else None
    )
    base_calibration = (
        load_calibration(base) if base is not None else calibration_from_setting(settings.calibration)
    )
    if base_calibration is None:
        base_calibration = load_calibration(None)
    scorer = Scorer.from_settings(settings.with_overrides(calibration="none"))
    result = run_calibration(
        gt,
        pred_dirs,
        scorer,
        out,
        base=base_calibration,
        mode=mode,
        version=version,
        folds=folds,
        label_map=get_label_map(settings.label_map),
        limits=Limits.from_settings(settings),
        database_url=db,
    )
    report = result.report
    typer.echo(
        f"calibration {report['version']} ({report['mode']}, {report['volumes']} volumes, "
        f"{report['patients']} patients) -> {result.path}"
    )
    for name in ("base", "site_cv"):
        mae = report["mae_mean"][name]
        typer.echo(f"{name}: mean MAE eDSC {mae['edsc']:.3f}, eHD {mae['ehd_mm']:.1f} mm")
    if "realized_recorded" in report:
        typer.echo(f"realized metrics recorded for {report['realized_recorded']} scored files")
    typer.echo(f"report: {Path(out) / 'report.md'}")
