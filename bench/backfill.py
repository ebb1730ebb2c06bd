"""The daemon against the Ray backfill on the same archive: files/s and the database's share of the time.

Usage:
    python bench/backfill.py [--files 1000] [--pool 100] [--workers 1,2] [--db-url URL] [--cpus 2]
                             [--batch 16] [--write-batch 256] [--skip-daemon] [--gpu]
    python bench/backfill.py --db-only 100000 [--write-batch 512] [--db-url URL]

Writes ``--files`` ACDC-like masks (a pool of ``--pool`` distinct phantoms, 6-14 slices of 180-260 px,
corrupted by the good and fair simulated segmenters, each written under several case names) into a
folder ``archive/bench/1.0``, then scores that same folder:

1. **daemon**: ``cmr-monitor watch`` (a subprocess, CPU, ``--threads 2 --batch-size 8``) on an empty
   folder; once it answers ``/readyz`` (model loaded) the archive folder is renamed into it, and the
   clock runs from the rename to the last finished row. The database's share is
   ``cmr_monitor_database_seconds_sum`` (every operation) over the wall time.
2. **backfill** with 1 and 2 scoring workers (``--workers``): ``run_backfill`` in this process on a
   local Ray of ``--cpus`` CPUs started once; the clock is the run's own (listing to last commit,
   actor start-up included, Ray's own start excluded). The database's share is ``database_s`` (known
   files + write transactions, artifacts excluded) over the wall time.

CPU ms/file is the CPU the run's processes used per file (the daemon's process; this driver and every
Ray process on the machine), from ``/proc``: on a shared machine it says what a run costs whatever
share of the cores it got.

Each configuration writes both artifacts of every file and uses a fresh database (SQLite in the work
folder, or a new database on the PostgreSQL server of ``--db-url``, dropped afterwards). The load
average before each run is printed: on a shared machine it says how much the figures can be trusted.

``--db-only N``: no scoring; ``known_files`` and ``record_finished`` alone on N synthetic finished files
(3 structures and 2 artifact paths each, ``--write-batch`` per transaction), twice (the second time
every file is already stored): the database's cost per file at any scale, ms/file and files/s, with
PostgreSQL's own CPU when the server runs on this machine.

``--gpu`` (a GPU host, ``bench/backfill_gpu.sh``): the daemon scores on CUDA, and each of the N backfill
workers gets 1/N of the one GPU; the GPU's mean utilisation during each run is sampled with
``nvidia-smi`` and printed, so that the table says whether the GPU or the CPU side was the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from _delivery import mask_pool
from prometheus_client.parser import text_string_to_metric_families

_REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True, slots=True)
class Run:
    """One configuration's figures."""

    name: str
    files: int
    wall_s: float
    database_s: float
    load: float  #: 1-minute load average before the run
    cpu_s: float  #: CPU seconds of the run's processes (the daemon; the driver and Ray's processes)
    gpu_busy: float | None = None  #: mean GPU utilisation during the run (0-1); None without a GPU

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s

    @property
    def cpu_ms_per_file(self) -> float:
        return 1000 * self.cpu_s / self.files

    @property
    def database_share(self) -> float:
        return self.database_s / self.wall_s


def _write_archive(folder: Path, files: int, pool: int, staging: Path) -> None:
    masks = mask_pool(pool, staging=staging)
    folder.mkdir(parents=True)
    for i in range(files):
        (folder / f"case{i:05d}_{'ES' if (i % pool) % 2 == 0 else 'ED'}.nii.gz").write_bytes(masks[i % pool])


@contextmanager
def _database(base_url: str | None, work: Path, name: str) -> Iterator[str]:
    """A fresh database migrated to head: SQLite in ``work``, or a new one on ``base_url``'s server."""
    from monitor.store import upgrade

    if base_url is None:
        url = f"sqlite:///{work / (name + '.db')}"
        upgrade(url)
        yield url
        return
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    db = f"bench_backfill_{name}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{db}"')
    url = sa.make_url(base_url).set(database=db).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.dispose()


def _finished(url: str) -> int:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sa.text("SELECT count(*) FROM mask_files WHERE status IN ('scored', 'rejected')")
            ).scalar_one()
    except sa.exc.OperationalError:
        return -1  # SQLite busy: ask again
    finally:
        engine.dispose()


def _database_seconds(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == "cmr_monitor_database_seconds_sum"
    )


