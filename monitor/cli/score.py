"""``cmr-monitor score``: score masks once, without ground truth, as a table, CSV or JSON."""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor.cli.options import (
    CalibrationOption,
    CheckpointOption,
    DeviceOption,
    LabelMapOption,
    PrecisionOption,
)

if TYPE_CHECKING:
    from monitor.qc.records import VolumeScore

__all__ = ["FAILURE_COLUMN", "FailOn", "OutputFormat", "estimate_columns", "score"]

#: The failure model's column, after the estimates: ``p_failure_<S>``, P(real Dice < 0.5 or HD > 50 mm).
FAILURE_COLUMN = "p_failure"

console = Console()


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class FailOn(StrEnum):
    never = "never"
    suspicious = "suspicious"
    erroneous = "erroneous"


def estimate_columns(score: VolumeScore) -> dict[str, object]:
    """``edsc_<S>``, ``edsc_lo_<S>``, ``edsc_hi_<S>``, ``ehd_mm_<S>``, ``ehd_mm_lo_<S>``, ``ehd_mm_hi_<S>``,
    ``p_failure_<S>`` (0-1) and ``calibration_version``; None where a structure has no estimate (missing,
    or no calibration), and ``p_failure_<S>`` also where the calibration has no failure model for the
    policy's thresholds. The estimates come after the other columns of ``--format csv/json``."""
    from monitor.qc.records import ESTIMATE_FIELDS

    row: dict[str, object] = {}
    for name in ESTIMATE_FIELDS:
        for s in score.structures:
            estimate = s.edsc if name.startswith("edsc") else s.ehd_mm
            value = None
            if estimate is not None:
                value = (
                    estimate.lo
                    if name.endswith("_lo")
                    else estimate.hi
                    if name.endswith("_hi")
                    else estimate.value
                )
                value = round(value, 4 if name.startswith("edsc") else 2)
            row[f"{name}_{s.structure.value}"] = value
    for s in score.structures:
        p = s.p_failure
        row[f"{FAILURE_COLUMN}_{s.structure.value}"] = (
            round(p, 4) if p is not None and math.isfinite(p) else None
        )
    row["calibration_version"] = score.calibration_version
    return row


