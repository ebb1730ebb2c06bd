"""The write stage, on the driver: finished rows into the database in large transactions, with artifacts.

``Writer.add`` takes the scored, rejected and skipped rows of the pipeline as they stream out of Ray and
``flush`` stores them ``write_batch`` at a time with ``monitor.store.record_finished`` (one transaction,
idempotent on (path, content_hash)). A row marked ``stale`` (a stored content whose score is stale,
scored again) is rescored in place (``record_finished(..., rescore=...)``); when its rescoring was
rejected (a scorer failure, say) its stored score is kept and the file counts as skipped
(``Tally.rescore_failed``). Each scored file's pGT and inconsistency map, written by a scoring
actor into the run's staging folder, are renamed inside that transaction to the daemon's place for them
(``monitor.daemon.artifacts.artifact_paths``: by file id); a rename that fails, or a staged write that
had failed, leaves that file without artifacts, as in the daemon. A content that was stored meanwhile
leaves its staged artifacts to the end of the run, when the staging folder is removed. A database that
is down is retried with backoff (``monitor.daemon.retry.Retry``) until ``stop`` is set.
A scored file's ``image_used``, ``image_reason``, ``image_detail`` and ``image_path`` are the ones the
daemon records for the same pairing and score. ``Writer.tally`` counts every row, and the seconds spent in the database and on artifacts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prometheus_client import CollectorRegistry

from monitor.backfill.decode import (
    OUTCOME_REJECTED,
    OUTCOME_SCORE,
    OUTCOME_SKIPPED,
    SKIPPED_STALE,
    unpack,
)
from monitor.daemon.artifacts import artifact_paths
from monitor.daemon.retry import DatabaseHealth, Retry
from monitor.io.images import ImagePairing, image_outcome
from monitor.store import FinishedFile, image_columns, record_finished
from monitor.telemetry import build_metrics

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

__all__ = ["Tally", "Writer"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Tally:
    """What a run did with its input (scored + rescored + rejected + skipped = input)."""

    scored: int = 0  #: new contents scored and stored by this run
    rescored: int = 0  #: stored contents whose stale score this run replaced
    rejected: int = 0  #: new contents rejected and stored by this run
    skipped: int = 0  #: files whose stored row was left as it is (stored by an earlier run, or meanwhile)
    skipped_stale: int = 0  #: of those, stale scores kept because the run keeps them (``--keep-stale``)
    #: of those, stale scores kept because their rescoring was rejected, by reason code
    rescore_failed: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)  #: rejections by reason code
    database_s: float = 0.0  #: seconds in the database's write transactions, artifacts excluded
    artifacts_s: float = 0.0  #: seconds moving the staged artifacts into place
    artifacts_failed: int = 0  #: scored files stored without artifacts (the write failed)
    #: files scored or rescored by this run by what became of their MR image (``monitor.io.images``:
    #: ``used``, or why not: ``not_found``, ``geometry_mismatch``, ...)
    images: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Every file accounted for."""
        return self.scored + self.rescored + self.rejected + self.skipped


