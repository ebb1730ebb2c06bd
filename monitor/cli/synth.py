"""``cmr-monitor synth``: write synthetic phantoms and simulated segmentations with their real metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["synth"]

console = Console()


def synth(
    out: Annotated[
        Path, typer.Argument(help="Output folder (ACDC-layout gt/ and predictions/<segmenter>/).")
    ],
    patients: Annotated[int, typer.Option(help="Number of synthetic patients.")] = 10,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Write synthetic cardiac phantoms and graded simulated segmentations with their real DSC/HD."""
    from monitor.sim.dataset import write_dataset

    summary = write_dataset(out, patients=patients, seed=seed)
    console.print(summary)
