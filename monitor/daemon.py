"""The watch daemon: folders in, scored (or rejected) rows out, until told to stop.

Threads and their one job each:

- the *observer* (watchdog: inotify, or polling for NFS/SMB shares) only puts sightings on a queue;
- the *intake* loop (the thread that calls ``run``) waits on "queue item or poll interval", tracks each
  file until it is complete (``monitor.ingest.CompletionTracker``), hashes it, names it, validates it
  and enqueues it in the database (an invalid file is enqueued and rejected at once); it also rescans
  the folders now and then (missed events) and takes back work of dead workers;
- the *worker* claims batches from the database (several daemons may share it), scores them on the
  model's device, writes the artifacts and records each file's results in one transaction.

Database outages, out-of-memory and artifact write failures are retried with backoff; nothing is
dropped, because a file leaves the intake only once its row is committed and a claimed row goes back to
the queue when its worker stops or dies. ``stop()`` is idempotent: the intake stops taking files, the
worker finishes its batch (or releases it after ``shutdown_timeout_s``) and ``run`` returns.

Example::

    daemon = Daemon(DaemonConfig(roots=(Path("/data/incoming"),), database_url="sqlite:///m.db",
                                 artifacts_dir=Path("/data/artifacts")))
    with on_stop(daemon.stop):
        daemon.run()
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import queue
import random
import shutil
import signal
import socket
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

from monitor.config import Settings
from monitor.errors import InvalidMask, StoreError
from monitor.ingest import (
    CompletionTracker,
    IngestConfig,
    MaskIdentity,
    SidecarError,
    find_root,
    identify,
    is_candidate,
    mask_stem,
    sidecar_paths,
)
from monitor.labels import LabelMap, get_label_map
from monitor.nifti import Limits, MaskVolume, load_mask, save_labels
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    DatabaseUnavailable,
    FileStateError,
    check_at_head,
    claim_batch,
    enqueue_file,
    make_engine,
    make_session_factory,
    normalise_url,
    reclaim_expired,
    record_rejection,
    record_scores,
    register_model,
    release,
    safe_url,
    upgrade,
)
from monitor.store.daemon_queries import (
    QueueState,
    known_paths,
    last_scoring_model,
    queue_state,
    requeue_worker,
    scoring_workers,
)
from monitor.telemetry import (
    DEFAULT_METRICS_ADDR,
    DEFAULT_METRICS_PORT,
    DaemonMetrics,
    DatabaseOperation,
    QueueCollector,
    TelemetryServer,
    build_metrics,
    serve_http,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from watchdog.observers.api import BaseObserver

    from monitor.records import VolumeScore
    from monitor.scoring import ScoredVolume
    from monitor.store import ClaimedFile

__all__ = [
    "TRANSIENT_REASONS",
    "Daemon",
    "DaemonConfig",
    "ScorerLike",
    "artifact_paths",
    "on_stop",
    "worker_identity",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Rejection reasons of ``load_mask`` that a file still being written can give: such a file is
#: retried until ``incomplete_timeout_s`` after its last change before it is rejected.
TRANSIENT_REASONS: frozenset[str] = frozenset(
    {"empty_file", "corrupt", "truncated", "not_nifti", "unreadable"}
)
_REASON_CHANGED = "content_changed"
_REASON_SCORING_FAILED = "scoring_failed"
_REASON_BAD_NAME = "bad_name"
#: Rejections that say nothing bad about the file at the path now: it is not moved to quarantine.
_NOT_QUARANTINED = frozenset({"missing", _REASON_CHANGED, _REASON_SCORING_FAILED})
_BACKOFF_INITIAL_S = 0.5
_BACKOFF_MAX_S = 30.0
_HEARTBEAT_STALE_S = 60.0


class ScorerLike(Protocol):
    """What the daemon needs of ``monitor.scoring.Scorer`` (tests inject a fake)."""

    checkpoint_sha256: str

    def score_batch(self, volumes: Sequence[MaskVolume]) -> list[ScoredVolume]: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    """What the daemon watches and how; ``settings`` holds the rest (database, artifacts folder, model,
    device, label map, input limits, flag thresholds)."""

    roots: tuple[Path, ...]  #: watched folders (absolute, existing), searched recursively
    settings: Settings  #: database_url, artifacts_dir (outside the watched folders), scoring settings
    quarantine_dir: Path | None = None  #: rejected files are moved here (outside the watched folders)
    migrate: bool = False  #: upgrade the schema to head at start instead of refusing an old one
    ingest: IngestConfig = field(default_factory=IngestConfig)  #: file patterns and naming
    polling: bool = False  #: poll the folders instead of inotify (NFS/SMB shares)
    poll_interval_s: float = 1.0  #: polling period; also the longest idle wait of the loops
    stable_s: float = 2.0  #: size and mtime unchanged this long = complete (without a close event)
    incomplete_timeout_s: float = 60.0  #: not parsing this long after its last change = rejected
    rescan_interval_s: float = 300.0  #: full rescan of the folders (missed events)
    batch_size: int = 8  #: files claimed and scored together
    lease_s: float = 600.0  #: a claim not finished in this time is taken back by ``reclaim_expired``
    max_attempts: int = 3  #: claims of one file before it is rejected ("too_many_attempts")
    shutdown_timeout_s: float = 30.0  #: how long stop() waits for the batch in flight
    metrics_addr: str = DEFAULT_METRICS_ADDR  #: address of the /metrics, /healthz, /readyz endpoint
    metrics_port: int | None = DEFAULT_METRICS_PORT  #: its port; 0 = any free port; None = no endpoint

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("at least one folder to watch is needed")
        for root in self.roots:
            if not root.is_absolute():
                raise ValueError(f"watched folders must be absolute paths, got {root}")
        for name in (
            "poll_interval_s",
            "lease_s",
            "shutdown_timeout_s",
            "incomplete_timeout_s",
            "rescan_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if not self.stable_s >= 0:
            raise ValueError(f"stable_s must be >= 0 seconds, got {self.stable_s}")
        if self.batch_size < 1 or self.max_attempts < 1:
            raise ValueError(
                f"batch_size and max_attempts must be >= 1, got {self.batch_size} and {self.max_attempts}"
            )
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        for name, folder in (("artifacts_dir", self.artifacts_dir), ("quarantine_dir", self.quarantine_dir)):
            if folder is None:
                continue
            root = find_root(folder.resolve(), [r.resolve() for r in self.roots])
            if root is not None and not _excluded_folder(folder.resolve(), root, self.ingest):
                raise ValueError(
                    f"{name} {folder} lies inside the watched folder {root}: the daemon would take its own "
                    "output as input; put it elsewhere (or in a hidden folder such as .artifacts)"
                )

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the results database (from ``settings``)."""
        return self.settings.database_url

    @property
    def artifacts_dir(self) -> Path:
        """Where pGT and inconsistency maps go (from ``settings``)."""
        return self.settings.artifacts_dir


