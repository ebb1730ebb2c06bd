"""The daemon against the Ray backfill on the same archive: files/s and the database's share of the time.

Usage:
    python bench/backfill.py [--files 1000] [--pool 100] [--workers 1,2] [--db-url URL] [--cpus 2]
                             [--batch 16] [--write-batch 256] [--skip-daemon] [--gpu]

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

Each configuration writes both artifacts of every file and uses a fresh database (SQLite in the work
folder, or a new database on the PostgreSQL server of ``--db-url``, dropped afterwards). The load
average before each run is printed: on a shared machine it says how much the figures can be trusted.

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
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from _delivery import segmented_mask
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
    gpu_busy: float | None = None  #: mean GPU utilisation during the run (0-1); None without a GPU

    @property
    def files_per_s(self) -> float:
        return self.files / self.wall_s

    @property
    def database_share(self) -> float:
        return self.database_s / self.wall_s


def _write_archive(folder: Path, files: int, pool: int, staging: Path) -> None:
    masks = [
        segmented_mask(
            100 + i,
            phase="ES" if i % 2 == 0 else "ED",
            quality="good" if i % 3 else "fair",
            segmenter_seed=i,
            staging=staging,
        )
        for i in range(pool)
    ]
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
        sampler = _GpuSampler()
        started = time.perf_counter()
        os.rename(archive.parent, watched / archive.parent.name)  # the whole bench/ folder at once
        while _finished(url) < files:
            if process.poll() is not None:
                raise SystemExit(f"daemon exited; see {work / 'daemon.log'}")
            time.sleep(0.5)
        wall_s = time.perf_counter() - started
        gpu_busy = sampler.stop()
        database_s = _database_seconds(port) - db_before
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        process.wait(timeout=120)
        if (watched / archive.parent.name).exists():
            os.rename(watched / archive.parent.name, archive.parent)  # back for the next run
    return Run(
        f"daemon (1 process, {device}, 2 torch threads, batch 8)", files, wall_s, database_s, load, gpu_busy
    )


def run_ray(
    archive_root: Path, work: Path, url: str, files: int, workers: int, args: argparse.Namespace
) -> Run:
    from monitor.backfill import BackfillConfig, run_backfill

    load = os.getloadavg()[0]
    sampler = _GpuSampler()
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
    if summary.scored + summary.rejected != files:
        raise SystemExit(f"backfill stored {summary.scored + summary.rejected} of {files} files")
    name = (
        f"backfill, {workers} worker(s) x {summary.cpus_per_worker:g} CPU"
        f"{f' x {summary.gpus_per_worker:g} GPU' if args.gpu else ''}, batch {args.batch}"
    )
    return Run(name, files, summary.elapsed_s, summary.database_s, load, gpu_busy)


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
    args = parser.parse_args()

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
    print("| run | files/s | wall s | database s | database share | load before | GPU busy |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    base = runs[0].files_per_s if runs and not args.skip_daemon else None
    for run in runs:
        ratio = f" ({run.files_per_s / base:.2f}x)" if base else ""
        print(
            f"| {run.name} | {run.files_per_s:.2f}{ratio} | {run.wall_s:.1f} | {run.database_s:.2f} | "
            f"{100 * run.database_share:.1f} % | {run.load:.1f} | "
            f"{'-' if run.gpu_busy is None else f'{100 * run.gpu_busy:.0f} %'} |"
        )


if __name__ == "__main__":
    main()
