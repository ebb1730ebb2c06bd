"""The worker thread: claims batches from the database, scores them, writes the artifacts and records
each file's results in one transaction.

It is given a ``WorkerContext`` (the database, metrics, retries, rejections, the artifacts folder, the
stop events and the settings it needs), not the daemon. Several daemons may share one database: claims
are atomic and leased. On out-of-memory a batch is split; an error on one file rejects that file only;
artifacts that cannot be written are given up for that file only (its scores are recorded without them,
``monitor.daemon.artifacts``). Its database calls (claim, record) are steps of the ``worker`` loop of
``LoopWatch``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from monitor.daemon.artifacts import ArtifactsFolder
from monitor.daemon.config import DaemonConfig
from monitor.daemon.rejection import REASON_CHANGED, REASON_SCORING_FAILED, Rejections
from monitor.daemon.retry import (
    BACKOFF_INITIAL_S,
    BACKOFF_MAX_S,
    Abandoned,
    Retry,
    free_device_memory,
    out_of_memory_errors,
)
from monitor.errors import CheckpointError, InvalidMask
from monitor.io.clinical import LazyCalibration
from monitor.io.files import file_sha256
from monitor.io.images import PairedImage, image_outcome, pair_image
from monitor.io.nifti import Limits, MaskVolume, load_mask
from monitor.qc.clinical import ClinicalCalibration, ClinicalPolicy, PatientAssessment, indices_from_score
from monitor.qc.labels import LabelMap
from monitor.store import (
    REJECTION_MISSING,
    DatabaseUnavailable,
    FileStateError,
    claim_batch,
    record_scores,
    requeue_worker,
    update_patient,
)
from monitor.telemetry import DaemonMetrics, LoopWatch

if TYPE_CHECKING:
    import numpy as np
    from sqlalchemy.orm import Session, sessionmaker

    from monitor.model.scorer import ScoredVolume
    from monitor.store import ClaimedFile

__all__ = ["ScorerLike", "Worker", "WorkerContext", "log_unexpected"]

log = logging.getLogger(__name__)


class ScorerLike(Protocol):
    """What the worker needs of ``monitor.model.Scorer`` (tests inject a fake)."""

    checkpoint_sha256: str

    def score_batch(
        self, volumes: Sequence[MaskVolume], images: Sequence[np.ndarray | None] | None = None
    ) -> list[ScoredVolume]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerContext:
    """What the worker thread uses: the daemon's shared parts, nothing of its internals."""

    config: DaemonConfig  #: batch size, lease, attempts, poll interval, artifacts folder
    worker_id: str  #: this process's worker id (``monitor.daemon.liveness``)
    sessions: sessionmaker[Session]  #: sessions on the results database
    metrics: DaemonMetrics  #: the daemon's metrics
    retry: Retry  #: retries of transient failures
    rejections: Rejections  #: records rejections (and quarantines)
    label_map: LabelMap  #: label values of the masks
    limits: Limits  #: size limits for loading
    artifacts: ArtifactsFolder  #: writes each file's artifacts (or gives them up for that file)
    loops: LoopWatch  #: the worker's database calls are steps of its ``worker`` loop
    stop: threading.Event  #: set by ``Daemon.stop()``: claim nothing more
    abandon: threading.Event  #: set when the shutdown deadline passed: give the batch up
    #: the clinical stage's flag policy; None turns the per-patient indices off
    clinical_policy: ClinicalPolicy | None = None
    #: the clinical error calibration, loaded when a first patient is complete (None: values and
    #: physiological checks only)
    clinical_calibration: LazyCalibration | None = None


def log_unexpected(message: str, exc: BaseException, *, action: str) -> None:
    """An unexpected error: its type at ERROR, the traceback (which may name files) only at DEBUG."""
    log.error("%s: %s", message, type(exc).__name__, extra={"action": action})
    log.debug("%s", message, exc_info=exc)


