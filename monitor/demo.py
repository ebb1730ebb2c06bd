"""The demo: synthetic phantoms from graded simulated segmenters, scored with the shipped checkpoint.

Shows on a fresh machine, without any data, what the monitor does: for each simulated segmenter the
real Dice (known here because the phantoms are ground truth) next to the pseudo Dice the monitor
estimates without ground truth, and how many masks it flags.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.labels import STRUCTURES
from monitor.nifti import load_mask
from monitor.records import FlagLevel
from monitor.scoring import Scorer

__all__ = ["SegmenterSummary", "score_phantom_dataset"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmenterSummary:
    """How one simulated segmenter fared: real vs pseudo Dice and flag counts."""

    segmenter: str  #: simulated segmenter name
    volumes: int  #: masks scored
    real_dice: float  #: mean real Dice over structures and volumes (nan-aware)
    pseudo_dice: float  #: mean pDSC over structures and volumes (nan-aware)
    ok: int  #: volumes flagged ok
    suspicious: int  #: volumes flagged suspicious
    erroneous: int  #: volumes flagged erroneous
    missing_caught: str  #: "k/n": volumes with a really missing structure that were flagged erroneous


def score_phantom_dataset(root: Path, scorer: Scorer, batch: int = 8) -> list[SegmenterSummary]:
    """Score every ``predictions/<segmenter>/*.nii.gz`` under ``root`` and compare with its ``metrics.csv``."""
    summaries = []
    for folder in sorted(p for p in (root / "predictions").iterdir() if p.is_dir()):
        truth = pd.read_csv(folder / "metrics.csv", keep_default_na=True)
        files = sorted(folder.glob("*.nii.gz"))
        flags: dict[str, FlagLevel] = {}
        pdsc: list[float] = []
        for start in range(0, len(files), batch):
            chunk = files[start : start + batch]
            for path, result in zip(chunk, scorer.score_batch([load_mask(p) for p in chunk]), strict=True):
                flags[path.name] = result.score.flag
                pdsc += [s.pdsc for s in result.score.structures]
        real = truth[[f"dice_{s.value.lower()}" for s in STRUCTURES]].to_numpy(dtype=float).ravel()
        missing = truth[truth["pred_missing_structures"].fillna("").astype(str).str.len() > 0]["pred_file"]
        caught = sum(flags.get(name) == FlagLevel.ERRONEOUS for name in missing)
        counts = {level: sum(f == level for f in flags.values()) for level in FlagLevel}
        summaries.append(
            SegmenterSummary(
                segmenter=folder.name,
                volumes=len(files),
                real_dice=float(np.nanmean(real)) if real.size else math.nan,
                pseudo_dice=float(np.nanmean(pdsc)) if pdsc else math.nan,
                ok=counts[FlagLevel.OK],
                suspicious=counts[FlagLevel.SUSPICIOUS],
                erroneous=counts[FlagLevel.ERRONEOUS],
                missing_caught=f"{caught}/{len(missing)}",
            )
        )
    return summaries
