"""Prometheus metrics of the watch daemon: ``build_metrics(registry)`` and the verbs that update them.

Every metric is built by ``build_metrics(registry)`` (a fresh ``CollectorRegistry`` in tests), named
``cmr_monitor_*`` with its unit in the name, and labelled from bounded sets only: structure, flag
level, flag reason code (``monitor.qc.reasons.ReasonCode``), rejection reason, error kind, database
operation, and segmenter name/version capped by ``LabelBudget`` (extra values fold into ``"other"``).
Never a patient, case or file name. The queue gauges are read from the database at scrape time
(``monitor.telemetry.queue_gauges``); the endpoint is ``monitor.telemetry.server``.

Example::

    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    metrics.record_received("unet", "1.2")
"""

from __future__ import annotations

import contextlib
import logging
import math
import platform
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from monitor import __version__
from monitor.io.images import IMAGE_OUTCOMES
from monitor.qc.labels import STRUCTURES
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode

if TYPE_CHECKING:
    from monitor.qc.records import VolumeScore

__all__ = [
    "ARTIFACT_ERRNOS",
    "DATABASE_BUCKETS_S",
    "DATABASE_OPERATIONS",
    "LATENCY_BUCKETS_S",
    "LVEF_ERROR_BUCKETS",
    "OTHER",
    "PDSC_BUCKETS",
    "PHD_BUCKETS_MM",
    "DaemonMetrics",
    "DatabaseOperation",
    "LabelBudget",
    "build_metrics",
]

log = logging.getLogger(__name__)

#: Buckets of the estimated |LVEF error| as a fraction (0.05 = 5 percentage points, the default limit).
LVEF_ERROR_BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.03, 0.04, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5)
#: Label value that stands for every value beyond a ``LabelBudget`` cap.
OTHER = "other"
#: Buckets (seconds) of the latency from a complete file to its scored row, and of the queue wait.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60, 300, 1800)  # fmt: skip
_BATCH_BUCKETS_S: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Buckets (seconds) of one database call: a commit on local disk takes about a millisecond.
DATABASE_BUCKETS_S: tuple[float, ...] = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)  # fmt: skip
#: What the daemon asks of the database (the ``operation`` label of ``cmr_monitor_database_seconds``):
#: ``enqueue`` a complete file (intake), ``claim`` a batch, ``record`` a file's scores, ``reject`` a
#: file, ``requeue`` a failed batch's files, ``maintain`` (take back expired and dead workers' claims),
#: ``release`` claims at shutdown, ``startup`` (probe, model row, backfill's known paths) and
#: ``queue_gauges`` (the queue gauges read at scrape time).
DatabaseOperation = Literal[
    "enqueue",
    "claim",
    "record",
    "patient",
    "reject",
    "requeue",
    "maintain",
    "release",
    "startup",
    "queue_gauges",
]
#: Every ``DatabaseOperation``, in that order.
DATABASE_OPERATIONS: tuple[DatabaseOperation, ...] = get_args(DatabaseOperation)
#: Errors of artifact writes told apart (the ``errno`` label of ``cmr_monitor_artifact_errors_total``):
#: read-only file system, no space, quota, permission (two codes), I/O error; any other is ``"other"``.
ARTIFACT_ERRNOS: tuple[str, ...] = ("EROFS", "ENOSPC", "EDQUOT", "EACCES", "EPERM", "EIO")
#: Buckets of pseudo Dice (0-1): fine where good masks lie (0.7-1), coarse below the 0.5 flag threshold.
PDSC_BUCKETS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.925, 0.95, 0.975, 1.0)  # fmt: skip
#: Buckets of pseudo Hausdorff distance (mm): 2.5 mm steps where good masks lie, past the 50 mm threshold.
PHD_BUCKETS_MM: tuple[float, ...] = (2.5, 5, 7.5, 10, 12.5, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200)  # fmt: skip
_SEGMENTER_LABELS = ("segmenter", "segmenter_version")
_REASON_CODES = frozenset(str(code) for code in ReasonCode)
_MAX_LABEL_CHARS = 64


