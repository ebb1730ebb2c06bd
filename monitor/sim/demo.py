"""The live demo: a simulated segmenter delivers masks into a watched folder while the daemon scores them.

On a fresh machine, without any data, it shows what the monitor does in production. Synthetic patients
(``monitor.sim`` phantoms, which are their own ground truth) are segmented by a simulated model
``cardioseg`` (``monitor.sim.deliveries``) and written into ``<workdir>/incoming/cardioseg/<version>/``
over a few minutes, the way a real pipeline would (most files renamed into place, some written slowly
in chunks, a few broken). Half way through, version ``1.1`` takes over and is worse, so the flag rate
and the pseudo Dice drift. The daemon (``monitor.daemon``) watches the folder with a SQLite database in
the work folder, and the dashboard (``dashboard.launch``) shows it; at the end a table compares, per
version, the real Dice (known here only because the phantoms are ground truth) with the pseudo Dice
the monitor estimated without it. The masks of every 5th patient count as labelled by the site: as soon
as each is scored, its real Dice and HD are recorded beside the estimates (``realized_metrics``, source
``demo``), so the dashboard's "Estimated vs realized" page fills while the demo runs.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dashboard.launch import start_dashboard, stop_dashboard
from monitor.config import get_settings
from monitor.daemon import Daemon, DaemonConfig
from monitor.qc.levels import FlagLevel
from monitor.sim.deliveries import (
    DEMO_SEGMENTER,
    DEMO_VERSIONS,
    SMALL_PHANTOM,
    Delivery,
    DeliveryWriter,
    plan_deliveries,
)
from monitor.telemetry import free_port, port_free

__all__ = [
    "DEMO_SETTINGS",
    "DemoConfig",
    "DemoProgress",
    "DemoResult",
    "VersionSummary",
    "prepare_workdir",
    "run_demo",
    "write_demo_settings",
]

log = logging.getLogger(__name__)

_MARKER = ".cmr-monitor-demo"
#: Files of the work folder that a new run keeps: the marker and the log (already open for this run).
_KEEP = frozenset({_MARKER, "daemon.log"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """Options of ``run_demo``."""

    workdir: Path  #: work folder (created; must be empty or an earlier demo's)
    duration_s: float = 180.0  #: how long the simulated segmenter writes
    rate_per_s: float = 0.5  #: masks per second it writes (on average)
    seed: int = 0  #: random seed of patients, qualities and timings
    device: str = "auto"  #: auto, cpu or cuda
    small: bool = False  #: small phantoms (5 slices, 128 x 128) for quick runs and tests
    metrics_port: int | None = 0  #: port of /metrics, /healthz, /readyz (0 or busy = any free port)
    checkpoint: Path | None = None  #: autoencoder checkpoint; None = the shipped one
    drain_timeout_s: float = 120.0  #: after the last write, wait at most this long for the scores
    history_weeks: float = 4.0  #: weeks of simulated past scores seeded first (0 = none)
    history_artifact_days: float = 3.0  #: the past alerts of these last days get maps and images
    dashboard_port: int | None = 8501  #: port of the Streamlit dashboard (busy = any free port); None = none

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or not self.rate_per_s > 0:
            raise ValueError(
                f"duration_s and rate_per_s must be > 0, got {self.duration_s} and {self.rate_per_s}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoProgress:
    """Where the demo stands (for the live progress line)."""

    elapsed_s: float  #: seconds since the writer started
    written: int  #: masks written so far
    planned: int  #: masks the writer will write
    version: str  #: version writing now
    by_status: dict[str, int]  #: database counts: pending, scoring, scored, rejected
    flagged: int  #: scored files flagged suspicious or erroneous


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionSummary:
    """The end state of one segmenter version."""

    version: str  #: segmenter version
    written: int  #: masks the simulated segmenter wrote
    scored: int  #: masks scored
    flagged: int  #: scored masks flagged suspicious or erroneous
    erroneous: int  #: of them, erroneous
    rejected: int  #: masks rejected
    real_dice: float  #: mean real Dice of the scored masks (needs ground truth)
    pseudo_dice: float  #: mean pDSC of the scored masks (the monitor, without it)


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoResult:
    """What ``run_demo`` did."""

    versions: tuple[VersionSummary, ...]  #: one row per version, in order
    rejection_reasons: dict[str, int]  #: reason code -> files
    database_url: str  #: the demo's database
    incoming: Path  #: the watched folder
    artifacts: Path  #: pGT and inconsistency maps
    interrupted: bool  #: stopped early (Ctrl-C)
    drained: bool  #: every written file reached scored or rejected
    history_files: int = 0  #: simulated past files seeded before the live part
    realized_files: int = 0  #: labelled live masks whose real metrics were recorded
    settings_file: Path | None = None  #: ``cmr-monitor.toml`` naming the demo's database and folders


def prepare_workdir(workdir: Path) -> None:
    """Create the work folder, or empty an earlier demo's; refuse a folder that is not the demo's.

    Idempotent: a second call in the same run keeps the marker and ``daemon.log``.

    Raises: FileExistsError when ``workdir`` holds other files (nothing is deleted then).
    """
    if workdir.exists() and any(workdir.iterdir()):
        if not (workdir / _MARKER).is_file():
            raise FileExistsError(
                f"{workdir} is not empty and was not made by the demo; choose another --workdir"
            )
        for child in workdir.iterdir():
            if child.name in _KEEP:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / _MARKER).write_text("made by `cmr-monitor demo`; emptied by its next run\n")


def run_demo(
    config: DemoConfig,
    *,
    stop: threading.Event | None = None,
    on_start: Callable[[Daemon], None] | None = None,
    on_progress: Callable[[DemoProgress], None] | None = None,
    on_dashboard: Callable[[str], None] | None = None,
    progress_interval_s: float = 0.5,
) -> DemoResult:
    """Run the live demo: start the daemon, write the planned masks, wait for the scores, summarise.

    Args:
        config: options.
        stop: set it to end early (Ctrl-C); the daemon then stops cleanly and the summary is still made.
        on_start: called once the daemon is ready (e.g. to print its metrics URL).
        on_progress: called about every ``progress_interval_s`` seconds.
        on_dashboard: called with the dashboard's URL once it answers.
    Returns: the per-version summary and where everything is.
    Raises: FileExistsError for a work folder that is not the demo's; MonitorError when the daemon
        cannot start (its error is re-raised here).
    """
    from monitor.evaluation.realized import record_realized_files
    from monitor.store import iter_export_rows, make_engine, make_session_factory, status_counts

    stop = stop or threading.Event()
    workdir = config.workdir.resolve()
    prepare_workdir(workdir)
    incoming, artifacts, staging = workdir / "incoming", workdir / "artifacts", workdir / ".staging"
    for folder in (incoming, artifacts, staging):
        folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'cmr-monitor.db'}"
    settings_file = write_demo_settings(workdir, url, artifacts=artifacts, incoming=incoming)
    metrics_port = config.metrics_port
    if metrics_port is not None and not port_free(metrics_port):
        metrics_port = 0  # busy: any free port (the URL is reported through on_start)
    daemon = Daemon(
        DaemonConfig(
            roots=(incoming,),
            settings=get_settings().with_overrides(
                database_url=url, artifacts_dir=artifacts, checkpoint=config.checkpoint, device=config.device
            ),
            migrate=True,
            poll_interval_s=0.25,
            stable_s=1.0,
            incomplete_timeout_s=5.0,
            rescan_interval_s=30.0,
            lease_s=120.0,
            shutdown_timeout_s=15.0,
            metrics_port=metrics_port,
        )
    )
    failure: list[BaseException] = []

    def serve() -> None:
        try:
            daemon.run()
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    # The past is written before the daemon starts, so that it never claims a simulated file.
    history_files = _seed_history(url, artifacts, config)
    thread = threading.Thread(target=serve, name="cmr-monitor-demo-daemon", daemon=True)
    thread.start()
    while not daemon.readyz()[0] and thread.is_alive() and not stop.is_set():
        time.sleep(0.1)
    if failure:
        raise failure[0]
    dashboard = _start_dashboard(url, artifacts, incoming, config) if thread.is_alive() else None
    if on_start is not None and thread.is_alive():
        on_start(daemon)
        if dashboard is not None and on_dashboard is not None:
            on_dashboard(dashboard[1])

    plan = plan_deliveries(duration_s=config.duration_s, rate_per_s=config.rate_per_s, seed=config.seed)
    writer = DeliveryWriter(
        incoming, staging, config.seed, config.small, images=artifacts / "inputs" / "live"
    )
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    written: list[tuple[Delivery, Path]] = []
    start = time.monotonic()
    next_progress = start

    def live_counts() -> tuple[dict[str, int], int]:
        """Files per status and flagged files, the seeded history left out."""
        with sessions() as session:
            counts = status_counts(session)
        by_status = {k: v - past_status.get(k, 0) for k, v in counts.by_status.items()}
        flagged = counts.by_flag.get("suspicious", 0) + counts.by_flag.get("erroneous", 0)
        return by_status, flagged - past_flagged

    past_status: dict[str, int] = {}
    past_flagged = 0
    past_status, past_flagged = live_counts()
    realized: set[str] = set()

    def record_realized() -> None:
        """The real metrics of the labelled masks scored since the last call (``realized_metrics``)."""
        waiting = {path: m for path, m in writer.realized.items() if path not in realized}
        if waiting:
            with sessions() as session:
                realized.update(record_realized_files(session, waiting, source="demo").recorded)

    def report(version: str) -> dict[str, int]:
        record_realized()
        by_status, flagged = live_counts()
        if on_progress is not None:
            on_progress(
                DemoProgress(
                    elapsed_s=time.monotonic() - start,
                    written=len(written),
                    planned=len(plan),
                    version=version,
                    by_status=by_status,
                    flagged=flagged,
                )
            )
        return by_status

    try:
        for delivery in plan:
            while not stop.is_set() and thread.is_alive():
                now = time.monotonic()
                if now >= next_progress:
                    report(delivery.version)
                    next_progress = now + progress_interval_s
                wait = min(start + delivery.at_s, next_progress) - time.monotonic()
                if start + delivery.at_s <= time.monotonic():
                    break
                stop.wait(max(0.0, wait))
            if stop.is_set() or not thread.is_alive():
                break
            written.append((delivery, writer.write(delivery)))
        drained = False
        deadline = time.monotonic() + config.drain_timeout_s
        version = written[-1][0].version if written else DEMO_VERSIONS[0]
        while not stop.is_set() and thread.is_alive() and time.monotonic() < deadline:
            counts = report(version)
            finished = counts.get("scored", 0) + counts.get("rejected", 0)
            if finished >= len(written) and counts.get("pending", 0) + counts.get("scoring", 0) == 0:
                drained = True
                break
            stop.wait(progress_interval_s)
        interrupted = stop.is_set()
    finally:
        daemon.stop()
        thread.join(timeout=30.0)
        shutil.rmtree(staging, ignore_errors=True)
        if dashboard is not None:
            stop_dashboard(dashboard[0])
    if failure:
        raise failure[0]

    record_realized()  # those scored since the last report
    with sessions() as session:
        rows = list(iter_export_rows(session))
    engine.dispose()
    return DemoResult(
        versions=_summarise(written, rows, writer.real_dice),
        rejection_reasons=dict(
            Counter(
                r["rejection_reason"]
                for r in rows
                if r["status"] == "rejected" and str(r["path"]) in {str(p) for _, p in written}
            )
        ),
        database_url=url,
        incoming=incoming,
        artifacts=artifacts,
        interrupted=interrupted,
        drained=drained,
        history_files=history_files,
        realized_files=len(realized),
        settings_file=settings_file,
    )


#: Name of the settings file the demo writes into its work folder.
DEMO_SETTINGS = "cmr-monitor.toml"


def write_demo_settings(workdir: Path, url: str, *, artifacts: Path, incoming: Path) -> Path:
    """Write ``<workdir>/cmr-monitor.toml`` naming the demo's database and folders (absolute paths), so
    that ``CMR_MONITOR_CONFIG=<it> cmr-monitor status`` (or ``dashboard``, ``export``) look at the demo.

    Returns: the file's path.
    """

    def text(value: object) -> str:
        return json.dumps(str(value))  # a JSON string is a TOML basic string

    path = workdir / DEMO_SETTINGS
    path.write_text(
        "# Written by `cmr-monitor demo`: its database and folders. Use it with\n"
        f"#   export CMR_MONITOR_CONFIG={path}\n"
        f"database_url = {text(url)}\n"
        f"artifacts_dir = {text(artifacts)}\n"
        f"dashboard_data_dirs = [{text(incoming)}]\n"
    )
    return path


#: Versions of the simulated past: 0.9 for most of it, then 1.0, which is worse; the live part goes on
#: with 1.0 and brings 1.1 half way.
HISTORY_VERSIONS_DEMO: tuple[str, str] = ("0.9", DEMO_VERSIONS[0])


def _seed_history(url: str, artifacts: Path, config: DemoConfig) -> int:
    """Seed ``config.history_weeks`` of simulated past scores ending now; return the files written."""
    if config.history_weeks <= 0:
        return 0
    from monitor.sim.seed import seed_history
    from monitor.store import upgrade

    upgrade(url)
    summary = seed_history(
        url,
        weeks=config.history_weeks,
        volumes_per_day=20 if config.small else 40,
        seed=config.seed,
        artifacts_dir=artifacts / "history",
        artifact_files=4 if config.small else 12,
        artifact_days=config.history_artifact_days,
        phantom=SMALL_PHANTOM if config.small else None,
        segmenter_name=DEMO_SEGMENTER,
        versions=HISTORY_VERSIONS_DEMO,
    )
    return int(summary.scored + summary.rejected)


def _start_dashboard(
    url: str, artifacts: Path, incoming: Path, config: DemoConfig
) -> tuple[subprocess.Popen[bytes], str] | None:
    """Start the Streamlit dashboard on the demo database; None when disabled or when it fails to start."""
    if config.dashboard_port is None:
        return None
    port = config.dashboard_port if port_free(config.dashboard_port) else free_port()
    try:
        return start_dashboard(
            url,
            port=port,
            artifacts_dir=artifacts,
            data_dirs=(incoming,),
            log_path=config.workdir.resolve() / "dashboard.log",
        )
    except (TimeoutError, RuntimeError) as exc:
        log.warning("the dashboard did not start (%s); see dashboard.log", exc)
        return None


def _summarise(
    written: list[tuple[Delivery, Path]], rows: list[dict[str, object]], real_dice: dict[str, float]
) -> tuple[VersionSummary, ...]:
    """Per-version counts and mean Dice from the export rows (one per file and structure) of the files
    the simulated segmenter wrote (the seeded history is left out)."""
    files: dict[int, dict[str, object]] = {}
    pdsc: dict[int, list[float]] = defaultdict(list)
    live_paths = {str(path) for _, path in written}
    for row in rows:
        if str(row["path"]) not in live_paths:
            continue
        file_id = int(row["file_id"])  # type: ignore[call-overload]
        files[file_id] = row
        value = row.get("pdsc")
        if value is not None and not math.isnan(float(value)):  # type: ignore[arg-type]
            pdsc[file_id].append(float(value))  # type: ignore[arg-type]
    summaries = []
    for version in DEMO_VERSIONS:
        mine = {fid: r for fid, r in files.items() if r["segmenter_version"] == version}
        scored = {fid: r for fid, r in mine.items() if r["status"] == "scored"}
        flags = Counter(str(r["flag"]) for r in scored.values())
        real = [real_dice.get(str(r["path"]), math.nan) for r in scored.values()]
        pseudo = [float(np.mean(pdsc[fid])) for fid in scored if pdsc[fid]]
        summaries.append(
            VersionSummary(
                version=version,
                written=sum(1 for d, _ in written if d.version == version),
                scored=len(scored),
                flagged=flags[str(FlagLevel.SUSPICIOUS)] + flags[str(FlagLevel.ERRONEOUS)],
                erroneous=flags[str(FlagLevel.ERRONEOUS)],
                rejected=sum(1 for r in mine.values() if r["status"] == "rejected"),
                real_dice=float(np.nanmean(real)) if any(not math.isnan(v) for v in real) else math.nan,
                pseudo_dice=float(np.mean(pseudo)) if pseudo else math.nan,
            )
        )
    return tuple(summaries)
