"""``cmr-monitor train``: train the autoencoder on ground-truth masks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from monitor.cli.options import Device, DeviceAutoOption

__all__ = ["train"]

console = Console()


def train(
    data: Annotated[Path, typer.Argument(help="Ground-truth masks: ACDC layout or a plain folder.")],
    out: Annotated[
        Path, typer.Option(help="Best checkpoint (.pt); <out>.last.pt and <out>.log.csv go beside it.")
    ],
    epochs: Annotated[int, typer.Option(help="Epochs.")] = 500,
    batch_size: Annotated[int, typer.Option(help="Slices per step.")] = 8,
    device: DeviceAutoOption = Device.auto,
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
    from monitor.model.training import TrainConfig
    from monitor.model.training import train as run_training

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