class _GpuSampler:
    """Mean GPU utilisation while it runs (``nvidia-smi`` every 200 ms); nothing without one."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[str] | None = None
        if shutil.which("nvidia-smi"):
            self._process = subprocess.Popen(
                ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "200"],
                stdout=subprocess.PIPE,
                text=True,
            )

    def stop(self) -> float | None:
        if self._process is None:
            return None
        self._process.terminate()
        out, _ = self._process.communicate(timeout=10)
        values = [float(v) for v in out.split() if v.strip().replace(".", "", 1).isdigit()]
        return sum(values) / len(values) / 100 if values else None


def run_daemon(archive: Path, work: Path, url: str, files: int, device: str) -> Run:
    """The daemon on an empty folder; the archive renamed into it once the daemon is ready."""
    from monitor.telemetry.server import free_port

    watched = work / "watched"
    watched.mkdir()
    port = free_port()
    command = [
        sys.executable, "-m", "monitor.cli", "watch", str(watched), "--db", url,
        "--artifacts", str(work / "artifacts-daemon"), "--device", device, "--threads", "2",
        "--batch-size", "8", "--metrics-port", str(port), "--log-format", "json",
        "--stable-s", "0.5", "--poll-interval-s", "0.2",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    with open(work / "daemon.log", "wb") as out:
        process = subprocess.Popen(command, cwd=_REPO, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon not ready; see {work / 'daemon.log'}")
            time.sleep(0.2)
        load = os.getloadavg()[0]
        db_before = _database_seconds(port)
        meter = _CpuMeter(lambda pid, _: pid == process.pid)
        sampler = _GpuSampler()
        started = time.perf_counter()
        os.rename(archive.parent, watched / archive.parent.name)  # the whole bench/ folder at once
        while _finished(url) < files:
            if process.poll() is not None:
                raise SystemExit(f"daemon exited; see {work / 'daemon.log'}")
            time.sleep(0.5)
        wall_s = time.perf_counter() - started
        gpu_busy = sampler.stop()
        cpu_s = meter.stop()
        database_s = _database_seconds(port) - db_before
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        if (watched / archive.parent.name).exists():
            os.rename(watched / archive.parent.name, archive.parent)  # back for the next run
    name = f"daemon (1 process, {device}, 2 torch threads, batch 8)"
    return Run(name, files, wall_s, database_s, load, cpu_s, gpu_busy)


def run_ray(
    archive_root: Path, work: Path, url: str, files: int, workers: int, args: argparse.Namespace
) -> Run:
    from monitor.backfill import BackfillConfig, run_backfill

    load = os.getloadavg()[0]
    sampler = _GpuSampler()
    meter = _CpuMeter(_is_ray)
    summary = run_backfill(
        BackfillConfig(
            sources=(archive_root,),
            database_url=url,
            workers=workers,
            batch=args.batch,
            write_batch=args.write_batch,
            artifacts_dir=work / f"artifacts-backfill{workers}",
            gpus_per_worker=1 / workers if args.gpu else 0.0,
            progress=False,
        )
    )
    gpu_busy = sampler.stop()
    cpu_s = meter.stop()
    if summary.scored + summary.rejected != files:
        raise SystemExit(f"backfill stored {summary.scored + summary.rejected} of {files} files")
    name = (
        f"backfill, {workers} worker(s) x {summary.cpus_per_worker:g} CPU"
        f"{f' x {summary.gpus_per_worker:g} GPU' if args.gpu else ''}, batch {args.batch}"
    )
    return Run(name, files, summary.elapsed_s, summary.database_s, load, cpu_s, gpu_busy)


def _synthetic_score() -> object:
    from monitor.qc.labels import STRUCTURES
    from monitor.qc.levels import FlagLevel
    from monitor.qc.records import StructureScore, VolumeScore

    structures = tuple(
        StructureScore(
            structure=s,
            pdsc=0.85,
            phd_mm=6.0,
            flag=FlagLevel.OK,
            reasons=(),
            mask_voxels=12000 + i,
            pgt_voxels=11800 + i,
            mask_volume_ml=20.0 + i,
        )
        for i, s in enumerate(STRUCTURES)
    )
    return VolumeScore(
        structures=structures, flag=FlagLevel.OK, shape=(10, 224, 256), spacing_mm=(10.0, 1.56, 1.56),
        slices_scored=8, timings_s={"model": 0.05, "metrics": 0.014},
    )  # fmt: skip


def _cpu_by_pid(match: Callable[[int, str], bool]) -> dict[int, float]:
    """CPU seconds (user + system) of each process on this machine that ``match(pid, command line)``."""
    found: dict[int, float] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                command = fh.read().replace(b"\0", b" ").decode(errors="replace")
            if not match(int(pid), command):
                continue
            with open(f"/proc/{pid}/stat") as fh:
                parts = fh.read().rsplit(")", 1)[1].split()
            found[int(pid)] = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return found


def _postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process on this machine (0 when none is visible)."""
    return sum(_cpu_by_pid(lambda pid, command: command.startswith("postgres")).values())


def _is_ray(pid: int, command: str) -> bool:
    """This process (the driver) or one of this machine's Ray processes (workers, actors, raylet, GCS)."""
    return (
        pid == os.getpid()
        or command.startswith("ray::")
        or any(name in command for name in ("raylet", "gcs_server", "ray/_private", "ray/dashboard"))
    )