class LabelBudget:
    """Caps the distinct values of the open-ended labels (segmenter name and version, rejection reason).

    Segmenter names and versions come from folder names and sidecars, so their number is not bounded by
    the code. The first ``max_segmenters`` names are kept, and per name the first ``max_versions``
    versions; a later version of a known name becomes ``(name, "other")``, a later name
    ``("other", "other")``. Reasons beyond ``max_reasons`` become ``"other"``. Values are cut to 64
    characters. The series of one metric are then at most ``max_segmenters * (max_versions + 1) + 1``
    per combination of the other labels. Thread-safe; a warning is logged the first time a value folds.

    Example:
        >>> budget = LabelBudget(max_segmenters=1, max_versions=1)
        >>> budget.segmenter("unet", "1.0"), budget.segmenter("unet", "1.1"), budget.segmenter("x", "2")
        (('unet', '1.0'), ('unet', 'other'), ('other', 'other'))
    """

    def __init__(self, *, max_segmenters: int = 20, max_versions: int = 20, max_reasons: int = 40) -> None:
        for name, value in (
            ("max_segmenters", max_segmenters),
            ("max_versions", max_versions),
            ("max_reasons", max_reasons),
        ):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.max_segmenters = max_segmenters
        self.max_versions = max_versions
        self.max_reasons = max_reasons
        self._versions: dict[str, set[str]] = {}
        self._reasons: set[str] = set()
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def segmenter(self, name: str, version: str) -> tuple[str, str]:
        """The (segmenter, segmenter_version) label values to use for a file of ``name`` ``version``."""
        name, version = name[:_MAX_LABEL_CHARS], version[:_MAX_LABEL_CHARS]
        with self._lock:
            versions = self._versions.get(name)
            if versions is None:
                if len(self._versions) >= self.max_segmenters:
                    self._warn_once("segmenter", self.max_segmenters)
                    return OTHER, OTHER
                versions = self._versions[name] = set()
            if version not in versions:
                if len(versions) >= self.max_versions:
                    self._warn_once("segmenter_version", self.max_versions)
                    return name, OTHER
                versions.add(version)
            return name, version

    def reason(self, reason: str) -> str:
        """The ``reason`` label value for a rejection reason code."""
        reason = reason[:_MAX_LABEL_CHARS]
        with self._lock:
            if reason not in self._reasons:
                if len(self._reasons) >= self.max_reasons:
                    self._warn_once("reason", self.max_reasons)
                    return OTHER
                self._reasons.add(reason)
            return reason

    def _warn_once(self, label: str, cap: int) -> None:
        if label not in self._warned:
            self._warned.add(label)
            log.warning(
                "more than %d distinct values of the metrics label %s; further ones are counted as %r",
                cap,
                label,
                OTHER,
                extra={"action": "label_budget", "label": label},
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonMetrics:
    """The daemon's metrics (all registered in one registry) and the verbs that update them.

    Call the ``record_*`` methods rather than the metrics themselves: they apply the ``LabelBudget``
    the same way for every metric, so that series of one segmenter version line up across metrics.
    """

    files_received: Counter  #: complete mask files enqueued, by segmenter, segmenter_version
    files_scored: Counter  #: files scored, by segmenter, segmenter_version and (file) flag
    files_rejected: Counter  #: files rejected, by segmenter, segmenter_version and reason code
    flags: Counter  #: structure verdicts (ok too), by segmenter, segmenter_version, structure, level
    flag_reasons: Counter  #: reason codes of flagged structures, by segmenter, version, structure, reason
    pdsc: Histogram  #: pseudo Dice per structure, by segmenter, segmenter_version, structure
    phd_mm: Histogram  #: pseudo Hausdorff distance (mm) per structure, same labels
    scoring_latency: Histogram  #: seconds from the file being complete to its scored row
    queue_wait: Histogram  #: seconds from the file being complete to its claim by a worker
    batch_duration: Histogram  #: seconds to load, score, write and record one batch
    transient_errors: Counter  #: retried failures, by kind (database, out_of_memory, artifacts)
    database: Histogram  #: seconds of each successful database call, by operation
    artifact_errors: Counter  #: artifact writes that failed, by errno name (``ARTIFACT_ERRNOS`` or other)
    images: Counter  #: scored files by what became of their MR image (``IMAGE_OUTCOMES``)
    artifacts_writable: Gauge  #: 1 while the artifacts folder takes writes; 0 after a failed write or probe
    reclaim_blocked: Gauge  #: expired claims the last reclaim left: another session holds them locked
    files_waiting: Gauge  #: files seen but not yet complete or not yet handed to the queue
    ready: Gauge  #: 1 while the daemon can take work, else 0
    model: Info  #: the autoencoder checkpoint in use (sha256, creation time, device, database id)
    build: Info  #: cmr-monitor and Python versions
    #: estimated absolute LVEF error of each complete patient (0.05 = 5 points), by segmenter version
    lvef_error: Histogram
    budget: LabelBudget = field(default_factory=LabelBudget)  #: caps on segmenter and reason values
    _initialised: set[tuple[str, str]] = field(default_factory=set)  #: segmenter labels with zero series

    def _segmenter_labels(self, segmenter: str, version: str) -> tuple[str, str]:
        """The label values of a segmenter version; the first time, its series start at zero.

        Prometheus's ``increase``/``rate`` cannot see the first increment of a series that appears with
        a non-zero value, so every flag level, structure and histogram of a new segmenter version is
        exposed at 0 as soon as its first file is received (before it is scored).
        """
        labels = self.budget.segmenter(segmenter, version)
        if labels not in self._initialised:  # a race only repeats idempotent .labels() calls
            self._initialised.add(labels)
            for level in FlagLevel:
                self.files_scored.labels(*labels, str(level))
            for structure in STRUCTURES:
                self.pdsc.labels(*labels, str(structure))
                self.phd_mm.labels(*labels, str(structure))
                for level in FlagLevel:
                    self.flags.labels(*labels, str(structure), str(level))
                for code in ReasonCode:
                    self.flag_reasons.labels(*labels, str(structure), str(code))
            self.lvef_error.labels(*labels)
        return labels

    def record_received(self, segmenter: str, version: str) -> None:
        """A new file (path or content) was enqueued."""
        self.files_received.labels(*self._segmenter_labels(segmenter, version)).inc()

    def record_rejected(self, segmenter: str, version: str, reason: str) -> None:
        """A file was rejected with ``reason`` (a stable code such as ``corrupt``)."""
        labels = self._segmenter_labels(segmenter, version)
        self.files_rejected.labels(*labels, self.budget.reason(reason)).inc()

    def record_artifact_error(self, errno_name: str) -> None:
        """An artifact write failed with ``errno_name`` (``"ENOSPC"``, ...; unknown names count as other)."""
        self.artifact_errors.labels(errno=errno_name if errno_name in ARTIFACT_ERRNOS else OTHER).inc()
        self.artifacts_writable.set(0)

    def record_image(self, outcome: str | None) -> None:
        """A scored file's MR image was ``used`` or not, and why (``monitor.io.images.image_outcome``)."""
        if outcome is not None:
            self.images.labels(outcome=outcome if outcome in IMAGE_OUTCOMES else OTHER).inc()

    def record_claimed(self, wait_s: float) -> None:
        """A worker claimed a file ``wait_s`` seconds after it was received."""
        self.queue_wait.observe(max(0.0, wait_s))

    @contextlib.contextmanager
    def database_call(self, operation: DatabaseOperation) -> Iterator[None]:
        """Observe the wall time of the block in ``cmr_monitor_database_seconds{operation=...}`` when it
        succeeds; a block that raises (the database is down, the file was finished elsewhere) is not
        observed: retried failures are counted by ``transient_errors``.

        Raises: ValueError for an operation outside ``DATABASE_OPERATIONS`` (labels stay bounded).

        Example:
            >>> metrics = build_metrics(CollectorRegistry())
            >>> with metrics.database_call("claim"):
            ...     pass  # claim_batch(session, ...)
        """
        if operation not in DATABASE_OPERATIONS:
            raise ValueError(f"operation must be one of {DATABASE_OPERATIONS}, got {operation!r}")
        started = time.perf_counter()
        yield
        self.database.labels(operation=operation).observe(time.perf_counter() - started)

    def record_scored(self, segmenter: str, version: str, score: VolumeScore, latency_s: float) -> None:
        """A file's scores were recorded: its flag, each structure's verdict and reason codes, pDSC and
        pHD (mm).

        Undefined metrics (nan: pDSC of a structure absent from both masks, pHD of one absent from
        either) are not observed, as the database stores them as NULL.
        """
        labels = self._segmenter_labels(segmenter, version)
        self.scoring_latency.observe(max(0.0, latency_s))
        self.files_scored.labels(*labels, str(score.flag)).inc()
        for item in score.structures:
            structure = str(item.structure)
            self.flags.labels(*labels, structure, str(item.flag)).inc()
            for code in item.reasons:
                reason = str(code) if code in _REASON_CODES else OTHER  # bounded: the enum, or "other"
                self.flag_reasons.labels(*labels, structure, reason).inc()
            if math.isfinite(item.pdsc):
                self.pdsc.labels(*labels, structure).observe(item.pdsc)
            if math.isfinite(item.phd_mm):
                self.phd_mm.labels(*labels, structure).observe(item.phd_mm)

    def record_patient(self, segmenter: str, version: str, lvef_error_pct: float) -> None:
        """A patient's indices were assessed: observe its estimated |LVEF error| (percentage points, stored
        as a fraction); nan (no calibration, or incomplete) is not observed."""
        if math.isfinite(lvef_error_pct):
            labels = self._segmenter_labels(segmenter, version)
            self.lvef_error.labels(*labels).observe(max(0.0, lvef_error_pct) / 100.0)

    def set_model(
        self,
        *,
        checkpoint_sha256: str,
        created: str = "",
        trained_with: str = "",
        device: str = "",
        precision: str = "",
        model_id: int | None = None,
    ) -> None:
        """Publish the checkpoint in use (``cmr_monitor_model_info``).

        Args:
            checkpoint_sha256: hex sha256 of the checkpoint file (its identity).
            created: when it was written (ISO 8601, from its metadata); its version.
            trained_with: cmr-monitor version that trained it.
            device: where it runs (``cpu``, ``cuda``, ``cuda:0``).
            precision: its arithmetic (``fp32``, ``fp16``, ``bf16``): hosts that score with different
                precisions give slightly different scores (docs/evaluation.md).
            model_id: its row in the database's ``monitor_models`` (scores refer to it).
        """
        self.model.info(
            {
                "checkpoint_sha256": checkpoint_sha256,
                "checkpoint_created": created,
                "trained_with": trained_with,
                "device": device,
                "precision": precision,
                "model_id": "" if model_id is None else str(model_id),
            }
        )


def build_metrics(registry: CollectorRegistry, budget: LabelBudget | None = None) -> DaemonMetrics:
    """Create the daemon's metrics in ``registry``.

    Args:
        registry: where they are registered (``CollectorRegistry()`` in tests).
        budget: caps on segmenter and reason label values (default ``LabelBudget()``).

    Example:
        >>> registry = CollectorRegistry()
        >>> metrics = build_metrics(registry)
        >>> metrics.record_rejected("unet", "1.2", "corrupt")
        >>> registry.get_sample_value(
        ...     "cmr_monitor_files_rejected_total",
        ...     {"segmenter": "unet", "segmenter_version": "1.2", "reason": "corrupt"},
        ... )
        1.0
    """
    structure_labels = (*_SEGMENTER_LABELS, "structure")
    build = Info("cmr_monitor_build", "cmr-monitor build: version and Python", registry=registry)
    build.info({"version": __version__, "python_version": platform.python_version()})
    database = Histogram(
        "cmr_monitor_database_seconds",
        "Seconds of each successful database call of the daemon, by operation",
        ["operation"],
        buckets=DATABASE_BUCKETS_S,
        registry=registry,
    )
    for operation in DATABASE_OPERATIONS:  # every series from zero, so that rate() sees the first call
        database.labels(operation=operation)
    artifact_errors = Counter(
        "cmr_monitor_artifact_errors",
        "Artifact writes that failed (the file's scores are recorded without them), by errno: EROFS "
        "read-only, ENOSPC full, EDQUOT quota, EACCES/EPERM permission, EIO, other",
        ["errno"],
        registry=registry,
    )
    for name in (*ARTIFACT_ERRNOS, OTHER):
        artifact_errors.labels(errno=name)
    artifacts_writable = Gauge(
        "cmr_monitor_artifacts_writable",
        "1 while the artifacts folder takes writes, 0 after a failed write until a write or probe succeeds",
        registry=registry,
    )
    artifacts_writable.set(1)
    images = Counter(
        "cmr_monitor_images",
        "Scored files by what became of their MR image: used as evidence, or why not (not_found, "
        "geometry_mismatch, unreadable, disabled, not_evaluated)",
        ["outcome"],
        registry=registry,
    )
    for outcome in IMAGE_OUTCOMES:
        images.labels(outcome=outcome)
    return DaemonMetrics(
        files_received=Counter(
            "cmr_monitor_files_received",
            "Complete mask files handed to the queue (new path or content), by segmenter version",
            _SEGMENTER_LABELS,
            registry=registry,
        ),
        files_scored=Counter(
            "cmr_monitor_files_scored",
            "Mask files scored, by segmenter version and flag level of the file",
            (*_SEGMENTER_LABELS, "flag"),
            registry=registry,
        ),
        files_rejected=Counter(
            "cmr_monitor_files_rejected",
            "Mask files rejected, by segmenter version and reason code",
            (*_SEGMENTER_LABELS, "reason"),
            registry=registry,
        ),
        flags=Counter(
            "cmr_monitor_flags",
            "Verdicts on structures of scored files (level ok, suspicious or erroneous), by segmenter "
            "version and structure",
            (*structure_labels, "level"),
            registry=registry,
        ),
        flag_reasons=Counter(
            "cmr_monitor_flag_reasons",
            "Reason codes of flagged structures of scored files (missing, vanished, phd_high, pdsc_low), "
            "by segmenter version and structure",
            (*structure_labels, "reason"),
            registry=registry,
        ),
        pdsc=Histogram(
            "cmr_monitor_pdsc_ratio",
            "Pseudo Dice (0-1) of each structure of scored files",
            structure_labels,
            buckets=PDSC_BUCKETS,
            registry=registry,
        ),
        phd_mm=Histogram(
            "cmr_monitor_phd_millimeters",
            "Pseudo Hausdorff distance (mm) of each structure of scored files",
            structure_labels,
            buckets=PHD_BUCKETS_MM,
            registry=registry,
        ),
        scoring_latency=Histogram(
            "cmr_monitor_scoring_latency_seconds",
            "Seconds from a mask file being complete to its scored row",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        queue_wait=Histogram(
            "cmr_monitor_queue_wait_seconds",
            "Seconds from a mask file being complete to its claim by a worker",
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        ),
        batch_duration=Histogram(
            "cmr_monitor_scoring_batch_duration_seconds",
            "Seconds to load, score, write and record one batch of files",
            buckets=_BATCH_BUCKETS_S,
            registry=registry,
        ),
        transient_errors=Counter(
            "cmr_monitor_transient_errors",
            "Failures that were retried, by kind",
            ["kind"],
            registry=registry,
        ),
        database=database,
        artifact_errors=artifact_errors,
        artifacts_writable=artifacts_writable,
        images=images,
        reclaim_blocked=Gauge(
            "cmr_monitor_reclaim_blocked_files",
            "Expired claims that the last reclaim could not take back because another session holds them "
            "locked (a peer frozen in the middle of a transaction)",
            registry=registry,
        ),
        files_waiting=Gauge(
            "cmr_monitor_files_waiting", "Files seen but not yet handed to the queue", registry=registry
        ),
        ready=Gauge(
            "cmr_monitor_ready",
            "1 while the daemon can take work (its /readyz answers 200), else 0",
            registry=registry,
        ),
        model=Info(
            "cmr_monitor_model",
            "Autoencoder checkpoint in use: sha256, creation time, cmr-monitor version that trained it, "
            "device, database id",
            registry=registry,
        ),
        build=build,
        lvef_error=Histogram(
            "cmr_monitor_lvef_estimated_error_ratio",
            "Estimated absolute LV ejection fraction error of each patient whose ED and ES are scored "
            "(a fraction: 0.05 is 5 percentage points), by segmenter version",
            _SEGMENTER_LABELS,
            buckets=LVEF_ERROR_BUCKETS,
            registry=registry,
        ),
        budget=budget if budget is not None else LabelBudget(),
    )
