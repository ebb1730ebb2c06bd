"""``run_backfill``: score an archive of masks on Ray and store every file's outcome.

The pipeline (Ray Data, streaming):

1. the driver lists the entries (``monitor.backfill.sources``: folders or manifests) and asks the
   database which contents of those paths it holds (``monitor.store.known_files``), and which of
   those hold a stale score: scored under another checkpoint (SHA-256 of its bytes) or another
   calibration version than this run's (``KnownFile.stale``);
2. ``read``: the entries become a Ray dataset;
3. ``decode`` (CPU tasks, ``monitor.backfill.decode``): hash; skip a stored content (unless its score is
   stale and ``rescore_stale``: then it is scored again and its row rescored in place); name and validate
   with the daemon's examination (``monitor.io.examine``), else reject with its reason; pair a valid
   mask with its MR image as the daemon does (``monitor.io.images.pair_image``);
4. ``score`` (an actor pool of ``monitor.backfill.scoring.ScoreWorker``, each with one ``Scorer``; a GPU
   per actor when asked): the valid files of each batch scored together, each with its image;
5. ``write`` (the driver, ``monitor.backfill.writer``): rows stored ``write_batch`` at a time in one
   transaction each; the artifacts, written by the actors with the daemon's ``ArtifactsFolder`` into a
   staging folder of the run (``<artifacts>/.backfill-<host>-<pid>-<id>``), renamed under the file ids.
   On a cluster the artifacts folder must be one shared file system that every node mounts at the same
   path. The staging folder is removed at the end; those of killed runs on this host at the next start.

Every input ends scored, rescored, rejected or skipped (``BackfillSummary``). A run killed part way
leaves the committed batches; the next run skips them and does the rest. Ray is imported here only,
inside ``run_backfill`` (``pip install cmr-monitor[ray]``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from monitor.backfill.decode import DecodeOptions, decode_batch
from monitor.backfill.scoring import ScorerOptions, ScoreWorker
from monitor.backfill.sources import Entry, read_sources
from monitor.backfill.writer import Tally, Writer
from monitor.config import Settings
from monitor.errors import MonitorError
from monitor.io.identity import IngestConfig
from monitor.io.images import IMAGE_GEOMETRY_MISMATCH, IMAGE_UNREADABLE
from monitor.io.nifti import Limits
from monitor.io.processes import process_running
from monitor.qc.labels import ACDC, LabelMap
from monitor.store import (
    check_at_head,
    known_files,
    make_engine,
    make_session_factory,
    register_model,
    upgrade,
)

__all__ = ["BackfillConfig", "BackfillSummary", "RayMissing", "plan_resources", "run_backfill"]

log = logging.getLogger(__name__)

#: Logical CPUs each decode task asks of Ray (decode is short next to scoring: several fit in one CPU).
DECODE_CPUS = 0.5


class RayMissing(MonitorError, ImportError):
    """Ray is not installed: ``pip install 'cmr-monitor[ray]'`` (Ray Data 2.x)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillConfig:
    """One backfill run."""

    sources: tuple[Path, ...]  #: folders and manifests (CSV or Parquet)
    database_url: str  #: the results database
    address: str | None = None  #: Ray cluster ("auto", "ray://host:10001"); None starts a local Ray
    local_cpus: int | None = None  #: CPUs of the local Ray; None = every core
    workers: int = 1  #: scoring actors
    gpus_per_worker: float = 0.0  #: GPUs per actor (0: CPU scoring)
    cpus_per_worker: float | None = None  #: CPUs per actor; None: ``plan_resources``
    batch: int = 64  #: files per scoring batch
    write_batch: int = 512  #: files per database transaction
    artifacts_dir: Path | None = None  #: where pGT and inconsistency maps go; None writes none
    ingest: IngestConfig = field(default_factory=IngestConfig)  #: names, folders, defaults
    label_map: LabelMap = ACDC  #: label values of the masks
    limits: Limits = field(default_factory=Limits)  #: size limits before voxels are read
    checkpoint: Path | None = None  #: autoencoder checkpoint; None = the shipped one
    precision: str = "fp32"  #: model arithmetic
    migrate: bool = False  #: upgrade the schema to head instead of refusing an old one
    progress: bool = True  #: Ray Data's progress bars
    #: the daemon's scorer settings (policy, evidence, calibration); None scores without a calibration
    #: (then stored calibrated scores are stale)
    settings: Settings | None = None
    #: score again the stored contents whose score is stale (another checkpoint or calibration
    #: version than this run's), replacing it in place; False skips them (``--keep-stale``)
    rescore_stale: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class BackfillSummary:
    """What a run did; ``scored + rescored + rejected + skipped == input``."""

    input: int  #: files listed by the sources
    scored: int  #: new contents scored and stored by this run
    rescored: int  #: stored contents whose stale score this run replaced (in place)
    rejected: int  #: new contents rejected (with a reason) and stored by this run
    skipped: int  #: files whose stored row was left as it is
    skipped_stale: int  #: of those, stale scores kept because the run keeps them (``rescore_stale`` off)
    rescore_failed: dict[str, int]  #: of those, stale scores kept because their rescoring was rejected
    reasons: dict[str, int]  #: rejections by reason code
    elapsed_s: float  #: seconds from listing to the last commit (Ray start excluded)
    database_s: float  #: seconds in the database (known files and write transactions)
    artifacts_s: float  #: seconds writing artifacts
    artifacts_failed: int  #: scored files stored without artifacts
    workers: int  #: scoring actors
    cpus_per_worker: float  #: CPUs per actor
    gpus_per_worker: float  #: GPUs per actor
    #: scored files by what became of their MR image: ``used``, or why not (``monitor.io.images``)
    images: dict[str, int] = field(default_factory=dict)

    @property
    def files_per_s(self) -> float:
        """Files accounted for per second of the run."""
        return self.input / self.elapsed_s if self.elapsed_s > 0 else math.nan