class Worker(threading.Thread):
    """Claims batches from the database, scores them and records the results (one thread)."""

    def __init__(self, context: WorkerContext, scorer: ScorerLike, model_id: int) -> None:
        super().__init__(name="cmr-monitor-worker", daemon=True)
        self._c = context
        self._scorer = scorer
        self._model_id = model_id
        self._wake = threading.Event()
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()
        self._calibration_failed = False  #: warned once that the clinical calibration is unusable

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    def unfinished(self) -> set[int]:
        """Claimed file ids without a recorded result (for release at shutdown)."""
        with self._lock:
            return set(self._in_flight)

    def run(self) -> None:
        c = self._c
        with c.sessions() as session:
            while not c.stop.is_set():
                try:
                    claimed = self._claim(session)
                except Abandoned:
                    return
                if not claimed:
                    self._wake.wait(c.config.poll_interval_s)
                    self._wake.clear()
                    continue
                with self._lock:
                    self._in_flight = {item.file_id for item in claimed}
                try:
                    self._process(session, claimed)
                except Abandoned:
                    return
                except Exception as exc:  # a bug must not end the worker
                    log_unexpected("batch failed; its files go back to the queue", exc, action="batch_error")
                    self._requeue_own(session)
                    c.stop.wait(c.config.poll_interval_s)

    def _claim(self, session: Session) -> list[ClaimedFile]:
        """Claim the next batch. After a failed claim, first take back this worker's own ``scoring``
        rows: the claim may have committed while its answer was lost, and nothing is in flight now."""
        c = self._c
        lost_answer = False

        def claim() -> list[ClaimedFile]:
            nonlocal lost_answer
            try:
                with c.loops.step("worker"):
                    if lost_answer:
                        requeue_worker(session, c.worker_id, max_attempts=c.config.max_attempts)
                        lost_answer = False
                    return claim_batch(
                        session, worker_id=c.worker_id, limit=c.config.batch_size, lease_s=c.config.lease_s
                    )
            except DatabaseUnavailable:
                lost_answer = True
                raise

        # nothing in flight: stop at once
        return c.retry("database", claim, until=c.stop, operation="claim")

    def _requeue_own(self, session: Session) -> None:
        """After a failed batch, put this worker's claims back (the claim counts, so a file that keeps
        failing ends ``too_many_attempts``); nothing else is in flight."""
        c = self._c
        with self._lock:
            self._in_flight.clear()
        with contextlib.suppress(Abandoned):  # stopping: the leases expire instead
            c.retry(
                "database",
                lambda: requeue_worker(session, c.worker_id, max_attempts=c.config.max_attempts),
                until=c.stop,
                operation="requeue",
            )

    def _done_with(self, file_id: int) -> None:
        with self._lock:
            self._in_flight.discard(file_id)

    def _reject(self, session: Session, item: ClaimedFile, reason: str, detail: str) -> None:
        self._c.rejections.record(
            session,
            item.file_id,
            reason,
            detail,
            path=Path(item.path),
            segmenter=(item.segmenter_name, item.segmenter_version),
        )
        self._done_with(item.file_id)

    def _process(self, session: Session, claimed: list[ClaimedFile]) -> None:
        started = time.perf_counter()
        claimed_at = datetime.now(UTC)
        loaded: list[tuple[ClaimedFile, MaskVolume, PairedImage]] = []
        for item in claimed:
            self._c.metrics.record_claimed((claimed_at - item.received_at).total_seconds())
            volume = self._load(item)
            if isinstance(volume, MaskVolume):
                loaded.append((item, volume, self._pair(item, volume)))
            else:
                self._reject(session, item, *volume)
        for item, volume, image, result in self._score(session, loaded):
            self._finish(session, item, volume, image, result)
        self._c.metrics.batch_duration.observe(time.perf_counter() - started)

    def _load(self, item: ClaimedFile) -> MaskVolume | tuple[str, str]:
        """The claimed file as a volume, or (reason, detail) when it cannot be scored."""
        path = Path(item.path)
        try:
            before = path.stat()
            digest = file_sha256(path)
            volume = load_mask(path, self._c.label_map, self._c.limits)
            after = path.stat()
        except FileNotFoundError:
            return REJECTION_MISSING, "the file vanished before it could be scored"
        except InvalidMask as exc:
            return exc.reason, exc.detail
        except OSError as exc:
            return "unreadable", f"the file cannot be read: {exc.strerror or type(exc).__name__}"
        unchanged = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        if digest != item.content_hash or not unchanged:
            return REASON_CHANGED, "the file changed after it was received; its new content is queued anew"
        return volume

    def _pair(self, item: ClaimedFile, volume: MaskVolume) -> PairedImage:
        """The mask's MR image (sidecar, beside it, nnU-Net ``imagesTs``), checked against its geometry;
        an image that cannot be used is logged with its reason and the file is scored without it."""
        c = self._c
        settings = c.config.settings
        paired = pair_image(
            volume,
            image_path=item.image_path,
            limits=c.limits,
            enabled=settings.image_evidence and settings.evidence,
        )
        pairing = paired.pairing
        if not pairing.used and pairing.reason not in ("not_found", "disabled"):
            log.warning(
                "file %d: MR image not used (%s): %s",
                item.file_id,
                pairing.reason,
                pairing.detail,
                extra={"action": "image_not_used", "file_id": item.file_id, "reason": pairing.reason},
            )
        return paired

    def _score(
        self, session: Session, items: list[tuple[ClaimedFile, MaskVolume, PairedImage]]
    ) -> Iterator[tuple[ClaimedFile, MaskVolume, PairedImage, ScoredVolume]]:
        """Score ``items`` together; on out-of-memory split the batch, on an error isolate the culprit."""
        if not items:
            return
        delay = BACKOFF_INITIAL_S
        while True:
            try:
                results = self._scorer.score_batch(
                    [volume for _, volume, _ in items], images=[image.data for _, _, image in items]
                )
            except out_of_memory_errors() as exc:
                self._c.metrics.transient_errors.labels(kind="out_of_memory").inc()
                free_device_memory()
                if len(items) > 1:
                    half = len(items) // 2
                    log.warning(
                        "out of memory; splitting a batch of %d", len(items), extra={"action": "oom_split"}
                    )
                    yield from self._score(session, items[:half])
                    yield from self._score(session, items[half:])
                    return
                log.warning(
                    "out of memory on a single file, retrying in %.1f s",
                    delay,
                    extra={"action": "retry", "kind": "out_of_memory", "file_id": items[0][0].file_id},
                )
                if self._c.abandon.wait(delay):
                    raise Abandoned("out_of_memory") from exc
                delay = min(2 * delay, BACKOFF_MAX_S)
                continue
            except Exception as exc:
                if len(items) > 1:
                    for single in items:
                        yield from self._score(session, [single])
                    return
                item = items[0][0]
                log_unexpected(f"scoring failed for file {item.file_id}", exc, action="scoring_failed")
                self._reject(
                    session,
                    item,
                    REASON_SCORING_FAILED,
                    f"the scorer failed on this mask: {type(exc).__name__}: {exc}",
                )
                return
            for (item, volume, image), result in zip(items, results, strict=True):
                yield item, volume, image, result
            return

    def _calibration(self) -> ClinicalCalibration | None:
        """The clinical calibration (loaded on first use); None, with one warning, when it is unusable."""
        lazy = self._c.clinical_calibration
        if lazy is None or self._calibration_failed:
            return None
        try:
            return lazy.get()
        except CheckpointError as exc:
            self._calibration_failed = True
            log.warning(
                "clinical calibration unusable, patients get no estimated errors: %s",
                exc,
                extra={"action": "clinical_calibration_failed"},
            )
            return None

    def _assess_patient(self, session: Session, item: ClaimedFile, policy: ClinicalPolicy) -> None:
        """Re-assess the file's patient (ED + ES of its case) now that this frame is scored. A failure
        here leaves the scores as recorded; the case is assessed again when its other frame arrives."""
        c = self._c

        def assess() -> PatientAssessment | None:
            with c.loops.step("worker"):
                return update_patient(session, item.file_id, calibration=self._calibration, policy=policy)

        try:
            assessment = c.retry("database", assess, operation="patient")
        except Abandoned:
            raise
        except Exception as exc:
            log_unexpected(
                f"could not assess the patient of file {item.file_id}", exc, action="clinical_failed"
            )
            return
        if assessment is not None and assessment.complete:
            estimate = assessment.estimates.get("lv_ef")
            if estimate is not None:
                c.metrics.record_patient(item.segmenter_name, item.segmenter_version, estimate.value)

    def _finish(
        self,
        session: Session,
        item: ClaimedFile,
        volume: MaskVolume,
        image: PairedImage,
        result: ScoredVolume,
    ) -> None:
        """Write the artifacts (for this file only: a failure leaves them out), then record the scores in
        one transaction."""
        c = self._c
        artifacts = c.artifacts.write(item.file_id, volume, result)
        score = result.score
        clinical = (
            indices_from_score(volume.labels, result.pgt, score) if c.clinical_policy is not None else None
        )

        def record() -> None:
            with c.loops.step("worker"):
                record_scores(
                    session,
                    item.file_id,
                    score,
                    model_id=self._model_id,
                    artifacts=artifacts,
                    image=image.pairing,
                    clinical=clinical,
                )

        try:
            c.retry("database", record, operation="record")
        except FileStateError:
            log.info(
                "file %d was finished by another worker",
                item.file_id,
                extra={"action": "already_done", "file_id": item.file_id},
            )
            self._done_with(item.file_id)
            return
        self._done_with(item.file_id)
        latency_s = max(0.0, (datetime.now(UTC) - item.received_at).total_seconds())
        c.metrics.record_scored(item.segmenter_name, item.segmenter_version, score, latency_s)
        c.metrics.record_image(image_outcome(image.pairing, score.image_used))
        if c.clinical_policy is not None:
            self._assess_patient(session, item, c.clinical_policy)
        log.info(
            "scored file %d: %s in %.2f s",
            item.file_id,
            score.flag,
            latency_s,
            extra={
                "action": "scored",
                "file_id": item.file_id,
                "flag": str(score.flag),
                "latency_s": round(latency_s, 3),
            },
        )