def _excluded_folder(folder: Path, root: Path, config: IngestConfig) -> bool:
    """True when files under ``folder`` (inside ``root``) can never be candidates."""
    return not is_candidate(folder / "x.nii.gz", root, IngestConfig(include=("*",), exclude=config.exclude))


def worker_identity() -> str:
    """This process's worker id: ``host/boot/pid-namespace/pid`` (at most 200 characters).

    Two ids with the same host, boot and pid namespace name processes that can see each other, so a
    daemon can tell that the process behind another id is dead (``_is_dead_local_worker``).
    """
    return f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}/{os.getpid()}"[:200]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "nons"


def _is_dead_local_worker(worker_id: str, me: str) -> bool:
    """True when ``worker_id`` names a process on this machine (same boot, pid namespace) that is gone,
    or one on this host before its last reboot."""
    try:
        host, boot, namespace, pid_text = worker_id.rsplit("/", 3)
        my_host, my_boot, my_namespace, _ = me.rsplit("/", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != my_host or worker_id == me:
        return False
    if boot != my_boot:
        return boot != "noboot" and my_boot != "noboot"
    if namespace != my_namespace:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def artifact_paths(artifacts_dir: Path, file_id: int) -> dict[str, Path]:
    """Where the artifacts of a file go: ``<dir>/<file_id // 1000>/<file_id>_<kind>.nii.gz``.

    Named by file id only (no patient identifiers in paths), sharded by thousands.
    """
    folder = artifacts_dir / f"{file_id // 1000:06d}"
    return {kind: folder / f"{file_id}_{kind}.nii.gz" for kind in (ARTIFACT_PGT, ARTIFACT_INCONSISTENCY)}


@contextlib.contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on SIGTERM and SIGINT inside the block; restore the previous handlers after.

    Does nothing off the main thread (Python delivers signals to the main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, _frame: object) -> None:
        log.info(
            "signal received, stopping", extra={"action": "signal", "signal": signal.Signals(signum).name}
        )
        callback()

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class _Abandoned(Exception):
    """The shutdown deadline passed while a transient failure was being retried."""


@dataclass(frozen=True, slots=True)
class _Sighting:
    """What the observer saw: ``kind`` is change, closed, moved_in, gone (a file), gone_dir or dir."""

    kind: str
    path: Path


@dataclass(frozen=True, slots=True, kw_only=True)
class _Prepared:
    """A complete file, named and validated, waiting for its row."""

    size: int
    mtime_ns: int
    content_hash: str
    identity: MaskIdentity
    rejection: tuple[str, str] | None  #: (reason, detail) when the file is invalid
    received_at: datetime


class _Handler(FileSystemEventHandler):
    """Puts each relevant watchdog event on the queue; does nothing else."""

    def __init__(self, sink: queue.Queue[_Sighting | None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileClosedEvent):
            self._sink.put(_Sighting("closed", src))
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self._sink.put(_Sighting("change", src))
        elif isinstance(event, FileMovedEvent):
            self._sink.put(_Sighting("gone", src))
            self._sink.put(_Sighting("moved_in", Path(os.fsdecode(event.dest_path))))
        elif isinstance(event, FileDeletedEvent):
            self._sink.put(_Sighting("gone", src))
        elif isinstance(event, DirDeletedEvent):
            self._sink.put(_Sighting("gone_dir", src))
        elif isinstance(event, DirMovedEvent):
            self._sink.put(_Sighting("gone_dir", src))
            self._sink.put(_Sighting("dir", Path(os.fsdecode(event.dest_path))))
        elif isinstance(event, DirCreatedEvent):
            self._sink.put(_Sighting("dir", src))


def _default_scorer(config: DaemonConfig) -> ScorerLike:
    from monitor.scoring import Scorer

    return Scorer.from_settings(config.settings)


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _warn_if_checkpoint_changed(
    previous: tuple[int, str] | None, model_id: int, checkpoint_sha256: str
) -> None:
    """Warn when the checkpoint differs from the one that scored the last file: scores before and after
    come from different models and are not comparable (``cmr_monitor_model_info`` shows the new hash)."""
    if previous is None or previous[1] == checkpoint_sha256:
        return
    log.warning(
        "checkpoint changed: the last file was scored by model %d (sha256 %s...), this run uses model %d "
        "(sha256 %s...); scores before and after are not comparable",
        previous[0],
        previous[1][:12],
        model_id,
        checkpoint_sha256[:12],
        extra={
            "action": "checkpoint_changed",
            "previous_model_id": previous[0],
            "previous_checkpoint_sha256": previous[1],
            "model_id": model_id,
            "checkpoint_sha256": checkpoint_sha256,
        },
    )


def _refuse_special(path: Path, root: Path, st: os.stat_result) -> tuple[str, str] | None:
    """Why a candidate must not be opened, or None: it is not a regular file (a FIFO would block the
    intake, a device never ends), or it is a symbolic link that leads outside its watched folder."""
    if not stat.S_ISREG(st.st_mode):
        return "not_a_file", "path is not a regular file (a FIFO, socket or device)"
    try:  # the file itself or a folder on its way may be a link
        target = path.resolve(strict=True)
    except FileNotFoundError:
        return None  # gone: hashing finds that out and forgets the file
    except (OSError, RuntimeError):
        return "outside_folder", "symbolic link that cannot be resolved"
    if not target.is_relative_to(root):
        return "outside_folder", "symbolic link to a file outside the watched folder"
    return None


def _sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    torch = sys.modules.get("torch")
    if torch is None:
        return (MemoryError,)
    return (MemoryError, torch.cuda.OutOfMemoryError)


class Daemon:
    """Watches folders and scores the masks that appear in them (see the module docstring).

    Args:
        config: what to watch, where to write, how to score.
        registry: Prometheus registry for the metrics (a fresh one when None).
        scorer_factory: builds the scorer once ``run`` starts (default: ``monitor.scoring.Scorer``).
    """

    def __init__(
        self,
        config: DaemonConfig,
        *,
        registry: CollectorRegistry | None = None,
        scorer_factory: Callable[[DaemonConfig], ScorerLike] = _default_scorer,
    ) -> None:
        self.config = config
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics: DaemonMetrics = build_metrics(self.registry)
        self.registry.register(QueueCollector(self._queue_state))
        self.worker_id = worker_identity()
        self._scorer_factory = scorer_factory
        self._label_map: LabelMap = get_label_map(config.settings.label_map)
        self._limits = Limits.from_settings(config.settings)
        self._roots = tuple(r.resolve() for r in config.roots)
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._queue: queue.Queue[_Sighting | None] = queue.Queue()
        self._tracker = CompletionTracker(
            stable_s=config.stable_s, incomplete_timeout_s=config.incomplete_timeout_s
        )
        self._done: dict[Path, tuple[int, int]] = {}
        self._prepared: dict[Path, _Prepared] = {}
        self._db_ok = False
        self._db_blocked_until = 0.0
        self._db_backoff_s = _BACKOFF_INITIAL_S
        self._heartbeat = time.monotonic()
        self._started = False
        self._ready = False
        self._observer: BaseObserver | None = None
        self._worker: _Worker | None = None
        self._server: TelemetryServer | None = None
        self._engine: Engine | None = None
        self._sessions: sessionmaker[Session] | None = None

    # ------------------------------------------------------------------ control

    def stop(self) -> None:
        """Ask the daemon to stop: no new work; the batch in flight is finished or released. Idempotent."""
        if self._stop.is_set():
            return
        log.info("stop requested", extra={"action": "stopping"})
        self._stop.set()
        self._queue.put(None)
        if self._worker is not None:
            self._worker.wake()

    @property
    def stopping(self) -> bool:
        """True once ``stop()`` was called."""
        return self._stop.is_set()

    @property
    def metrics_url(self) -> str | None:
        """Base URL of the metrics and health endpoint, once it is serving."""
        return self._server.url if self._server is not None else None

    def _queue_state(self) -> QueueState:
        """The queue gauges' reading (from the scrape thread: a session of its own).

        Raises: DatabaseUnavailable; RuntimeError before the database is opened.
        """
        if self._sessions is None:
            raise RuntimeError("database not opened yet")
        with self._sessions() as session, self.metrics.database_call("queue_gauges"):
            return queue_state(session)

    def healthz(self) -> tuple[bool, str]:
        """Alive: the intake loop turned recently and the worker thread runs."""
        if self._started and time.monotonic() - self._heartbeat > _HEARTBEAT_STALE_S:
            return False, "intake loop stalled"
        if self._worker is not None and not self._worker.is_alive() and not self.stopping:
            return False, "worker thread died"
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        """Ready: started, not stopping, database reachable, watcher running."""
        if self.stopping:
            return False, "stopping"
        if not self._ready:
            return False, "starting"
        if not self._db_ok:
            return False, "database unavailable"
        if self._observer is not None and not self._observer.is_alive():
            return False, "file watcher not running"
        return True, "ok"

    # ------------------------------------------------------------------ main

    def run(self) -> None:
        """Start, watch and score until ``stop()``; then shut down within ``shutdown_timeout_s``.

        Raises: StoreError when the database schema is not at head (and ``migrate`` is off) or the
            database URL is unusable; OSError when the metrics port cannot be bound;
            CheckpointError when the model cannot be loaded.
        """
        config = self.config
        if config.metrics_port is not None:
            self._server = serve_http(
                self.registry,
                healthz=self.healthz,
                readyz=self.readyz,
                addr=config.metrics_addr,
                port=config.metrics_port,
            )
            log.info(
                "metrics and health at %s",
                self._server.url,
                extra={"action": "http", "url": self._server.url},
            )
        try:
            if not self._start():
                return
            self._loop()
        finally:
            self._shutdown()

    def _start(self) -> bool:
        """Everything before the loop; False when stopped while waiting for the database."""
        config = self.config
        new_database = _is_new_sqlite_file(config.database_url)  # before connecting creates it
        self._engine = make_engine(config.database_url, **_engine_options(config.database_url))
        self._sessions = make_session_factory(self._engine)
        try:
            self._retry("database", self._probe_database, until=self._stop, operation="startup")
            self._check_schema(migrate=config.migrate or new_database)
            scorer = self._scorer_factory(config)
            meta = getattr(scorer, "meta", None)
            metadata = {
                "checkpoint": str(getattr(scorer, "checkpoint_path", config.settings.checkpoint or "")),
                **(_json_safe(asdict(meta)) if meta is not None else {}),
            }
            with self._sessions() as session:
                previous = self._retry(
                    "database", lambda: last_scoring_model(session), until=self._stop, operation="startup"
                )
                model_id = self._retry(
                    "database",
                    lambda: register_model(session, scorer.checkpoint_sha256, metadata),
                    until=self._stop,
                    operation="startup",
                )
                _warn_if_checkpoint_changed(previous, model_id, scorer.checkpoint_sha256)
                self._retry(
                    "database",
                    lambda: self._take_back_dead_work(session),
                    until=self._stop,
                    operation="maintain",
                )
            self.metrics.set_model(
                checkpoint_sha256=scorer.checkpoint_sha256,
                created=str(metadata.get("created_utc", "")),
                trained_with=str(metadata.get("package_version", "")),
                device=str(getattr(scorer, "device", "")),
                precision=str(getattr(scorer, "precision", "")),
                model_id=model_id,
            )
            self._start_observer()
            self._backfill()
        except _Abandoned:
            return False
        self._worker = _Worker(self, scorer, model_id)
        self._worker.start()
        self._started = self._ready = True
        self.metrics.ready.set(1)
        log.info(
            "watching %d folder(s) as worker %s (%s)",
            len(self._roots),
            self.worker_id,
            "polling" if config.polling else "inotify",
            extra={"action": "started", "database": safe_url(config.database_url)},
        )
        return True

    def _probe_database(self) -> None:
        """Raise DatabaseUnavailable unless the database answers."""
        import sqlalchemy as sa

        assert self._engine is not None  # set by _start
        try:
            with self._engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc

    def _check_schema(self, *, migrate: bool) -> None:
        """Refuse a schema that is not at head, unless ``migrate`` (upgrade it first).

        Raises: StoreError naming the revision found and the command that fixes it.
        """
        url = self.config.database_url
        if migrate:
            upgrade(url)
            log.info("database schema at head", extra={"action": "db_upgrade"})
        check_at_head(url)

    def _loop(self) -> None:
        config = self.config
        now = time.monotonic()
        next_rescan = now + config.rescan_interval_s
        next_reclaim = now + min(config.lease_s / 2, 60.0)
        while not self._stop.is_set():
            self._heartbeat = now = time.monotonic()
            next_check = self._tracker.next_check()
            wake_at = min(
                now + config.poll_interval_s,
                next_rescan,
                next_reclaim,
                math.inf if next_check is None else max(next_check, self._db_blocked_until),
            )
            try:
                self._drain_queue(timeout_s=max(0.0, wake_at - now))
                if self._stop.is_set():
                    break
                self._check_due()
                now = time.monotonic()
                if now >= next_rescan:
                    next_rescan = now + config.rescan_interval_s
                    for root in self._roots:
                        self._scan(root)
                if now >= next_reclaim:
                    next_reclaim = now + min(config.lease_s / 2, 60.0)
                    self._maintain()
            except Exception as exc:  # one bad file or a bug must not end the daemon
                _log_unexpected("intake step failed; continuing", exc, action="intake_error")
                self._stop.wait(config.poll_interval_s)
            self.metrics.files_waiting.set(len(self._tracker))

    def _drain_queue(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for a sighting, then handle every queued one (None = stop)."""
        try:
            item = self._queue.get(timeout=timeout_s)
            while item is not None:
                self._on_sighting(item)
                item = self._queue.get_nowait()
        except queue.Empty:
            pass

    def _shutdown(self) -> None:
        self._ready = False
        self.metrics.ready.set(0)
        self._stop.set()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        if self._observer is not None:
            self._observer.stop()
        if self._worker is not None:
            self._worker.wake()
            self._worker.join(timeout=max(0.0, deadline - time.monotonic()))
            if self._worker.is_alive():
                log.warning("batch not finished in time; giving it back", extra={"action": "abandon"})
                self._abandon.set()
                self._worker.join(timeout=2.0)
            self._release(self._worker.unfinished())
        if self._observer is not None:
            self._observer.join(timeout=2.0)
        if self._server is not None:
            self._server.close()
        if self._engine is not None:
            self._engine.dispose()
        log.info("stopped", extra={"action": "stopped"})

    def _release(self, file_ids: set[int]) -> None:
        """Give unfinished claims back to the queue (best effort: otherwise their leases expire)."""
        if not file_ids or self._sessions is None:
            return
        try:
            with self._sessions() as session, self.metrics.database_call("release"):
                n = release(session, file_ids, worker_id=self.worker_id)
            log.info("released %d claimed file(s)", n, extra={"action": "release", "files": n})
        except StoreError as exc:
            log.warning(
                "could not release %d claimed file(s), their leases will expire: %s",
                len(file_ids),
                exc,
                extra={"action": "release_failed"},
            )

    # ------------------------------------------------------------------ watching

    def _start_observer(self) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver

        # watchdog warns (on stderr, outside logging) when a folder's watch is added twice, e.g. for a
        # folder created while the recursive watch is being set up; the warning is harmless and
        # spells out watched paths, which may name patients.
        warnings.filterwarnings(
            "ignore", message="Callback with id .* already exists", category=RuntimeWarning
        )
        handler = _Handler(self._queue)
        if not self.config.polling:
            observer: BaseObserver = Observer()
            try:
                for root in self._roots:
                    observer.schedule(handler, str(root), recursive=True)
                observer.start()
                self._observer = observer
                return
            except OSError as exc:  # inotify watch or instance limit reached
                log.warning(
                    "inotify unavailable (%s); falling back to polling every %.1f s",
                    exc,
                    self.config.poll_interval_s,
                    extra={"action": "polling_fallback"},
                )
                with contextlib.suppress(Exception):
                    observer.stop()
        observer = PollingObserver(timeout=self.config.poll_interval_s)
        for root in self._roots:
            observer.schedule(handler, str(root), recursive=True)
        observer.start()
        self._observer = observer

    def _backfill(self) -> None:
        """Track every file under the roots that the database does not know (or knows an older version of)."""
        assert self._sessions is not None
        known: dict[str, datetime] = {}
        with self._sessions() as session:
            for root in self._roots:
                known.update(
                    self._retry(
                        "database",
                        lambda root=root: known_paths(session, f"{root}{os.sep}"),
                        until=self._stop,
                        operation="startup",
                    )
                )
        n_known = 0
        for root in self._roots:
            n_known += self._scan(root, known)
        log.info(
            "backfill: %d file(s) already known, %d to check",
            n_known,
            len(self._tracker),
            extra={"action": "backfill", "known": n_known, "to_check": len(self._tracker)},
        )

    def _scan(self, folder: Path, known: dict[str, datetime] | None = None) -> int:
        """Observe every candidate file under ``folder``; return how many were already done."""
        done = 0
        now, wall = time.monotonic(), time.time()
        for dirpath, dirnames, filenames in os.walk(folder, onerror=lambda exc: None):
            here = Path(dirpath)
            dirnames.sort()
            for name in sorted(filenames):
                path = here / name
                root = find_root(path, self._roots)
                if root is None or not is_candidate(path, root, self.config.ingest):
                    continue
                try:
                    st = path.stat()
                except OSError:
                    continue
                stat_key = (st.st_size, st.st_mtime_ns)
                if self._done.get(path) == stat_key:
                    done += 1
                    continue
                if known is not None and str(path) in known and st.st_mtime <= known[str(path)].timestamp():
                    self._done[path] = stat_key
                    done += 1
                    continue
                self._tracker.observe(path, *stat_key, now=now, age_s=wall - st.st_mtime)
        return done

    def _on_sighting(self, sighting: _Sighting) -> None:
        path = sighting.path
        if sighting.kind == "gone":
            self._forget(path)
            return
        if sighting.kind == "gone_dir":
            self._forget_under(path)
            return
        if sighting.kind == "dir":
            self._scan(path)
            return
        root = find_root(path, self._roots)
        if root is None or not is_candidate(path, root, self.config.ingest):
            return
        try:
            st = path.stat()
        except OSError:
            self._forget(path)
            return
        stat_key = (st.st_size, st.st_mtime_ns)
        if self._done.get(path) == stat_key:
            return
        self._tracker.observe(
            path,
            *stat_key,
            now=time.monotonic(),
            closed=sighting.kind in ("closed", "moved_in"),
            age_s=time.time() - st.st_mtime,
        )

    def _forget(self, path: Path) -> None:
        """Drop one file from the intake's memory (deleted, moved away or vanished)."""
        self._tracker.forget(path)
        self._done.pop(path, None)
        self._prepared.pop(path, None)

    def _forget_under(self, path: Path) -> None:
        """Drop ``path`` and everything below it from the intake's memory (deleted or moved away)."""
        self._tracker.forget_under(path)
        for table in (self._done, self._prepared):
            for known in [p for p in table if p == path or p.is_relative_to(path)]:
                del table[known]

    # ------------------------------------------------------------------ intake

    def _check_due(self) -> None:
        now = time.monotonic()
        if now < self._db_blocked_until:
            return
        for path in self._tracker.due(now):
            if self._stop.is_set():
                return
            self._take(path)
            if time.monotonic() < self._db_blocked_until:
                return

    def _take(self, path: Path) -> None:
        """Check one due file; enqueue it when complete (or rejected), defer it otherwise."""
        now = time.monotonic()
        try:
            st = path.stat()
        except OSError:
            self._forget(path)
            return
        if not self._tracker.matches(path, st.st_size, st.st_mtime_ns):
            self._tracker.observe(path, st.st_size, st.st_mtime_ns, now=now)
            return
        prepared = self._prepared.get(path)
        if prepared is None or (prepared.size, prepared.mtime_ns) != (st.st_size, st.st_mtime_ns):
            prepared = self._prepare(path, st, now)
            if prepared is None:
                return
            self._prepared[path] = prepared
        if self._enqueue(path, prepared):
            self._prepared.pop(path, None)
            self._tracker.forget(path)
            self._done[path] = (prepared.size, prepared.mtime_ns)

    def _prepare(self, path: Path, st: os.stat_result, now: float) -> _Prepared | None:
        """Hash, name and validate a complete file; None when it is deferred (it may still be being
        written: it does not parse, its sidecar does not, or it cannot be read) or has vanished."""
        root = find_root(path, self._roots)
        assert root is not None  # tracked paths are under a root
        problem: tuple[str, str, bool] | None = None  # (reason, detail, may still be being written)
        refusal = _refuse_special(path, root, st)
        try:
            if refusal is not None:  # never open a FIFO, a device or a file outside the folder
                content_hash = f"{refusal[0]}:{st.st_size}:{st.st_mtime_ns}"
                problem = (*refusal, False)
            else:
                content_hash = _sha256(path)
        except FileNotFoundError:
            self._forget(path)
            return None
        except OSError as exc:
            content_hash = f"unreadable:{st.st_size}:{st.st_mtime_ns}"
            problem = ("unreadable", f"the file cannot be read: {exc.strerror or type(exc).__name__}", True)
        try:
            identity = identify(path, root, self.config.ingest)
        except SidecarError as exc:
            identity = self._fallback_identity(path, root)
            problem = problem or (exc.reason, exc.detail, True)
        except ValueError as exc:
            identity = self._fallback_identity(path, root)
            problem = problem or (_REASON_BAD_NAME, str(exc), False)
        if problem is None:
            try:
                load_mask(path, self._label_map, self._limits)
            except InvalidMask as exc:
                if exc.reason == "missing":
                    self._forget(path)
                    return None
                problem = (exc.reason, exc.detail, exc.reason in TRANSIENT_REASONS)
        try:  # the hash and the validation must describe one content: a write in between defers it
            after = path.stat()
        except OSError:
            self._forget(path)
            return None
        if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns):
            log.debug("changed while being checked: %s", path)
            self._tracker.observe(path, after.st_size, after.st_mtime_ns, now=time.monotonic())
            return None
        if problem is not None and problem[2] and not self._tracker.expired(path, now):
            log.debug("not complete yet: %s (%s)", path, problem[0])
            self._tracker.defer(path, now, max(self.config.stable_s, 1.0))
            return None
        return _Prepared(
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            content_hash=content_hash,
            identity=identity,
            rejection=problem[:2] if problem is not None else None,
            received_at=datetime.now(UTC),
        )

    def _fallback_identity(self, path: Path, root: Path) -> MaskIdentity:
        """A name for a file whose own naming failed, so that its rejection can be recorded."""
        try:
            return identify(path, root, self.config.ingest, use_sidecar=False)
        except ValueError:
            return MaskIdentity(
                case_key=mask_stem(path.name)[:200] or "unnamed",
                phase=None,
                segmenter_name=self.config.ingest.default_segmenter,
                segmenter_version=self.config.ingest.default_version,
            )

    def _enqueue(self, path: Path, prepared: _Prepared) -> bool:
        """Write the file's row (and its rejection); False when the database is down (retried later)."""
        assert self._sessions is not None
        identity = prepared.identity
        try:
            with self._sessions() as session:
                with self.metrics.database_call("enqueue"):
                    file_id, created = enqueue_file(
                        session,
                        path=str(path),
                        content_hash=prepared.content_hash,
                        case_key=identity.case_key,
                        phase=identity.phase,
                        segmenter_name=identity.segmenter_name,
                        segmenter_version=identity.segmenter_version,
                        site=identity.site,
                        scanner=identity.scanner,
                        image_path=identity.image_path,
                        received_at=prepared.received_at,
                    )
                self._log_received(file_id, created, path, identity)
                if prepared.rejection is not None:  # also when known: a rejection may have been lost
                    self._record_rejection(
                        session,
                        file_id,
                        *prepared.rejection,
                        path=path,
                        segmenter=(identity.segmenter_name, identity.segmenter_version),
                        blocking=False,
                    )
                elif created and self._worker is not None:
                    self._worker.wake()
        except DatabaseUnavailable as exc:
            self._db_ok = False
            self.metrics.transient_errors.labels(kind="database").inc()
            self._db_blocked_until = time.monotonic() + self._db_backoff_s
            log.warning(
                "database unavailable, holding %d file(s), retrying in %.1f s: %s",
                len(self._tracker),
                self._db_backoff_s,
                exc,
                extra={"action": "retry", "kind": "database"},
            )
            self._db_backoff_s = min(2 * self._db_backoff_s, _BACKOFF_MAX_S)
            return False
        self._db_ok = True
        self._db_backoff_s = _BACKOFF_INITIAL_S
        return True

    def _log_received(self, file_id: int, created: bool, path: Path, identity: MaskIdentity) -> None:
        if not created:
            log.debug("already known: %s (file %d)", path, file_id)
            return
        self.metrics.record_received(identity.segmenter_name, identity.segmenter_version)
        log.info(
            "received file %d (%s %s)",
            file_id,
            identity.segmenter_name,
            identity.segmenter_version,
            extra={"action": "received", "file_id": file_id},
        )
        log.debug("file %d is %s (case %s)", file_id, path, identity.case_key)

    def _maintain(self) -> None:
        """Take back expired claims and those of dead workers; restart a dead observer."""
        assert self._sessions is not None
        try:
            with self._sessions() as session, self.metrics.database_call("maintain"):
                reclaim_expired(session, max_attempts=self.config.max_attempts)
                self._take_back_dead_work(session)
            self._db_ok = True
        except DatabaseUnavailable as exc:
            self._db_ok = False
            log.warning("maintenance skipped: %s", exc, extra={"action": "maintenance_failed"})
        if self._observer is not None and not self._observer.is_alive() and not self._stop.is_set():
            log.warning(
                "file watcher died; restarting it and rescanning", extra={"action": "observer_restart"}
            )
            self._start_observer()
            for root in self._roots:
                self._scan(root)

    def _take_back_dead_work(self, session: Session) -> None:
        for worker_id in scoring_workers(session):
            if _is_dead_local_worker(worker_id, self.worker_id):
                requeue_worker(session, worker_id, max_attempts=self.config.max_attempts)

    # ------------------------------------------------------------------ shared by both threads

    def _record_rejection(
        self,
        session: Session,
        file_id: int,
        reason: str,
        detail: str,
        *,
        path: Path,
        segmenter: tuple[str, str],
        blocking: bool = True,
    ) -> bool:
        """Mark a file rejected (and quarantine it); False when it was already finished by someone else.

        ``segmenter`` (name, version) labels the rejection in the metrics."""
        try:
            if blocking:
                self._retry(
                    "database",
                    lambda: record_rejection(session, file_id, reason[:64], detail),
                    operation="reject",
                )
            else:
                with self.metrics.database_call("reject"):
                    record_rejection(session, file_id, reason[:64], detail)
        except FileStateError:  # already finished (by us before, or by another daemon)
            return False
        self.metrics.record_rejected(*segmenter, reason[:64])
        log.warning(
            "rejected file %d: %s",
            file_id,
            reason,
            extra={"action": "rejected", "file_id": file_id, "reason": reason},
        )
        log.debug("file %d (%s) rejected: %s", file_id, path, detail)
        if self.config.quarantine_dir is not None and reason not in _NOT_QUARANTINED:
            self._quarantine(file_id, path)
        return True

    def _quarantine(self, file_id: int, path: Path) -> None:
        """Move a rejected file (and its sidecar) under the quarantine folder, keeping its relative path."""
        assert self.config.quarantine_dir is not None
        root = find_root(path, self._roots)
        relative = path.relative_to(root) if root is not None else Path(path.name)
        target = self.config.quarantine_dir / relative
        n = 0
        while target.exists() or target.is_symlink():
            n += 1
            name = relative.name
            stem, suffix = mask_stem(name), name[len(mask_stem(name)) :]
            target = self.config.quarantine_dir / relative.parent / f"{stem}.{n}{suffix}"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(path, target)
            for sidecar in sidecar_paths(path):
                if sidecar.exists():
                    shutil.move(sidecar, target.with_name(target.name + ".json"))
        except OSError as exc:
            log.warning(
                "could not quarantine file %d: %s",
                file_id,
                type(exc).__name__,
                extra={"action": "quarantine_failed", "file_id": file_id},
            )
            return
        log.info("quarantined file %d", file_id, extra={"action": "quarantined", "file_id": file_id})

    def _retry(
        self,
        kind: str,
        fn: Callable[[], T],
        *,
        until: threading.Event | None = None,
        operation: DatabaseOperation | None = None,
    ) -> T:
        """Run ``fn``, retrying transient failures of ``kind`` (``database``: DatabaseUnavailable,
        otherwise OSError) with backoff until ``until`` is set (default: the shutdown deadline passed).

        ``operation`` names a database call in ``cmr_monitor_database_seconds``: the attempt that
        succeeds is observed; failed attempts and the waits between them are not (failures count in
        ``cmr_monitor_transient_errors_total``).

        Raises: _Abandoned when ``until`` is set while waiting to retry.
        """
        until = until if until is not None else self._abandon
        transient: tuple[type[BaseException], ...] = (
            (DatabaseUnavailable,) if kind == "database" else (OSError,)
        )
        delay = _BACKOFF_INITIAL_S
        while True:
            try:
                with self.metrics.database_call(operation) if operation else contextlib.nullcontext():
                    value = fn()
            except transient as exc:
                if kind == "database":
                    self._db_ok = False
                self.metrics.transient_errors.labels(kind=kind).inc()
                log.warning(
                    "%s failure, retrying in %.1f s: %s",
                    kind,
                    delay,
                    exc if kind == "database" else type(exc).__name__,
                    extra={"action": "retry", "kind": kind},
                )
                if until.wait(delay + random.uniform(0, delay / 4)):
                    raise _Abandoned(kind) from exc
                delay = min(2 * delay, _BACKOFF_MAX_S)
            else:
                if kind == "database":
                    self._db_ok = True
                return value


def _is_new_sqlite_file(url: str) -> bool:
    """True for a SQLite database file that does not exist yet or is empty (nothing to protect)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return False
    path = Path(parsed.database)
    return not path.exists() or path.stat().st_size == 0


def _engine_options(url: str) -> dict[str, Any]:
    """Connection options: fail fast and detect dead peers on PostgreSQL (outages are retried)."""
    if normalise_url(url).get_backend_name() == "postgresql":
        return {
            "connect_args": {
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
            "pool_recycle": 1800,
        }
    return {}


class _Worker(threading.Thread):
    """Claims batches from the database, scores them and records the results (one thread)."""

    def __init__(self, daemon: Daemon, scorer: ScorerLike, model_id: int) -> None:
        super().__init__(name="cmr-monitor-worker", daemon=True)
        self._d = daemon
        self._scorer = scorer
        self._model_id = model_id
        self._wake = threading.Event()
        self._in_flight: set[int] = set()
        self._lock = threading.Lock()

    def wake(self) -> None:
        """Look for work now instead of at the next poll."""
        self._wake.set()

    def unfinished(self) -> set[int]:
        """Claimed file ids without a recorded result (for release at shutdown)."""
        with self._lock:
            return set(self._in_flight)

    def run(self) -> None:
        d = self._d
        assert d._sessions is not None
        with d._sessions() as session:
            while not d._stop.is_set():
                try:
                    claimed = self._claim(session)
                except _Abandoned:
                    return
                if not claimed:
                    self._wake.wait(d.config.poll_interval_s)
                    self._wake.clear()
                    continue
                with self._lock:
                    self._in_flight = {c.file_id for c in claimed}
                try:
                    self._process(session, claimed)
                except _Abandoned:
                    return
                except Exception as exc:  # a bug must not end the worker
                    _log_unexpected("batch failed; its files go back to the queue", exc, action="batch_error")
                    self._requeue_own(session)
                    d._stop.wait(d.config.poll_interval_s)

    def _claim(self, session: Session) -> list[ClaimedFile]:
        """Claim the next batch. After a failed claim, first take back this worker's own ``scoring``
        rows: the claim may have committed while its answer was lost, and nothing is in flight now."""
        d = self._d
        lost_answer = False

        def claim() -> list[ClaimedFile]:
            nonlocal lost_answer
            try:
                if lost_answer:
                    requeue_worker(session, d.worker_id, max_attempts=d.config.max_attempts)
                    lost_answer = False
                return claim_batch(
                    session, worker_id=d.worker_id, limit=d.config.batch_size, lease_s=d.config.lease_s
                )
            except DatabaseUnavailable:
                lost_answer = True
                raise

        # nothing in flight: stop at once
        return d._retry("database", claim, until=d._stop, operation="claim")

    def _requeue_own(self, session: Session) -> None:
        """After a failed batch, put this worker's claims back (the claim counts, so a file that keeps
        failing ends ``too_many_attempts``); nothing else is in flight."""
        d = self._d
        with self._lock:
            self._in_flight.clear()
        with contextlib.suppress(_Abandoned):  # stopping: the leases expire instead
            d._retry(
                "database",
                lambda: requeue_worker(session, d.worker_id, max_attempts=d.config.max_attempts),
                until=d._stop,
                operation="requeue",
            )

    def _done_with(self, file_id: int) -> None:
        with self._lock:
            self._in_flight.discard(file_id)

    def _process(self, session: Session, claimed: list[ClaimedFile]) -> None:
        d = self._d
        started = time.perf_counter()
        claimed_at = datetime.now(UTC)
        loaded: list[tuple[ClaimedFile, MaskVolume]] = []
        for item in claimed:
            d.metrics.record_claimed((claimed_at - item.received_at).total_seconds())
            volume = self._load(item)
            if isinstance(volume, MaskVolume):
                loaded.append((item, volume))
            else:
                d._record_rejection(
                    session, item.file_id, *volume, path=Path(item.path), segmenter=_segmenter_of(item)
                )
                self._done_with(item.file_id)
        for item, volume, result in self._score(session, loaded):
            self._finish(session, item, volume, result)
        d.metrics.batch_duration.observe(time.perf_counter() - started)

    def _load(self, item: ClaimedFile) -> MaskVolume | tuple[str, str]:
        """The claimed file as a volume, or (reason, detail) when it cannot be scored."""
        path = Path(item.path)
        try:
            before = path.stat()
            digest = _sha256(path)
            volume = load_mask(path, self._d._label_map, self._d._limits)
            after = path.stat()
        except FileNotFoundError:
            return "missing", "the file vanished before it could be scored"
        except InvalidMask as exc:
            return exc.reason, exc.detail
        except OSError as exc:
            return "unreadable", f"the file cannot be read: {exc.strerror or type(exc).__name__}"
        unchanged = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
        if digest != item.content_hash or not unchanged:
            return _REASON_CHANGED, "the file changed after it was received; its new content is queued anew"
        return volume

    def _score(
        self, session: Session, items: list[tuple[ClaimedFile, MaskVolume]]
    ) -> Iterator[tuple[ClaimedFile, MaskVolume, ScoredVolume]]:
        """Score ``items`` together; on out-of-memory split the batch, on an error isolate the culprit."""
        if not items:
            return
        d = self._d
        delay = _BACKOFF_INITIAL_S
        while True:
            try:
                results = self._scorer.score_batch([volume for _, volume in items])
            except _out_of_memory_errors() as exc:
                d.metrics.transient_errors.labels(kind="out_of_memory").inc()
                _free_device_memory()
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
                if d._abandon.wait(delay):
                    raise _Abandoned("out_of_memory") from exc
                delay = min(2 * delay, _BACKOFF_MAX_S)
                continue
            except Exception as exc:
                if len(items) > 1:
                    for single in items:
                        yield from self._score(session, [single])
                    return
                item = items[0][0]
                _log_unexpected(f"scoring failed for file {item.file_id}", exc, action="scoring_failed")
                d._record_rejection(
                    session,
                    item.file_id,
                    _REASON_SCORING_FAILED,
                    f"the scorer failed on this mask: {type(exc).__name__}: {exc}",
                    path=Path(item.path),
                    segmenter=_segmenter_of(item),
                )
                self._done_with(item.file_id)
                return
            for (item, volume), result in zip(items, results, strict=True):
                yield item, volume, result
            return

    def _finish(self, session: Session, item: ClaimedFile, volume: MaskVolume, result: ScoredVolume) -> None:
        """Write the artifacts, then record the scores in one transaction."""
        d = self._d
        paths = artifact_paths(d.config.artifacts_dir, item.file_id)

        def write() -> None:
            save_labels(paths[ARTIFACT_PGT], result.pgt, volume.affine, label_map=d._label_map)
            save_labels(paths[ARTIFACT_INCONSISTENCY], result.inconsistency, volume.affine)

        d._retry("artifacts", write)
        score: VolumeScore = result.score
        try:
            d._retry(
                "database",
                lambda: record_scores(
                    session,
                    item.file_id,
                    score,
                    model_id=self._model_id,
                    artifacts={kind: str(p) for kind, p in paths.items()},
                ),
                operation="record",
            )
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
        d.metrics.record_scored(item.segmenter_name, item.segmenter_version, score, latency_s)
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


def _segmenter_of(item: ClaimedFile) -> tuple[str, str]:
    return item.segmenter_name, item.segmenter_version


def _log_unexpected(message: str, exc: BaseException, *, action: str) -> None:
    """An unexpected error: its type at ERROR, the traceback (which may name files) only at DEBUG."""
    log.error("%s: %s", message, type(exc).__name__, extra={"action": action})
    log.debug("%s", message, exc_info=exc)


def _free_device_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
