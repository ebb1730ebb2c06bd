"""The scoring stage: a Ray actor holding one ``Scorer`` scores the valid files of each batch together.

``ScoreWorker`` is the class handed to ``map_batches`` (an actor pool; one checkpoint load per actor,
on a GPU when the actor was given one). Rows whose ``outcome`` is not ``score`` pass through. On
out-of-memory a batch is split in halves; an error scoring several files is isolated by scoring them one
by one, and the file that fails is rejected ``scoring_failed``, as in the daemon's worker. Each volume
is scored with the MR image the decode stage paired it with (``Scorer.score_batch(..., images=...)``, as
the daemon's worker does). Scored rows leave with a ``payload`` of (``VolumeScore``, staged artifacts,
``ImagePairing``): each actor writes the file's pGT and
inconsistency map with the daemon's ``ArtifactsFolder`` into the run's staging folder, named by the
row's ``seq`` (the file id is not known yet); the driver renames them under the file id when it stores
the row (``monitor.backfill.writer``). So the arrays never travel and the gzip work runs in parallel.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitor.backfill.decode import OUTCOME_REJECTED, OUTCOME_SCORE, pack, unpack
from monitor.config import Settings
from monitor.daemon.artifacts import ArtifactsFolder
from monitor.daemon.rejection import REASON_SCORING_FAILED
from monitor.daemon.retry import free_device_memory, out_of_memory_errors
from monitor.io.images import PairedImage
from monitor.io.nifti import MaskVolume
from monitor.qc.labels import ACDC, LabelMap

__all__ = ["ScoreWorker", "ScorerOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScorerOptions:
    """How each actor builds its ``Scorer`` (``monitor.model.Scorer``'s arguments)."""

    checkpoint: str | None = None  #: checkpoint file; None = the shipped one
    device: str = "auto"  #: auto, cpu or cuda
    threads: int | None = None  #: torch CPU threads per actor; None = torch's default
    precision: str = "fp32"  #: fp32, bf16, fp16 or auto
    batch_slices: int | None = None  #: most slices per forward pass; None = the Scorer's default
    staging: str | None = None  #: the run's artifacts staging folder; None writes no artifacts
    settings: Settings | None = None  #: when given, the scorer is ``Scorer.from_settings`` (policy,
    #: evidence, calibration as the daemon's) with the device, threads and precision above
    label_map: LabelMap = ACDC  #: label values the pGT is written in (the masks' own)


class ScoreWorker:
    """One scorer per actor; ``__call__`` scores a batch of decoded rows (a pandas DataFrame)."""

    def __init__(self, options: ScorerOptions) -> None:
        from prometheus_client import CollectorRegistry

        from monitor.model.scorer import Scorer
        from monitor.telemetry import build_metrics

        if options.settings is not None:
            self._scorer = Scorer.from_settings(
                options.settings.with_overrides(
                    device=options.device, torch_threads=options.threads, precision=options.precision
                )
            )
        else:
            self._scorer = Scorer(
                options.checkpoint,
                device=options.device,
                threads=options.threads,
                precision=options.precision,
                batch_slices=options.batch_slices,
            )
        self._artifacts = (
            ArtifactsFolder(
                Path(options.staging), metrics=build_metrics(CollectorRegistry()), label_map=options.label_map
            )
            if options.staging is not None
            else None
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch.reset_index(drop=True)
        payload: list[bytes | None] = [None] * len(batch)
        outcome, reason, detail = list(batch["outcome"]), list(batch["reason"]), list(batch["detail"])
        todo = [i for i in range(len(batch)) if outcome[i] == OUTCOME_SCORE]
        decoded: dict[int, tuple[MaskVolume, PairedImage]] = {i: unpack(batch["payload"][i]) for i in todo}
        volumes = {i: volume for i, (volume, _) in decoded.items()}
        images = {i: paired.data for i, (_, paired) in decoded.items()}
        for i, result in self._score(todo, volumes, images):
            if isinstance(result, str):
                outcome[i], reason[i], detail[i] = OUTCOME_REJECTED, REASON_SCORING_FAILED, result
            else:
                staged = {}
                if self._artifacts is not None:  # {} when the write failed (logged there)
                    staged = self._artifacts.write(int(batch["seq"][i]), volumes[i], result)
                payload[i] = pack((result.score, staged, decoded[i][1].pairing))
        out = batch.copy()
        out["outcome"], out["reason"], out["detail"], out["payload"] = outcome, reason, detail, payload
        return out

    def _score(
        self, todo: Sequence[int], volumes: dict[int, MaskVolume], images: dict[int, np.ndarray | None]
    ) -> list[tuple[int, Any]]:
        """(row, ScoredVolume or the failure's text) for each row of ``todo``."""
        if not todo:
            return []
        try:
            results = self._scorer.score_batch([volumes[i] for i in todo], images=[images[i] for i in todo])
        except out_of_memory_errors():
            free_device_memory()
            if len(todo) == 1:
                return [(todo[0], "out of memory on this mask alone")]
            half = len(todo) // 2
            log.warning("out of memory; splitting a batch of %d", len(todo), extra={"action": "oom_split"})
            return self._score(todo[:half], volumes, images) + self._score(todo[half:], volumes, images)
        except Exception as exc:
            if len(todo) > 1:
                return [pair for i in todo for pair in self._score([i], volumes, images)]
            log.error("scoring failed: %s", type(exc).__name__, extra={"action": "scoring_failed"})
            return [(todo[0], f"the scorer failed on this mask: {type(exc).__name__}: {exc}")]
        return list(zip(todo, results, strict=True))