class Writer:
    """Stores the pipeline's rows in batches (module docstring).

    Args:
        sessions: sessions on the results database.
        model_id: the monitor model of the scores (``register_model``).
        artifacts_dir: the artifacts folder; None stores no artifacts.
        write_batch: files per transaction (>= 1).
        stop: set to give up retrying a database that is down.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        model_id: int,
        artifacts_dir: Path | None,
        write_batch: int = 512,
        stop: threading.Event | None = None,
    ) -> None:
        if write_batch < 1:
            raise ValueError(f"write_batch must be >= 1, got {write_batch}")
        self._sessions = sessions
        self._model_id = model_id
        self._artifacts_dir = artifacts_dir
        self._write_batch = write_batch
        self._stop = stop or threading.Event()
        self._retry = Retry(build_metrics(CollectorRegistry()), DatabaseHealth(), self._stop)
        #: (file, staged artifacts, what became of its MR image, whether it rescores a stale score)
        self._pending: list[tuple[FinishedFile, Mapping[str, str], str | None, bool]] = []
        self.tally = Tally()

    def add(self, frame: pd.DataFrame) -> None:
        """Take the rows of one output batch of the pipeline; store them once enough are waiting."""
        done_at = datetime.now(UTC)
        for row in frame.to_dict("records"):
            stale = bool(row.get("stale", False))
            if row["outcome"] == OUTCOME_SKIPPED or (stale and row["outcome"] == OUTCOME_REJECTED):
                self.tally.skipped += 1
                self.tally.skipped_stale += row["reason"] == SKIPPED_STALE
                if row["outcome"] == OUTCOME_REJECTED:  # the stored score stands
                    self.tally.rescore_failed[str(row["reason"])] += 1
                continue
            score, staged, image = (
                unpack(row["payload"]) if row["outcome"] == OUTCOME_SCORE else (None, {}, None)
            )
            outcome = image_outcome(image, score.image_used) if score is not None else None
            self._pending.append((_finished(row, score, done_at, image), staged, outcome, stale))
            if len(self._pending) >= self._write_batch:
                self.flush()

    def flush(self) -> None:
        """Store the rows waiting (one transaction)."""
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        files = [item for item, _, _, _ in batch]
        rescore = {i for i, (_, _, _, stale) in enumerate(batch) if stale}
        spent = {"artifacts": 0.0}

        def write_artifacts(index: int, file_id: int) -> dict[str, str]:
            if self._artifacts_dir is None:
                return {}
            started = time.perf_counter()
            paths = _move_into_place(batch[index][1], self._artifacts_dir, file_id)
            spent["artifacts"] += time.perf_counter() - started
            self.tally.artifacts_failed += not paths
            return paths

        def record() -> Any:
            spent["artifacts"] = 0.0
            with self._sessions() as session:
                return record_finished(
                    session, files, model_id=self._model_id, artifacts=write_artifacts, rescore=rescore
                )

        started = time.perf_counter()
        written = self._retry("database", record)
        self.tally.database_s += time.perf_counter() - started - spent["artifacts"]
        self.tally.artifacts_s += spent["artifacts"]
        self.tally.skipped += len(written.already_stored)
        self.tally.rescored += len(written.rescored)
        for i in [*written.file_ids, *written.rescored]:
            if files[i].score is not None:
                self.tally.scored += i in written.file_ids
                if (image := batch[i][2]) is not None:
                    self.tally.images[image] += 1
            else:
                self.tally.rejected += 1
                self.tally.reasons[files[i].rejection[0]] += 1  # type: ignore[index]


def _move_into_place(staged: Mapping[str, str], artifacts_dir: Path, file_id: int) -> dict[str, str]:
    """Rename a file's staged artifacts to their place by file id: kind -> path, or {} when the
    artifacts were not written or a rename failed (then none of the file's are left in place)."""
    targets = artifact_paths(artifacts_dir, file_id)
    if not staged or set(staged) != set(targets):
        return {}
    moved: dict[str, str] = {}
    try:
        for kind, source in staged.items():
            targets[kind].parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, targets[kind])
            moved[kind] = str(targets[kind])
    except OSError as exc:
        log.warning(
            "artifacts of file %d could not be moved into place: %s",
            file_id,
            type(exc).__name__,
            extra={"action": "artifacts_failed", "file_id": file_id},
        )
        for path in moved.values():
            with contextlib.suppress(OSError):
                os.unlink(path)
        return {}
    return moved


def _finished(
    row: dict[str, Any], score: Any, done_at: datetime, image: ImagePairing | None = None
) -> FinishedFile:
    """The ``FinishedFile`` of one scored (``score``: its ``VolumeScore``; ``image``: its MR image's
    pairing) or rejected row; the image columns are the daemon's (``monitor.store`` ``image_columns``)."""
    if row["outcome"] not in (OUTCOME_SCORE, OUTCOME_REJECTED) or (
        row["outcome"] == OUTCOME_SCORE and score is None
    ):
        raise ValueError(f"row of outcome {row['outcome']!r} cannot be stored")
    columns = image_columns(score, image) if score is not None else {}
    return FinishedFile(
        path=row["path"],
        content_hash=row["content_hash"],
        case_key=row["case_key"],
        phase=_text(row["phase"]),
        segmenter_name=row["segmenter_name"],
        segmenter_version=row["segmenter_version"],
        site=_text(row["site"]),
        scanner=_text(row["scanner"]),
        image_path=columns.get("image_path", _text(row["image_path"])),
        image_reason=columns.get("image_reason"),
        image_detail=columns.get("image_detail"),
        received_at=datetime.fromtimestamp(float(row["received_at"]), UTC),
        done_at=done_at,
        score=score,
        rejection=None if score is not None else (str(row["reason"]), str(row["detail"] or "")),
    )


def _text(value: Any) -> str | None:
    """A text cell; None for a missing one (None or a pandas NaN)."""
    return None if value is None or (isinstance(value, float) and value != value) else str(value)