class _CpuMeter:
    """CPU seconds of matching processes over a run, those that start and end within it included
    (sampled every 0.5 s; a process loses at most its last half second)."""

    def __init__(self, match: Callable[[int, str], bool]) -> None:
        self._match = match
        self._first = _cpu_by_pid(match)
        self._last = dict(self._first)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self._last.update(_cpu_by_pid(self._match))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._last.update(_cpu_by_pid(self._match))
        return sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())


def run_db_only(n: int, url: str, write_batch: int) -> None:
    """``known_files`` + ``record_finished`` on ``n`` synthetic files, then again (all stored)."""
    from datetime import UTC, datetime

    from monitor.store import FinishedFile, known_files, make_engine, make_session_factory, record_finished
    from monitor.store import register_model as register

    score = _synthetic_score()
    now = datetime.now(UTC)
    files = [
        FinishedFile(
            path=f"/archive/bench/1.0/case{i:07d}_ED.nii.gz",
            content_hash=f"{i:064x}",
            case_key=f"case{i:07d}",
            phase="ED",
            segmenter_name="bench",
            segmenter_version="1.0",
            received_at=now,
            done_at=now,
            score=score,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:
        model_id = register(session, "b" * 64, {})
    print(f"\n{n} synthetic files, {write_batch} per transaction, {sa.make_url(url).get_backend_name()}\n")
    print("| pass | files/s | ms/file (client wall) | PostgreSQL CPU ms/file | transactions |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label in ("new files", "all stored"):
        pg0, started = _postgres_cpu_s(), time.perf_counter()
        with sessions() as session:
            known_files(session, [f.path for f in files])
            for start in range(0, n, write_batch):
                chunk = files[start : start + write_batch]

                def artifacts(i: int, file_id: int) -> dict[str, str]:
                    return {"pgt": f"/qc/{file_id}_pgt.nii.gz", "inconsistency": f"/qc/{file_id}_inc.nii.gz"}

                record_finished(session, chunk, model_id=model_id, artifacts=artifacts)
        wall = time.perf_counter() - started
        pg_ms = 1000 * (_postgres_cpu_s() - pg0) / n
        print(f"| {label} | {n / wall:.0f} | {1000 * wall / n:.2f} | {pg_ms:.2f} | {-(-n // write_batch)} |")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=100, help="distinct phantoms among the files")
    parser.add_argument("--workers", default="1,2", help="backfill scoring workers to try")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--batch", type=int, default=16, help="backfill files per scoring batch")
    parser.add_argument("--write-batch", type=int, default=256, help="backfill files per transaction")
    parser.add_argument("--db-url", default=None, help="PostgreSQL admin URL (default: SQLite files)")
    parser.add_argument("--skip-daemon", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="score on the GPU (daemon and backfill)")
    parser.add_argument("--db-only", type=int, default=0, metavar="N", help="the store's bulk path alone")
    args = parser.parse_args()
    if args.db_only:
        with (
            tempfile.TemporaryDirectory(prefix="bench-backfill-db-") as folder,
            _database(args.db_url, Path(folder), "dbonly") as url,
        ):
            run_db_only(args.db_only, url, args.write_batch)
        return

    import ray

    work = Path(tempfile.mkdtemp(prefix="bench-backfill-"))
    try:
        root = work / "archive"
        print(f"writing {args.files} masks ({args.pool} distinct) ...", flush=True)
        _write_archive(root / "bench" / "1.0", args.files, args.pool, work)
        runs: list[Run] = []
        if not args.skip_daemon:
            with _database(args.db_url, work, "daemon") as url:
                runs.append(
                    run_daemon(root / "bench" / "1.0", work, url, args.files, "cuda" if args.gpu else "cpu")
                )
            print(f"  {runs[-1].name}: {runs[-1].files_per_s:.2f} files/s", flush=True)
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            for workers in (int(w) for w in args.workers.split(",")):
                with _database(args.db_url, work, f"ray{workers}") as url:
                    runs.append(run_ray(root, work, url, args.files, workers, args))
                print(f"  {runs[-1].name}: {runs[-1].files_per_s:.2f} files/s", flush=True)
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    backend = "PostgreSQL" if args.db_url else "SQLite"
    print(f"\n{args.files} files, {backend}, {os.cpu_count()} cores\n")
    print("| run | files/s | wall s | database s | database share | CPU ms/file | load before | GPU busy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = runs[0].files_per_s if runs and not args.skip_daemon else None
    for run in runs:
        ratio = f" ({run.files_per_s / base:.2f}x)" if base else ""
        print(
            f"| {run.name} | {run.files_per_s:.2f}{ratio} | {run.wall_s:.1f} | {run.database_s:.2f} | "
            f"{100 * run.database_share:.1f} % | {run.cpu_ms_per_file:.0f} | {run.load:.1f} | "
            f"{'-' if run.gpu_busy is None else f'{100 * run.gpu_busy:.0f} %'} |"
        )


if __name__ == "__main__":
    main()