def _mask_files(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(file, root it was found under) for files and folders; folders are searched recursively.

    A folder without masks is named on stderr; none at all is an error (exit 1).
    """
    from monitor.io.layouts import nifti_files

    found: list[tuple[Path, Path]] = []
    empty: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = nifti_files(path)
            found.extend((item, path) for item in inside)
            if not inside:
                empty.append(path)
        elif path.exists():
            found.append((path, path.parent))
        else:
            raise typer.BadParameter(f"no such file or folder: {path}", param_hint="PATHS")
    if not found:
        typer.echo(f"error: no masks found in {', '.join(map(str, paths))} {_LOOKED_FOR}", err=True)
        raise typer.Exit(1)
    for path in empty:
        typer.echo(f"warning: no masks found in {path} {_LOOKED_FOR}", err=True)
    return found


_LOOKED_FOR = "(.nii or .nii.gz files; folders are searched recursively, hidden names skipped)"


def _shown_paths(files: list[tuple[Path, Path]]) -> dict[str, str]:
    """Full path -> the path shown in the table: relative to the folder it was found in, prefixed by
    that folder as given when there are several (the CSV and JSON keep full paths)."""
    roots = {root for _, root in files}
    shown: dict[str, str] = {}
    for path, root in files:
        relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
        shown[str(path)] = str(relative if len(roots) == 1 else root / relative)
    return shown


class _Progress:
    """A progress bar of the files scored, on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        self._bar = None
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("scoring"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task("scoring", total=total)
            self._bar.start()

    def advance(self, n: int) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def score(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="Mask files (.nii/.nii.gz) or folders (searched recursively).", metavar="PATHS..."
        ),
    ],
    checkpoint: CheckpointOption = None,
    out: Annotated[
        Path | None, typer.Option(help="Write pGT and inconsistency maps (NIfTI) and scores.csv/json here.")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output on stdout.")] = OutputFormat.table,
    label_map: LabelMapOption = None,
    device: DeviceOption = None,
    precision: PrecisionOption = None,
    batch: Annotated[int, typer.Option(help="Volumes scored together.")] = 8,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 3 when any mask is flagged at this level or worse (for pipelines).")
    ] = FailOn.never,
    calibration: CalibrationOption = None,
    patients: Annotated[
        Path | None,
        typer.Option(
            help="Write the per-patient table (ED + ES paired by case key and phase: volumes, EF, LV mass, "
            "estimated errors) to this CSV; with --out it is also written as patients.csv."
        ),
    ] = None,
    clinical_calibration: Annotated[
        Path | None,
        typer.Option(
            help="Clinical error calibration (env CMR_MONITOR_CLINICAL_CALIBRATION; default: shipped)."
        ),
    ] = None,
) -> None:
    """Score masks once, without ground truth: pDSC, pHD (mm), their 3D-refined values, flags and reason
    codes per structure; each mask's MR image is used as evidence when it is found (sidecar ``image``,
    ACDC frame beside its GT, nnU-Net ``imagesTs``) and its geometry matches. Per patient (ED and ES of
    one case): LV/RV volumes, EF and LV mass with their estimated errors (--patients)."""
    from monitor.cli.clinical import PatientCollector
    from monitor.cli.rows import rejected_row, scored_row
    from monitor.config import get_settings
    from monitor.errors import InvalidMask
    from monitor.io.identity import SidecarError, sidecar_image
    from monitor.io.images import pair_image
    from monitor.io.layouts import mask_stem
    from monitor.io.nifti import Limits, load_mask, save_labels
    from monitor.model.scorer import Scorer
    from monitor.qc.labels import get_label_map
    from monitor.qc.levels import FlagLevel

    settings = get_settings().with_overrides(
        checkpoint=checkpoint,
        label_map=label_map,
        device=device.value if device else None,
        precision=precision.value if precision else None,
        calibration=calibration,
        clinical_calibration=clinical_calibration,
    )
    files = _mask_files(paths)  # before the model loads, so that a wrong path fails at once
    lmap = get_label_map(settings.label_map)
    limits = Limits.from_settings(settings)
    scorer = Scorer.from_settings(settings)
    collector = PatientCollector.from_settings(settings)
    rows: list[dict[str, object]] = []
    progress = _Progress(len(files))
    for start in range(0, len(files), max(1, batch)):
        chunk = files[start : start + batch]
        volumes, owners, images = [], [], []
        for path, root in chunk:
            try:
                volume = load_mask(path, lmap, limits)
                sidecar = sidecar_image(path)
            except InvalidMask as exc:
                rows.append(rejected_row(path, exc.reason, exc.detail))
                continue
            except SidecarError as exc:
                rows.append(rejected_row(path, "bad_sidecar", exc.detail))
                continue
            volumes.append(volume)
            owners.append((path, root))
            images.append(
                pair_image(
                    volume,
                    image_path=sidecar,
                    limits=limits,
                    enabled=settings.image_evidence and settings.evidence,
                )
            )
        scored = scorer.score_batch(volumes, images=[image.data for image in images])
        for (path, root), volume, image, result in zip(owners, volumes, images, scored, strict=True):
            row = scored_row(path, result.score, image.pairing, scorer.policy)
            collector.add(path, root, volume.labels, result)
            if out is not None:
                relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
                target = out / relative.parent
                pgt_path = save_labels(
                    target / f"{mask_stem(path.name)}_pgt.nii.gz", result.pgt, volume.affine, lmap
                )
                xor_path = save_labels(
                    target / f"{mask_stem(path.name)}_inconsistency.nii.gz",
                    result.inconsistency,
                    volume.affine,
                )
                row["pgt_file"], row["inconsistency_file"] = str(pgt_path), str(xor_path)
            row.update(estimate_columns(result.score))
            rows.append(row)
        progress.advance(len(chunk))
    progress.close()
    _emit(rows, fmt, out, _shown_paths(files))
    collector.emit(
        collector.rows(), csv_path=patients, out=out, table=fmt == OutputFormat.table, console=console
    )
    worst = max((FlagLevel(str(r["flag"])).severity for r in rows if r.get("flag")), default=0)
    if fail_on != FailOn.never and worst >= FlagLevel(fail_on.value).severity:
        raise typer.Exit(3)


def _emit(rows: list[dict[str, object]], fmt: OutputFormat, out: Path | None, shown: dict[str, str]) -> None:
    import pandas as pd
    from rich import box
    from rich.markup import escape

    from monitor.cli.rows import TABLE_HEADER, output_columns, table_cells

    frame = pd.DataFrame(rows, columns=output_columns(rows))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "scores.csv", index=False)
        (out / "scores.json").write_text(json.dumps(rows, indent=2, default=str))
    if fmt == OutputFormat.csv:
        sys.stdout.write(frame.to_csv(index=False))
    elif fmt == OutputFormat.json:
        sys.stdout.write(json.dumps(rows, indent=2, default=str) + "\n")
    else:
        colour = {"ok": "green", "suspicious": "yellow", "erroneous": "red", "": "magenta"}
        names = [shown.get(str(r["file"]), str(r["file"])) for r in rows]
        table = Table(title=f"{len(rows)} masks", box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column("file", overflow="fold", min_width=min(32, max(map(len, names), default=4)))
        table.add_column("flag", no_wrap=True)
        for name in TABLE_HEADER:
            if name in ("image", "reasons"):
                table.add_column(name, overflow="fold", min_width=24 if name == "reasons" else 8)
            else:  # "LV pDSC" over two lines: narrow number columns leave the reasons room
                table.add_column(name.replace(" ", "\n", 1), justify="right", no_wrap=True)
        for name, r in zip(names, rows, strict=True):
            flag = str(r.get("flag") or "rejected")
            cells = [escape(name), f"[{colour.get(str(r.get('flag', '')), 'white')}]{flag}[/]"]
            table.add_row(*cells, *(escape(cell) for cell in table_cells(r)))
        console.print(table)
        counts: dict[str, int] = {}
        for r in rows:
            key = str(r.get("flag") or "rejected")
            counts[key] = counts.get(key, 0) + 1
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
