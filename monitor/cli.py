"""``cmr-monitor`` command line: train, score, synth; watch, demo, db, status, export, evaluate, dashboard.

Each command parses options and calls a library function; heavy imports (torch) happen inside the
commands so that ``--help`` stays fast. Errors print their cause chain and exit 1; usage errors exit 2.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from monitor import __version__
from monitor.cli_options import Device, Precision
from monitor.errors import MonitorError

__all__ = ["app", "main"]

app = typer.Typer(
    name="cmr-monitor",
    help="Ground-truth-free quality control of cardiac MRI segmentation masks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


class FailOn(StrEnum):
    never = "never"
    suspicious = "suspicious"
    erroneous = "erroneous"


def _version(value: bool) -> None:
    if value:
        console.print(f"cmr-monitor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG level.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:  # Alembic announces every plugin and migration step at INFO
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _mask_files(paths: list[Path]) -> list[tuple[Path, Path]]:
    """(file, root it was found under) for files and folders; folders are searched recursively."""
    found: list[tuple[Path, Path]] = []
    for path in paths:
        if path.is_dir():
            for item in sorted([*path.rglob("*.nii.gz"), *path.rglob("*.nii")]):
                if not any(part.startswith(".") for part in item.relative_to(path).parts):
                    found.append((item, path))
        elif path.exists():
            found.append((path, path.parent))
        else:
            raise typer.BadParameter(f"no such file or folder: {path}")
    return found


def _stem(path: Path) -> str:
    return path.name.removesuffix(".gz").removesuffix(".nii")


@app.command()
def score(
    paths: Annotated[
        list[Path], typer.Argument(help="Mask files (.nii/.nii.gz) or folders (searched recursively).")
    ],
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Autoencoder checkpoint [env CMR_MONITOR_CHECKPOINT; default: shipped]."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write pGT and inconsistency maps (NIfTI) and scores.csv/json here.")
    ] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", help="Output on stdout.")] = OutputFormat.table,
    label_map: Annotated[
        str | None, typer.Option(help="acdc, mnms or 'LV=a,MYO=b,RV=c' [env CMR_MONITOR_LABEL_MAP].")
    ] = None,
    device: Annotated[Device | None, typer.Option(help="auto, cpu or cuda [env CMR_MONITOR_DEVICE].")] = None,
    precision: Annotated[
        Precision | None,
        typer.Option(
            help="Model arithmetic (default fp32); auto = fp16 on CUDA, fp32 on CPU [env CMR_MONITOR_PRECISION]."
        ),
    ] = None,
    batch: Annotated[int, typer.Option(help="Volumes scored together.")] = 8,
    fail_on: Annotated[
        FailOn, typer.Option(help="Exit 3 when any mask is flagged at this level or worse (for pipelines).")
    ] = FailOn.never,
) -> None:
    """Score masks once, without ground truth: pDSC, pHD (mm) and flags per structure."""
    from monitor.config import get_settings
    from monitor.errors import InvalidMask
    from monitor.labels import get_label_map
    from monitor.nifti import Limits, load_mask, save_labels
    from monitor.records import FlagLevel
    from monitor.scoring import Scorer

    settings = get_settings().with_overrides(
        checkpoint=checkpoint,
        label_map=label_map,
        device=device.value if device else None,
        precision=precision.value if precision else None,
    )
    lmap = get_label_map(settings.label_map)
    limits = Limits.from_settings(settings)
    scorer = Scorer.from_settings(settings)
    files = _mask_files(paths)
    rows: list[dict[str, object]] = []
    for start in range(0, len(files), max(1, batch)):
        chunk = files[start : start + batch]
        volumes, owners = [], []
        for path, root in chunk:
            try:
                volumes.append(load_mask(path, lmap, limits))
                owners.append((path, root))
            except InvalidMask as exc:
                rows.append(
                    {
                        "file": str(path),
                        "status": "rejected",
                        "flag": "",
                        "reason": exc.reason,
                        "detail": exc.detail,
                    }
                )
        for (path, root), result in zip(owners, scorer.score_batch(volumes), strict=True):
            row: dict[str, object] = {"file": str(path), "status": "scored", "flag": result.score.flag.value}
            for s in result.score.structures:
                row[f"pdsc_{s.structure.value}"] = round(s.pdsc, 4) if not math.isnan(s.pdsc) else None
                row[f"phd_mm_{s.structure.value}"] = round(s.phd_mm, 2) if not math.isnan(s.phd_mm) else None
                row[f"flag_{s.structure.value}"] = s.flag.value
            row["reasons"] = "; ".join(result.score.reasons)
            if out is not None:
                relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
                target = out / relative.parent
                volume = next(v for v in volumes if v.path == path)
                pgt_path = save_labels(target / f"{_stem(path)}_pgt.nii.gz", result.pgt, volume.affine, lmap)
                xor_path = save_labels(
                    target / f"{_stem(path)}_inconsistency.nii.gz", result.inconsistency, volume.affine
                )
                row["pgt_file"], row["inconsistency_file"] = str(pgt_path), str(xor_path)
            rows.append(row)
    _emit(rows, fmt, out)
    worst = max((FlagLevel(str(r["flag"])).severity for r in rows if r.get("flag")), default=0)
    if fail_on != FailOn.never and worst >= FlagLevel(fail_on.value).severity:
        raise typer.Exit(3)


def _emit(rows: list[dict[str, object]], fmt: OutputFormat, out: Path | None) -> None:
    import pandas as pd

    frame = pd.DataFrame(rows)
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
        table = Table(title=f"{len(rows)} masks", show_lines=False)
        table.add_column("file", overflow="fold")
        table.add_column("flag")
        for s in ("LV", "RV", "MYO"):
            table.add_column(f"{s} pDSC", justify="right")
            table.add_column(f"{s} pHD mm", justify="right")
        table.add_column("reasons", overflow="fold")
        for r in rows:
            flag = str(r.get("flag") or "rejected")
            cells = [str(r["file"]), f"[{colour.get(str(r.get('flag', '')), 'white')}]{flag}[/]"]
            for s in ("LV", "RV", "MYO"):
                d, h = r.get(f"pdsc_{s}"), r.get(f"phd_mm_{s}")
                cells += ["-" if d is None else f"{d:.3f}", "-" if h is None else f"{h:.1f}"]
            cells.append(str(r.get("reasons") or r.get("detail") or ""))
            table.add_row(*cells)
        console.print(table)
        counts: dict[str, int] = {}
        for r in rows:
            key = str(r.get("flag") or "rejected")
            counts[key] = counts.get(key, 0) + 1
        console.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))


@app.command()
def train(
    data: Annotated[Path, typer.Argument(help="Ground-truth masks: ACDC layout or a plain folder.")],
    out: Annotated[
        Path, typer.Option(help="Best checkpoint (.pt); <out>.last.pt and <out>.log.csv go beside it.")
    ],
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 500,
    batch_size: Annotated[int, typer.Option(help="Slices per step.")] = 8,
    device: Annotated[Device, typer.Option(help="auto, cpu or cuda.")] = Device.auto,
    precision: Annotated[
        str, typer.Option(help="auto (bf16 where the hardware is fast at it), fp32 or bf16.")
    ] = "auto",
    dropout: Annotated[float, typer.Option(help="Dropout probability in hidden layers.")] = 0.5,
    seed: Annotated[int, typer.Option(help="Seed of the patient split, initialisation and batches.")] = 0,
    label_map: Annotated[str, typer.Option(help="Label map of the training masks.")] = "acdc",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from <out>.last.pt.")] = False,
    max_hours: Annotated[float | None, typer.Option(help="Stop (resumably) after this many hours.")] = None,
) -> None:
    """Train the autoencoder on ground-truth masks."""
    from monitor.training import TrainConfig
    from monitor.training import train as run_training

    command = " ".join(["cmr-monitor", *sys.argv[1:]])
    meta = run_training(
        TrainConfig(
            data_dir=data,
            out=out,
            epochs=epochs,
            batch_size=batch_size,
            device=device.value,
            precision=precision,
            dropout=dropout,
            seed=seed,
            label_map=label_map,
            threads=threads,
            resume=resume,
            max_hours=max_hours,
            extra={"command": command},
        )
    )
    dice_text = ", ".join(f"{k} {v:.3f}" for k, v in meta.val_dice.items())
    console.print(
        f"best epoch {meta.best_epoch + 1}: validation loss {meta.best_val_loss:.4f}; Dice {dice_text}"
    )
    console.print(f"checkpoint: {out}")


@app.command()
def synth(
    out: Annotated[
        Path, typer.Argument(help="Output folder (ACDC-layout gt/ and predictions/<segmenter>/).")
    ],
    patients: Annotated[int, typer.Option(help="Number of synthetic patients.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write synthetic cardiac phantoms and graded simulated segmentations with their real DSC/HD."""
    from monitor.synthetic import write_dataset

    summary = write_dataset(out, patients=patients, seed=seed)
    console.print(summary)


def _register_subcommands() -> None:
    """Commands that live in their own modules: watch/demo, db/status/export, evaluate, dashboard."""
    import importlib

    for name in ("monitor.cli_watch", "monitor.cli_db", "monitor.cli_evaluate", "monitor.cli_dashboard"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # pragma: no cover - only while a module is being written
            if exc.name != name:
                raise
            continue
        module.register(app)


_register_subcommands()


def main() -> None:
    """Console entry point: run the app, print the cause chain of errors and exit 1."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.UsageError):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        chain, cause = [], exc
        while cause is not None:
            chain.append(f"{type(cause).__name__}: {cause}")
            cause = cause.__cause__ or cause.__context__
        err_console.print("[red]error:[/] " + "\n  caused by: ".join(chain))
        if isinstance(exc, MonitorError | OSError | ValueError | RuntimeError):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
