"""The live demo: a simulated segmenter delivers masks into a watched folder while the daemon scores them.

On a fresh machine, without any data, it shows what the monitor does in production. Synthetic patients
(``monitor.synthetic`` phantoms, which are their own ground truth) are segmented by a simulated model
``cardioseg`` and written into ``<workdir>/incoming/cardioseg/<version>/`` over a few minutes, the way
a real pipeline would (most files renamed into place, some written slowly in chunks, a few broken). Half
way through, version ``1.1`` takes over and is worse, so the flag rate and the pseudo Dice drift. The
daemon (``monitor.daemon``) watches the folder with a SQLite database in the work folder; at the end a
table compares, per version, the real Dice (known here only because the phantoms are ground truth) with
the pseudo Dice the monitor estimated without it.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from monitor.config import get_settings
from monitor.daemon import Daemon, DaemonConfig
from monitor.labels import ACDC, CANONICAL_CHANNEL, STRUCTURES
from monitor.metrics import dice
from monitor.nifti import save_labels
from monitor.records import FlagLevel
from monitor.synthetic import SEGMENTERS, Phantom, make_patient

__all__ = [
    "DEMO_SEGMENTER",
    "DEMO_VERSIONS",
    "Delivery",
    "DemoConfig",
    "DemoProgress",
    "DemoResult",
    "VersionSummary",
    "plan_deliveries",
    "prepare_workdir",
    "run_demo",
]

log = logging.getLogger(__name__)

#: Name of the simulated segmentation model.
DEMO_SEGMENTER = "cardioseg"
#: Its versions: the second one, deployed half way, is worse.
DEMO_VERSIONS: tuple[str, str] = ("1.0", "1.1")
#: Share of each quality (``SEGMENTERS`` names) per version.
_MIX: dict[str, dict[str, float]] = {
    "1.0": {"good": 0.64, "fair": 0.27, "poor": 0.06, "failing": 0.03},
    "1.1": {"good": 0.15, "fair": 0.27, "poor": 0.3, "failing": 0.28},
}
#: Every ``_INVALID_EVERY``-th delivery (from the ``_INVALID_FIRST``-th) is a broken file.
_INVALID_EVERY, _INVALID_FIRST = 17, 11
#: How files are written: renamed into place, written slowly in chunks, or written at once.
_WRITE_MODES: dict[str, float] = {"rename": 0.7, "chunks": 0.2, "direct": 0.1}
_MARKER = ".cmr-monitor-demo"
#: Files of the work folder that a new run keeps: the marker and the log (already open for this run).
_KEEP = frozenset({_MARKER, "daemon.log"})
_SMALL_PHANTOM = {"n_slices": 5, "shape_yx": (128, 128)}


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoConfig:
    """Options of ``run_demo``."""

    workdir: Path  #: work folder (created; must be empty or an earlier demo's)
    duration_s: float = 180.0  #: how long the simulated segmenter writes
    rate_per_s: float = 0.5  #: masks per second it writes (on average)
    seed: int = 0  #: random seed of patients, qualities and timings
    device: str = "auto"  #: auto, cpu or cuda
    small: bool = False  #: small phantoms (5 slices, 128 x 128) for quick runs and tests
    metrics_port: int | None = 0  #: port of /metrics, /healthz, /readyz (0 = any free port)
    checkpoint: Path | None = None  #: autoencoder checkpoint; None = the shipped one
    drain_timeout_s: float = 120.0  #: after the last write, wait at most this long for the scores
    history_weeks: float = 4.0  #: weeks of simulated past scores seeded first (0 = none)
    dashboard_port: int | None = 8501  #: port of the Streamlit dashboard; None = no dashboard

    def __post_init__(self) -> None:
        if not self.duration_s > 0 or not self.rate_per_s > 0:
            raise ValueError(
                f"duration_s and rate_per_s must be > 0, got {self.duration_s} and {self.rate_per_s}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One mask the simulated segmenter writes."""

    at_s: float  #: seconds after the start
    version: str  #: segmenter version
    quality: str  #: ``SEGMENTERS`` name, or ``invalid`` (a broken file)
    write_mode: str  #: rename, chunks or direct
    patient: int  #: patient number (1-based)
    phase: str  #: ED or ES

    @property
    def relative_path(self) -> Path:
        """Where it goes under the incoming folder."""
        return Path(DEMO_SEGMENTER, self.version, f"patient{self.patient:04d}_{self.phase}.nii.gz")


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


def plan_deliveries(*, duration_s: float, rate_per_s: float, seed: int = 0) -> list[Delivery]:
    """The simulated segmenter's schedule: about ``duration_s * rate_per_s`` masks, ED then ES of each
    patient, at jittered regular times; the second half comes from version 1.1; one in 17 is broken."""
    rng = np.random.default_rng([seed, 1])
    n = max(2, round(duration_s * rate_per_s))
    step = duration_s / n
    deliveries = []
    for i in range(n):
        version = DEMO_VERSIONS[0] if i < n // 2 else DEMO_VERSIONS[1]
        mix = _MIX[version]
        deliveries.append(
            Delivery(
                at_s=float(min(duration_s, i * step + rng.uniform(0, 0.9 * step))),
                version=version,
                quality=str(rng.choice(list(mix), p=list(mix.values())))
                if i % _INVALID_EVERY != _INVALID_FIRST
                else "invalid",
                write_mode=str(rng.choice(list(_WRITE_MODES), p=list(_WRITE_MODES.values()))),
                patient=i // 2 + 1,
                phase="ED" if i % 2 == 0 else "ES",
            )
        )
    return deliveries


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


