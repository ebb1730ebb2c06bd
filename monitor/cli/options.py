"""The options that several commands share, as ``Annotated`` types: one name, help text and type each.

A command declares ``checkpoint: CheckpointOption = None``; the option's name, help and check live here
once, so ``--help`` reads the same in every command. Options that ``Settings`` knows default to ``None``
and fall back to it (environment ``CMR_MONITOR_*``, see ``monitor.config``).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = [
    "DB_HELP",
    "ArtifactsOption",
    "CalibrationOption",
    "CheckpointOption",
    "DbOption",
    "Device",
    "DeviceAutoOption",
    "DeviceOption",
    "GroundTruthOption",
    "LabelMapOption",
    "LabelledLabelMapOption",
    "MigrateOption",
    "Precision",
    "PrecisionOption",
    "RealizedDbOption",
    "checked_realized_db",
    "database_url",
]


class Device(StrEnum):
    """Where the model runs: ``auto`` is CUDA when available, else the CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class Precision(StrEnum):
    """Model arithmetic when scoring (default fp32); ``auto`` is fp16 on CUDA and fp32 on the CPU."""

    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


DB_HELP = (
    "Database URL, e.g. sqlite:///cmr-monitor.db or postgresql://user@host/db. "
    "Default: the environment variable CMR_MONITOR_DATABASE_URL, else sqlite:///cmr-monitor.db."
)
_LABEL_MAP_HELP = "acdc, mnms or 'LV=a,MYO=b,RV=c' (env CMR_MONITOR_LABEL_MAP)."

#: ``--db``: the results database (``database_url`` resolves ``None``).
DbOption = Annotated[str | None, typer.Option("--db", help=DB_HELP, show_default=False)]
#: ``--db`` of ``evaluate`` and ``calibrate``: where to record realized metrics (no default database).
RealizedDbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Also record the real Dice/HD of the labelled predictions already scored in this database "
        "(found by content hash) for the dashboard's 'Estimated vs realized' page.",
        show_default=False,
    ),
]
#: ``--checkpoint``: the autoencoder checkpoint.
CheckpointOption = Annotated[
    Path | None,
    typer.Option(
        "--checkpoint", help="Autoencoder checkpoint (env CMR_MONITOR_CHECKPOINT; default: shipped)."
    ),
]
#: ``--label-map`` of the masks scored.
LabelMapOption = Annotated[str | None, typer.Option("--label-map", help=_LABEL_MAP_HELP)]
#: ``--label-map`` of ground truth and predictions (``evaluate``, ``calibrate``).
LabelledLabelMapOption = Annotated[
    str | None, typer.Option("--label-map", help=f"Labels of GT and predictions: {_LABEL_MAP_HELP}")
]
#: ``--device``, falling back to the settings.
DeviceOption = Annotated[
    Device | None, typer.Option("--device", help="auto, cpu or cuda (env CMR_MONITOR_DEVICE).")
]
#: ``--device`` of the commands that do not read it from the settings (``train``, ``demo``; default auto).
DeviceAutoOption = Annotated[Device, typer.Option("--device", help="auto, cpu or cuda.")]
#: ``--precision`` of scoring.
PrecisionOption = Annotated[
    Precision | None,
    typer.Option(
        "--precision",
        help="Model arithmetic (default fp32); auto = fp16 on CUDA, fp32 on CPU (env CMR_MONITOR_PRECISION).",
    ),
]
#: ``--calibration`` of eDSC/eHD.
CalibrationOption = Annotated[
    str | None,
    typer.Option(
        "--calibration",
        help="Calibration for eDSC/eHD: 'shipped', 'none' or a file from 'cmr-monitor calibrate' "
        "(env CMR_MONITOR_CALIBRATION; default: shipped).",
    ),
]
#: ``--artifacts``: where the commands that store scores write pGT and inconsistency maps.
ArtifactsOption = Annotated[
    Path | None,
    typer.Option("--artifacts", help="Where pGT and inconsistency maps go (env CMR_MONITOR_ARTIFACTS_DIR)."),
]
#: ``--migrate``: upgrade an old schema instead of refusing it.
MigrateOption = Annotated[
    bool,
    typer.Option("--migrate", help="Upgrade the database schema to head instead of refusing an old one."),
]
#: ``--gt``: a folder of ground-truth masks (``evaluate``, ``calibrate``; required).
GroundTruthOption = Annotated[
    Path,
    typer.Option(
        "--gt",
        help="Ground truth: ACDC layout (patientNNN/*_frameFF_gt.nii.gz + Info.cfg) or a folder of "
        "X.nii.gz / X_gt.nii.gz.",
        exists=True,
        file_okay=False,
        dir_okay=True,
    ),
]


def database_url(db: str | None) -> str:
    """``--db`` when given, else the configured ``database_url``."""
    if db:
        return db
    from monitor.config import get_settings

    return get_settings().database_url


def checked_realized_db(db: str | None) -> str | None:
    """``RealizedDbOption``, checked before the long scoring: the database answers and its schema is at
    head; else the error is printed and the command exits with status 1."""
    if db is None:
        return None
    from monitor.cli.exits import fail
    from monitor.errors import StoreError
    from monitor.store import check_at_head

    try:
        check_at_head(db)
    except StoreError as exc:
        fail(exc)
    return db
