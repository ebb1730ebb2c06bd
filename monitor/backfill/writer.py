"""The write stage, on the driver: finished rows into the database in large transactions, with artifacts.

``Writer.add`` takes the scored, rejected and skipped rows of the pipeline as they stream out of Ray and
``flush`` stores them ``write_batch`` at a time with ``monitor.store.record_finished`` (one transaction,
idempotent on (path, content_hash)). Each scored file's pGT and inconsistency map are written by the
daemon's ``ArtifactsFolder`` under the new file id inside that transaction (a failed artifact write
leaves that file without artifacts, as in the daemon). A database that is down is retried with backoff
(``monitor.daemon.retry.Retry``) until ``stop`` is set. ``Writer.tally`` counts every row, and the
seconds spent in the database and on artifacts.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from prometheus_client import CollectorRegistry

from monitor.backfill.decode import OUTCOME_REJECTED, OUTCOME_SCORE, OUTCOME_SKIPPED, unpack
from monitor.daemon.artifacts import ArtifactsFolder
from monitor.daemon.retry import DatabaseHealth, Retry
from monitor.io.nifti import MaskVolume
from monitor.store import FinishedFile, record_finished
from monitor.telemetry import build_metrics

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Tally", "Writer"]


@dataclass(slots=True)
class Tally:
    """What a run did with its input (scored + rejected + skipped = input)."""

    scored: int = 0  #: files scored and stored by this run
    rejected: int = 0  #: files rejected and stored by this run
    skipped: int = 0  #: files whose content was already stored (by an earlier run, or meanwhile)
    reasons: Counter[str] = field(default_factory=Counter)  #: rejections by reason code
    database_s: float = 0.0  #: seconds in the database's write transactions, artifacts excluded
    artifacts_s: float = 0.0  #: seconds writing artifacts
    artifacts_failed: int = 0  #: scored files stored without artifacts (the write failed)

    @property
    def total(self) -> int:
        """Every file accounted for."""
        return self.scored + self.rejected + self.skipped


class Writer:
    """Stores the pipeline's rows in batches (module docstring).

    Args:
        sessions: sessions on the results database.
        model_id: the monitor model of the scores (``register_model``).
        artifacts: the artifacts folder; None writes none.
        write_batch: files per transaction (>= 1).
        stop: set to give up retrying a database that is down.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        model_id: int,
        artifacts: ArtifactsFolder | None,
        write_batch: int = 512,
        stop: threading.Event | None = None,
    ) -> None:
        if write_batch < 1:
            raise ValueError(f"write_batch must be >= 1, got {write_batch}")
        self._sessions = sessions
        self._model_id = model_id
        self._artifacts = artifacts
        self._write_batch = write_batch
        self._stop = stop or threading.Event()
        self._retry = Retry(build_metrics(CollectorRegistry()), DatabaseHealth(), self._stop)
        self._pending: list[tuple[FinishedFile, Any, Any]] = []  #: (file, ScoredVolume, affine)
        self.tally = Tally()

    def add(self, frame: pd.DataFrame) -> None:
        """Take the rows of one output batch of the pipeline; store them once enough are waiting."""
        done_at = datetime.now(UTC)
        for row in frame.to_dict("records"):
            if row["outcome"] == OUTCOME_SKIPPED:
                self.tally.skipped += 1
                continue
            scored, affine = unpack(row["payload"]) if row["outcome"] == OUTCOME_SCORE else (None, None)
            self._pending.append((_finished(row, scored, done_at), scored, affine))
            if len(self._pending) >= self._write_batch:
                self.flush()

    def flush(self) -> None:
        """Store the rows waiting (one transaction)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        files = [item for item, _, _ in batch]
        spent = {"artifacts": 0.0}

        def write_artifacts(index: int, file_id: int) -> dict[str, str]:
            if self._artifacts is None:
                return {}
            started = time.perf_counter()
            _, result, affine = batch[index]
            volume = MaskVolume(labels=result.pgt, spacing_mm=result.score.spacing_mm, affine=affine)
            paths = self._artifacts.write(file_id, volume, result)
            spent["artifacts"] += time.perf_counter() - started
            self.tally.artifacts_failed += not paths
            return paths

        def record() -> Any:
            spent["artifacts"] = 0.0
            with self._sessions() as session:
                return record_finished(session, files, model_id=self._model_id, artifacts=write_artifacts)

        started = time.perf_counter()
        written = self._retry("database", record)
        self.tally.database_s += time.perf_counter() - started - spent["artifacts"]
        self.tally.artifacts_s += spent["artifacts"]
        self.tally.skipped += len(written.already_stored)
        for i in written.file_ids:
            if files[i].score is not None:
                self.tally.scored += 1
            else:
                self.tally.rejected += 1
                self.tally.reasons[files[i].rejection[0]] += 1  # type: ignore[index]


def _finished(row: dict[str, Any], scored: Any, done_at: datetime) -> FinishedFile:
    """The ``FinishedFile`` of one scored (``scored``: its ``ScoredVolume``) or rejected row."""
    if row["outcome"] not in (OUTCOME_SCORE, OUTCOME_REJECTED) or (
        row["outcome"] == OUTCOME_SCORE and scored is None
    ):
        raise ValueError(f"row of outcome {row['outcome']!r} cannot be stored")
    return FinishedFile(
        path=row["path"],
        content_hash=row["content_hash"],
        case_key=row["case_key"],
        phase=_text(row["phase"]),
        segmenter_name=row["segmenter_name"],
        segmenter_version=row["segmenter_version"],
        site=_text(row["site"]),
        scanner=_text(row["scanner"]),
        image_path=_text(row["image_path"]),
        received_at=datetime.fromtimestamp(float(row["received_at"]), UTC),
        done_at=done_at,
        score=scored.score if scored is not None else None,
        rejection=None if scored is not None else (str(row["reason"]), str(row["detail"] or "")),
    )


def _text(value: Any) -> str | None:
    """A text cell; None for a missing one (None or a pandas NaN)."""
    return None if value is None or (isinstance(value, float) and value != value) else str(value)