def plan_resources(cluster_cpus: float, workers: int, gpus_per_worker: float) -> float:
    """CPUs each scoring actor asks of Ray, leaving room for the decode tasks.

    With GPUs an actor takes 1 CPU (it feeds its GPU). On CPUs the actors share what is left after one
    decode task, at most 1 CPU each and at least 0.25: 2 CPUs and 2 workers give 0.75 each.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if gpus_per_worker > 0:
        return 1.0
    return max(0.25, min(1.0, (cluster_cpus - DECODE_CPUS) / workers))


def run_backfill(config: BackfillConfig, *, stop: threading.Event | None = None) -> BackfillSummary:
    """Score every mask of ``config.sources`` that the database does not hold yet, or holds with a stale
    score (module docstring).

    Raises: RayMissing; SourceError for a source that cannot be read; DatabaseUnavailable when the
        database cannot be reached at the start; CheckpointError; CalibrationError for an unusable
        calibration (``settings.calibration``); RuntimeError when the schema is not at head (without
        ``migrate``).
    """
    try:
        import ray
    except ImportError as exc:
        raise RayMissing() from exc
    if config.batch < 1 or config.workers < 1:
        raise ValueError(f"batch and workers must be >= 1, got {config.batch} and {config.workers}")
    stop = stop or threading.Event()
    listed = time.perf_counter()
    entries = read_sources(config.sources, config.ingest)  # bad input fails before anything starts
    listing_s = time.perf_counter() - listed
    if config.migrate:
        upgrade(config.database_url)
    else:
        check_at_head(config.database_url)
    engine = make_engine(config.database_url)
    sessions = make_session_factory(engine)
    try:
        model_id, checkpoint_sha256 = _register(sessions, config.checkpoint)
        calibration = _calibration_version(config.settings)
        _start_ray(ray, config)  # not timed: seconds, once per run
        started = time.perf_counter() - listing_s
        t_known = time.perf_counter()
        with sessions() as session:
            stored = known_files(session, [e.path for e in entries])
        known_s = time.perf_counter() - t_known
        known: dict[str, dict[str, bool]] = {}  # path -> content hash -> its score is stale
        for (path, content_hash), row in stored.items():
            known.setdefault(path, {})[content_hash] = row.stale(checkpoint_sha256, calibration)
        log.info(
            "backfill of %d file(s); %d path(s) already hold stored contents",
            len(entries),
            len(known),
            extra={"action": "backfill_start", "files": len(entries)},
        )
        cpus_per_worker = config.cpus_per_worker or plan_resources(
            float(ray.cluster_resources().get("CPU", 1.0)), config.workers, config.gpus_per_worker
        )
        staging = _staging_folder(config.artifacts_dir)
        writer = Writer(
            sessions,
            model_id=model_id,
            artifacts_dir=config.artifacts_dir,
            write_batch=config.write_batch,
            stop=stop,
        )
        try:
            if entries:
                dataset = _pipeline(ray, config, entries, known, cpus_per_worker, staging)
                for frame in dataset.iter_batches(batch_size=None, batch_format="pandas"):
                    writer.add(frame)
                    if stop.is_set():
                        break
                writer.flush()
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
        tally = writer.tally
        summary = _summary(config, entries, tally, started, known_s, cpus_per_worker)
    finally:
        engine.dispose()
    log.info(
        "backfill done: %d scored, %d rescored, %d rejected, %d skipped of %d in %.1f s "
        "(checkpoint %s, calibration %s)",
        summary.scored,
        summary.rescored,
        summary.rejected,
        summary.skipped,
        summary.input,
        summary.elapsed_s,
        checkpoint_sha256[:12],
        calibration,
        extra={
            "action": "backfill_done",
            "scored": summary.scored,
            "rescored": summary.rescored,
            "rejected": summary.rejected,
        },
    )
    if summary.rescore_failed:  # their stored scores stand
        log.warning(
            "stale scores kept, their rescoring failed: %s",
            ", ".join(f"{reason} {n}" for reason, n in sorted(summary.rescore_failed.items())),
            extra={"action": "rescore_failed", **summary.rescore_failed},
        )
    unusable = {k: n for k, n in summary.images.items() if k in (IMAGE_GEOMETRY_MISMATCH, IMAGE_UNREADABLE)}
    if unusable:  # the daemon warns per file; here once per run (the reasons are stored per file)
        log.warning(
            "MR images found but not used: %s",
            ", ".join(f"{reason} {n}" for reason, n in sorted(unusable.items())),
            extra={"action": "image_not_used", **unusable},
        )
    return summary


def _pipeline(
    ray: Any,
    config: BackfillConfig,
    entries: Sequence[Entry],
    known: Mapping[str, Mapping[str, bool]],
    cpus: float,
    staging: Path | None,
) -> Any:
    """The Ray dataset: read -> decode (tasks) -> score (actor pool)."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = config.progress
    items = [
        {
            "seq": seq,
            "path": e.path,
            "root": e.root,
            "overrides": json.dumps(e.overrides),
            "confined": e.confined,
        }
        for seq, e in enumerate(entries)
    ]
    settings = config.settings
    options = DecodeOptions(
        ingest=config.ingest,
        label_map=config.label_map,
        limits=config.limits,
        image_evidence=settings.image_evidence and settings.evidence if settings is not None else True,
        rescore_stale=config.rescore_stale,
    )
    scorer = ScorerOptions(
        checkpoint=str(config.checkpoint) if config.checkpoint else None,
        device="cuda" if config.gpus_per_worker > 0 else "cpu",
        threads=max(1, math.ceil(cpus)),
        precision=config.precision,
        staging=str(staging) if staging is not None else None,
        label_map=config.label_map,
        settings=config.settings,
    )
    blocks = max(1, min(len(items) // max(1, config.batch), 4 * 1024))
    return (
        ray.data.from_items(items, override_num_blocks=blocks)
        .map_batches(
            _decode,
            batch_format="pandas",
            batch_size=max(1, min(config.batch, 16)),
            fn_kwargs={"options": options, "known": ray.put(dict(known))},
            num_cpus=DECODE_CPUS,
        )
        .map_batches(
            ScoreWorker,
            fn_constructor_kwargs={"options": scorer},
            batch_format="pandas",
            batch_size=config.batch,
            compute=ray.data.ActorPoolStrategy(size=config.workers),
            num_cpus=cpus,
            num_gpus=config.gpus_per_worker or None,
        )
    )


_KNOWN_CACHE: dict[str, Mapping[str, Mapping[str, bool]]] = {}


def _decode(batch: Any, *, options: DecodeOptions, known: Any) -> Any:
    """``decode_batch`` in a Ray task; ``known`` is fetched from the object store once per process."""
    import ray

    if isinstance(known, ray.ObjectRef):
        key = known.hex()
        if key not in _KNOWN_CACHE:
            _KNOWN_CACHE.clear()
            _KNOWN_CACHE[key] = ray.get(known)
        known = _KNOWN_CACHE[key]
    return decode_batch(batch, options=options, known=known)


def _start_ray(ray: Any, config: BackfillConfig) -> None:
    """Join the cluster at ``config.address``, or start a local Ray (no dashboard); nothing when this
    process is already connected. Ray's workers import the cmr-monitor installed on their node."""
    if ray.is_initialized():
        return
    if config.address is None:
        ray.init(
            num_cpus=config.local_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False
        )
    else:
        ray.init(address=config.address, log_to_driver=False)


def _register(sessions: Any, checkpoint: Path | None) -> tuple[int, str]:
    """Register the checkpoint's model in the database: (model id, SHA-256 of its bytes)."""
    from monitor.model.autoencoder import default_checkpoint_path, load_checkpoint

    path = checkpoint or default_checkpoint_path()
    raw = path.read_bytes()
    _, meta, _ = load_checkpoint(path, data=raw)
    sha256 = hashlib.sha256(raw).hexdigest()
    metadata = _json_safe({"checkpoint": str(path), **asdict(meta)})
    with sessions() as session:
        return register_model(session, sha256, metadata), sha256


def _calibration_version(settings: Settings | None) -> str | None:
    """The version of the calibration the scoring actors will apply (``Scorer.from_settings``); None
    without one. Loaded here once, so an unusable calibration fails before Ray starts."""
    if settings is None:
        return None
    from monitor.model.scorer import calibration_from_setting

    calibration = calibration_from_setting(settings.calibration)
    return calibration.version if calibration is not None else None


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None and other non-JSON values as text."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _staging_folder(artifacts_dir: Path | None) -> Path | None:
    """A new staging folder for this run's artifacts, after removing those of dead runs on this host."""
    if artifacts_dir is None:
        return None
    artifacts_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    for old in artifacts_dir.glob(f".backfill-{host}-*"):
        pid = old.name.removeprefix(f".backfill-{host}-").split("-")[0]
        if pid.isdigit() and not process_running(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    staging = artifacts_dir / f".backfill-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    return staging


def _summary(
    config: BackfillConfig,
    entries: Sequence[Entry],
    tally: Tally,
    started: float,
    known_s: float,
    cpus_per_worker: float,
) -> BackfillSummary:
    return BackfillSummary(
        input=len(entries),
        scored=tally.scored,
        rescored=tally.rescored,
        rejected=tally.rejected,
        skipped=tally.skipped,
        skipped_stale=tally.skipped_stale,
        rescore_failed=dict(tally.rescore_failed),
        reasons=dict(tally.reasons),
        elapsed_s=time.perf_counter() - started,
        database_s=tally.database_s + known_s,
        artifacts_s=tally.artifacts_s,
        artifacts_failed=tally.artifacts_failed,
        workers=config.workers,
        cpus_per_worker=cpus_per_worker,
        gpus_per_worker=config.gpus_per_worker,
        images=dict(tally.images),
    )
