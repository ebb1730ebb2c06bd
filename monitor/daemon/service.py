"""The watch daemon: folders in, scored (or rejected) rows out, until told to stop.

Threads and their one job each:

- the *observer* (``monitor.daemon.watch``: inotify, or polling for NFS/SMB shares) only puts sightings
  on a queue;
- the *intake* loop (the thread that calls ``run``) waits on "queue item or poll interval" and hands
  each sighting to ``monitor.daemon.intake.Intake``, which tracks files until they are complete,
  hashes, names, validates and enqueues them in the database; the loop also rescans the folders now
  and then (missed events) and takes back work of dead workers;
- the *worker* (``monitor.daemon.worker.Worker``) claims batches from the database (several daemons may
  share it), scores them on the model's device, writes the artifacts and records each file's results
  in one transaction;
- the *maintenance* thread (``monitor.daemon.maintenance.Maintenance``) takes back expired claims and
  those of dead workers, skipping rows a frozen peer holds locked, and probes a failing artifacts
  folder.

``Daemon`` itself only starts, wires and stops these parts. Database outages and out-of-memory are
retried with backoff (``monitor.daemon.retry``); an artifact write that fails is given up for that file
only (``monitor.daemon.artifacts``). Nothing is dropped, because a file leaves the intake only once its
row is committed and a claimed row goes back to the queue when its worker stops or dies. ``/readyz``
names what keeps the daemon from working fully: the database, a loop step without progress
(``LoopWatch``), claims a frozen peer keeps locked, a failing artifacts folder, the watcher. ``stop()``
is idempotent: the intake stops taking files, the worker finishes its batch (or releases it after
``shutdown_timeout_s``) and ``run`` returns.

Example::

    daemon = Daemon(DaemonConfig(roots=(Path("/data/incoming"),), settings=get_settings()))
    with on_stop(daemon.stop):
        daemon.run()
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from monitor.daemon.artifacts import ArtifactsFolder
from monitor.daemon.config import DaemonConfig
from monitor.daemon.intake import Intake
from monitor.daemon.liveness import worker_identity
from monitor.daemon.maintenance import Maintenance
from monitor.daemon.rejection import Rejections
from monitor.daemon.retry import Abandoned, DatabaseHealth, Retry
from monitor.daemon.startup import open_database, probe_database, register_scorer
from monitor.daemon.watch import Sighting, start_observer
from monitor.daemon.worker import ScorerLike, Worker, WorkerContext, log_unexpected
from monitor.errors import StoreError
from monitor.io.clinical import LazyCalibration
from monitor.io.nifti import Limits
from monitor.qc.clinical import ClinicalPolicy
from monitor.qc.labels import get_label_map
from monitor.store import (
    QueueState,
    SessionTimeouts,
    check_at_head,
    known_paths,
    make_session_factory,
    queue_state,
    release,
    safe_url,
    upgrade,
)
from monitor.telemetry import LoopWatch, QueueCollector, TelemetryServer, build_metrics, serve_http

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.orm import Session, sessionmaker
    from watchdog.observers.api import BaseObserver

__all__ = ["Daemon"]

log = logging.getLogger(__name__)

_HEARTBEAT_STALE_S = 60.0


def _default_scorer(config: DaemonConfig) -> ScorerLike:
    from monitor.model.scorer import Scorer

    return Scorer.from_settings(config.settings)


class Daemon:
    """Watches folders and scores the masks that appear in them (see the module docstring).

    Args:
        config: what to watch, where to write, how to score.
        registry: Prometheus registry for the metrics (a fresh one when None).
        scorer_factory: builds the scorer once ``run`` starts (default: ``monitor.model.Scorer``).
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
        self.metrics = build_metrics(self.registry)
        self.registry.register(QueueCollector(self._queue_state))
        self.loops = LoopWatch()
        self.registry.register(self.loops)
        self.metrics.ready.set_function(lambda: 1.0 if self.readyz()[0] else 0.0)
        self.worker_id = worker_identity()
        self._scorer_factory = scorer_factory
        self._roots = tuple(r.resolve() for r in config.roots)
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._sightings: queue.Queue[Sighting | None] = queue.Queue()
        self._health = DatabaseHealth()
        self._retry = Retry(self.metrics, self._health, self._abandon)
        self._rejections = Rejections(
            quarantine_dir=config.quarantine_dir, roots=self._roots, metrics=self.metrics, retry=self._retry
        )
        self._label_map = get_label_map(config.settings.label_map)
        self._artifacts = ArtifactsFolder(
            config.artifacts_dir, metrics=self.metrics, label_map=self._label_map
        )
        self._maintenance: Maintenance | None = None
        self._heartbeat = time.monotonic()
        self._started = False
        self._ready = False
        self._intake: Intake | None = None
        self._observer: BaseObserver | None = None
        self._worker: Worker | None = None
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
        self._sightings.put(None)
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
        """Alive: the intake loop turned recently and the worker and maintenance threads run."""
        if self._started and time.monotonic() - self._heartbeat > _HEARTBEAT_STALE_S:
            return False, "intake loop stalled"
        if self._worker is not None and not self._worker.is_alive() and not self.stopping:
            return False, "worker thread died"
        if self._maintenance is not None and not self._maintenance.is_alive() and not self.stopping:
            return False, "maintenance thread died"
        return True, "ok"

    def readyz(self) -> tuple[bool, str]:
        """Ready: started, not stopping, database reachable, no loop step stalled, no expired claim kept
        locked by another session, artifacts folder writable, watcher running."""
        if self.stopping:
            return False, "stopping"
        if not self._ready:
            return False, "starting"
        if not self._health.ok:
            return False, "database unavailable"
        stalled = self.loops.stalled(self.config.settings.daemon_stall_s)
        if stalled:
            loop, seconds = stalled[0]
            return False, f"{loop} stalled: no progress for {seconds:.0f} s"
        blocked = self._maintenance.blocked if self._maintenance is not None else None
        if blocked is not None:
            count, since = blocked
            return False, (
                f"reclaim blocked: {count} expired claim(s) held locked by another session (a frozen peer?) "
                f"for {time.monotonic() - since:.0f} s"
            )
        problem = self._artifacts.problem
        if problem is not None:
            return False, f"artifacts folder failing: {problem.errno_name} ({problem.message})"
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
        self._engine, new_database = open_database(
            config.database_url, SessionTimeouts.from_settings(config.settings)
        )
        self._sessions = sessions = make_session_factory(self._engine)
        label_map = self._label_map
        limits = Limits.from_settings(config.settings)
        retry = self._retry
        try:
            engine = self._engine
            retry("database", lambda: probe_database(engine), until=self._stop, operation="startup")
            if config.migrate or new_database:
                upgrade(config.database_url)
                log.info("database schema at head", extra={"action": "db_upgrade"})
            check_at_head(config.database_url)
            scorer = self._scorer_factory(config)
            clinical_calibration = LazyCalibration(
                config.settings.clinical_calibration, enabled=config.settings.clinical
            )
            clinical_calibration.check()  # a missing file fails the start; loading waits for a patient
            with sessions() as session:
                model_id = register_scorer(
                    session,
                    scorer,
                    config=config,
                    worker_id=self.worker_id,
                    retry=retry,
                    stop=self._stop,
                    metrics=self.metrics,
                )
                known: dict[str, datetime] = {}
                for root in self._roots:
                    known.update(
                        retry(
                            "database",
                            lambda root=root: known_paths(session, f"{root}{os.sep}"),
                            until=self._stop,
                            operation="startup",
                        )
                    )
            self._observer = self._start_observer()
            self._intake = Intake(
                config,
                roots=self._roots,
                sessions=sessions,
                metrics=self.metrics,
                rejections=self._rejections,
                health=self._health,
                label_map=label_map,
                limits=limits,
                loops=self.loops,
                on_enqueued=self._wake_worker,
            )
            self._intake.backfill(known)
        except Abandoned:
            return False
        context = WorkerContext(
            config=config,
            worker_id=self.worker_id,
            sessions=sessions,
            metrics=self.metrics,
            retry=retry,
            rejections=self._rejections,
            label_map=label_map,
            limits=limits,
            artifacts=self._artifacts,
            loops=self.loops,
            stop=self._stop,
            abandon=self._abandon,
            clinical_policy=(
                ClinicalPolicy(lvef_error_limit_pct=config.settings.lvef_error_limit_pct)
                if config.settings.clinical
                else None
            ),
            clinical_calibration=clinical_calibration,
        )
        self._worker = Worker(context, scorer, model_id)
        self._worker.start()
        self._maintenance = Maintenance(
            config=config,
            worker_id=self.worker_id,
            sessions=sessions,
            metrics=self.metrics,
            health=self._health,
            loops=self.loops,
            artifacts=self._artifacts,
            stop=self._stop,
        )
        self._maintenance.start()
        self._started = self._ready = True
        log.info(
            "watching %d folder(s) as worker %s (%s)",
            len(self._roots),
            self.worker_id,
            "polling" if config.polling else "inotify",
            extra={"action": "started", "database": safe_url(config.database_url)},
        )
        return True

    def _start_observer(self) -> BaseObserver:
        return start_observer(
            self._roots,
            self._sightings,
            polling=self.config.polling,
            poll_interval_s=self.config.poll_interval_s,
        )

    def _wake_worker(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    def _loop(self) -> None:
        config, intake = self.config, self._intake
        assert intake is not None  # set by _start
        next_rescan = time.monotonic() + config.rescan_interval_s
        while not self._stop.is_set():
            self._heartbeat = now = time.monotonic()
            wake_at = min(now + config.poll_interval_s, next_rescan, intake.wake_at())
            try:
                first = self._next_sighting(timeout_s=max(0.0, wake_at - now))
                if self._stop.is_set():
                    break
                with self.loops.step("intake"):
                    self._drain_sightings(intake, first)
                    intake.check_due(stop=self._stop.is_set)
                    if time.monotonic() >= next_rescan:
                        next_rescan = time.monotonic() + config.rescan_interval_s
                        intake.rescan()
                    self._check_observer(intake)
            except Exception as exc:  # one bad file or a bug must not end the daemon
                log_unexpected("intake step failed; continuing", exc, action="intake_error")
                self._stop.wait(config.poll_interval_s)
            self.metrics.files_waiting.set(intake.waiting)

    def _next_sighting(self, timeout_s: float) -> Sighting | None:
        """Wait up to ``timeout_s`` for a sighting (None: none came, or stop)."""
        try:
            return self._sightings.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def _drain_sightings(self, intake: Intake, first: Sighting | None) -> None:
        """Handle ``first`` and every queued sighting (None = stop)."""
        item = first
        try:
            while item is not None:
                intake.on_sighting(item)
                self.loops.progress("intake")
                item = self._sightings.get_nowait()
        except queue.Empty:
            pass

    def _check_observer(self, intake: Intake) -> None:
        """Restart a dead observer and rescan (events may have been missed meanwhile)."""
        if self._observer is not None and not self._observer.is_alive() and not self._stop.is_set():
            log.warning(
                "file watcher died; restarting it and rescanning", extra={"action": "observer_restart"}
            )
            self._observer = self._start_observer()
            intake.rescan()

    def _shutdown(self) -> None:
        self._ready = False
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
            unfinished = self._worker.unfinished()
            self._artifacts.discard(unfinished)
            self._release(unfinished)
        if self._maintenance is not None:
            self._maintenance.join(timeout=max(0.0, deadline - time.monotonic()) + 2.0)
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
