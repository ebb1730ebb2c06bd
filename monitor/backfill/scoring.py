"""The scoring stage: a Ray actor holding one ``Scorer`` scores the valid files of each batch together.

``ScoreWorker`` is the class handed to ``map_batches`` (an actor pool; one checkpoint load per actor,
on a GPU when the actor was given one). Rows whose ``outcome`` is not ``score`` pass through. On
out-of-memory a batch is split in halves; an error scoring several files is isolated by scoring them one
by one, and the file that fails is rejected ``scoring_failed``, as in the daemon's worker. Scored rows
leave with a ``payload`` of (``ScoredVolume``: scores, pGT, inconsistency map; the mask's 4x4 affine, for
the artifacts); the mask's labels are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitor.backfill.decode import OUTCOME_REJECTED, OUTCOME_SCORE, pack, unpack
from monitor.daemon.rejection import REASON_SCORING_FAILED
from monitor.daemon.retry import free_device_memory, out_of_memory_errors
from monitor.io.nifti import MaskVolume

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


class ScoreWorker:
    """One scorer per actor; ``__call__`` scores a batch of decoded rows (a pandas DataFrame)."""

    def __init__(self, options: ScorerOptions) -> None:
        from monitor.model.scorer import Scorer

        self._scorer = Scorer(
            options.checkpoint,
            device=options.device,
            threads=options.threads,
            precision=options.precision,
            batch_slices=options.batch_slices,
        )

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        batch = batch.reset_index(drop=True)
        payload: list[bytes | None] = [None] * len(batch)
        outcome, reason, detail = list(batch["outcome"]), list(batch["reason"]), list(batch["detail"])
        todo = [i for i in range(len(batch)) if outcome[i] == OUTCOME_SCORE]
        volumes = {i: unpack(batch["payload"][i]) for i in todo}
        for i, result in self._score(todo, volumes):
            if isinstance(result, str):
                outcome[i], reason[i], detail[i] = OUTCOME_REJECTED, REASON_SCORING_FAILED, result
            else:
                payload[i] = pack((result, volumes[i].affine))
        out = batch.copy()
        out["outcome"], out["reason"], out["detail"], out["payload"] = outcome, reason, detail, payload
        return out

    def _score(self, todo: Sequence[int], volumes: dict[int, MaskVolume]) -> list[tuple[int, Any]]:
        """(row, ScoredVolume or the failure's text) for each row of ``todo``."""
        if not todo:
            return []
        try:
            results = self._scorer.score_batch([volumes[i] for i in todo])
        except out_of_memory_errors():
            free_device_memory()
            if len(todo) == 1:
                return [(todo[0], "out of memory on this mask alone")]
            half = len(todo) // 2
            log.warning("out of memory; splitting a batch of %d", len(todo), extra={"action": "oom_split"})
            return self._score(todo[:half], volumes) + self._score(todo[half:], volumes)
        except Exception as exc:
            if len(todo) > 1:
                return [pair for i in todo for pair in self._score([i], volumes)]
            log.error("scoring failed: %s", type(exc).__name__, extra={"action": "scoring_failed"})
            return [(todo[0], f"the scorer failed on this mask: {type(exc).__name__}: {exc}")]
        return list(zip(todo, results, strict=True))