class _Writer:
    """Makes and writes the planned masks, remembering their real Dice."""

    def __init__(self, incoming: Path, staging: Path, seed: int, small: bool) -> None:
        self.incoming = incoming
        self.staging = staging
        self.seed = seed
        self.small = small
        self.real_dice: dict[str, float] = {}
        self._patients: dict[int, tuple[Phantom, Phantom]] = {}

    def write(self, delivery: Delivery) -> Path:
        rng = np.random.default_rng([self.seed, 2, delivery.patient, delivery.phase == "ES"])
        if delivery.patient not in self._patients:
            self._patients.pop(delivery.patient - 2, None)
            overrides = _SMALL_PHANTOM if self.small else {}
            self._patients[delivery.patient] = make_patient(
                np.random.default_rng([self.seed, 3, delivery.patient]), **overrides
            )
        ed, es = self._patients[delivery.patient]
        phantom = ed if delivery.phase == "ED" else es
        staged = self.staging / delivery.relative_path.name
        target = self.incoming / delivery.relative_path
        if delivery.quality == "invalid":
            self._write_invalid(staged, phantom, rng)
        else:
            labels, _ = SEGMENTERS[delivery.quality](phantom.labels, rng, phantom.spacing_mm)
            save_labels(staged, labels, phantom.affine, label_map=ACDC)
            self.real_dice[str(target)] = _mean_dice(labels, phantom.labels)
        data = staged.read_bytes()
        staged.unlink()
        _deliver(data, target, delivery.write_mode)
        return target

    @staticmethod
    def _write_invalid(staged: Path, phantom: Phantom, rng: np.random.Generator) -> None:
        if rng.random() < 0.5:  # a transfer cut short: truncated gzip stream
            save_labels(staged, phantom.labels, phantom.affine)
            data = staged.read_bytes()
            staged.write_bytes(data[: len(data) // 2])
        else:  # a probability map saved instead of labels
            probabilities = (phantom.labels.astype(np.float32) * 0.45).transpose(2, 1, 0)
            nib.save(nib.Nifti1Image(probabilities, phantom.affine), str(staged))


def _mean_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    values = [dice(pred == CANONICAL_CHANNEL[s], ref == CANONICAL_CHANNEL[s]) for s in STRUCTURES]
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _deliver(data: bytes, target: Path, mode: str) -> None:
    """Write ``data`` to ``target`` the way pipelines do: rename, slow chunks, or at once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "rename":
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
    elif mode == "chunks":
        with open(target, "wb") as fh:
            for start in range(0, len(data), max(1, len(data) // 3 + 1)):
                fh.write(data[start : start + len(data) // 3 + 1])
                fh.flush()
                time.sleep(0.15)
    else:
        target.write_bytes(data)


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
    from monitor.store import iter_export_rows, make_engine, make_session_factory, status_counts

    stop = stop or threading.Event()
    workdir = config.workdir.resolve()
    prepare_workdir(workdir)
    incoming, artifacts, staging = workdir / "incoming", workdir / "artifacts", workdir / ".staging"
    for folder in (incoming, artifacts, staging):
        folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{workdir / 'cmr-monitor.db'}"
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
            metrics_port=config.metrics_port,
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
    writer = _Writer(incoming, staging, config.seed, config.small)
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

    def report(version: str) -> dict[str, int]:
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
            _stop_process(dashboard[0])
    if failure:
        raise failure[0]

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
    )


#: Versions of the simulated past: 0.9 for most of it, then 1.0, which is worse; the live part goes on
#: with 1.0 and brings 1.1 half way.
HISTORY_VERSIONS_DEMO: tuple[str, str] = ("0.9", DEMO_VERSIONS[0])


def _seed_history(url: str, artifacts: Path, config: DemoConfig) -> int:
    """Seed ``config.history_weeks`` of simulated past scores ending now; return the files written."""
    if config.history_weeks <= 0:
        return 0
    from monitor.history import seed_history
    from monitor.store import upgrade

    upgrade(url)
    summary = seed_history(
        url,
        weeks=config.history_weeks,
        volumes_per_day=20 if config.small else 40,
        seed=config.seed,
        artifacts_dir=artifacts / "history",
        artifact_files=4 if config.small else 12,
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
    from monitor.cli_dashboard import launch_dashboard, wait_for_dashboard

    port = config.dashboard_port if port_free(config.dashboard_port) else _free_port()
    log = (config.workdir.resolve() / "dashboard.log").open("ab")
    process = launch_dashboard(
        url,
        port=port,
        host="127.0.0.1",
        artifacts_dir=artifacts,
        data_dirs=(incoming,),
        stdout=log,
        stderr=log,
    )
    dashboard_url = f"http://127.0.0.1:{port}"
    try:
        wait_for_dashboard(dashboard_url, timeout_s=90.0, process=process)
    except (TimeoutError, RuntimeError) as exc:
        log.warning("the dashboard did not start (%s); see dashboard.log", exc)
        _stop_process(process)
        return None
    return process, dashboard_url


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def port_free(port: int) -> bool:
    """True when ``port`` can be bound on 127.0.0.1 now (always for 0: any free port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
