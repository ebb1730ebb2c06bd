"""Scale-out: 1, 2 and 4 daemons sharing one PostgreSQL queue, and what the database alone sustains.

Usage:
    python bench/scale.py [--database-url URL] [--files 240] [--daemons 1,2,4] [--threads N]
                          [--layout shared|split|both] [--batch-size 4] [--backlog N]
                          [--db-processes 1,2,4,8] [--db-seconds 8] [--skip-daemons] [--skip-db]

Part 1, daemons. For each count D in ``--daemons``, D real daemons (``python -m monitor.cli
watch``, CPU, ``--threads`` torch threads each; default: the machine's cores divided by D, at least 1)
share one PostgreSQL database, hence one queue. Layout ``shared``: all of them watch one folder, as
docs/daemon.md describes (each daemon sees, hashes, validates and enqueues every file; enqueueing is
idempotent); ``split``: daemon i watches its own subfolder and files are delivered round robin (the
queue is still shared: any daemon may score any file). ``--layout both`` (default) runs every count
shared, then every count above 1 split. ``--files`` ACDC-like synthetic masks
(``monitor.sim`` phantoms, made before the clock starts) are renamed into place, keeping at most
``--backlog`` files delivered but not ended (default 2 x batch size x D), so every worker always has a
batch waiting and the queue does not grow without bound. 2 x D warm-up files are scored first and not
counted. Each daemon's /metrics is scraped before and after; the figures are the differences.

Columns: files/s (files over the wall time from the first delivery to the last scored row); latency
p50/p95 from the rename to the scored row (a saturated daemon: mostly the wait in the backlog); the
database's time per file (every ``cmr_monitor_database_seconds`` operation of every daemon, divided by
the files) and per operation (mean ms per call, calls per file); and two shares:

- ``db/busy``: seconds of ``claim`` and ``record`` calls over the workers' busy seconds
  (``cmr_monitor_scoring_batch_duration_seconds``, which includes ``record``, plus ``claim``), summed
  over daemons: how much of a worker's time waits on the database;
- ``db/wall``: all database seconds (intake and worker threads) over wall time x D.

CPU columns: the daemons' CPU seconds per file (``/proc/<pid>/stat``, all threads), PostgreSQL's
(every ``postgres`` process on the host, so other clients of the server count too) and the host's busy
share (``/proc/stat``).

Part 2, database ceiling. K processes (``--db-processes``) each loop for ``--db-seconds``: enqueue
``--batch-size`` files (``enqueue_file``), claim a batch (``claim_batch``), record each file's scores
(``record_scores`` with a realistic ``VolumeScore``: 3 structures, timings, 2 artifact paths), straight
through ``monitor.store`` on the same PostgreSQL, no model. Reports files/s and transactions/s sustained,
and the mean latency per operation. The clients and the server share this machine's cores.

Database: ``--database-url`` (its schema is upgraded to head; rows are added, never deleted), else a new
database ``cmr_scale_<random>`` on the local server (127.0.0.1:5432, user postgres or root), dropped at
the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from _delivery import deliver, mask_pool
from prometheus_client.parser import text_string_to_metric_families

_REPO = Path(__file__).resolve().parents[1]
_POOL = 32
_ADMIN_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    "postgresql+psycopg://root@127.0.0.1:5432/postgres",
)
_CLK_TCK = os.sysconf("SC_CLK_TCK")
#: {(sample name, sorted label items): value}
Scrape = dict[tuple[str, tuple[tuple[str, str], ...]], float]


# ---------------------------------------------------------------------------------------- database


@contextmanager
def _database(url: str | None) -> Iterator[str]:
    """The URL to use: ``url``, or a new database on the local server that is dropped afterwards."""
    from monitor.store import upgrade

    if url is not None:
        upgrade(url)
        yield url
        return
    admin = _admin_engine()
    name = f"cmr_scale_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    target = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(target)
        yield target
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _admin_engine() -> sa.Engine:
    errors = []
    for candidate in _ADMIN_CANDIDATES:
        engine = sa.create_engine(
            candidate,
            poolclass=sa.NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"connect_timeout": 3},
        )
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return engine
        except sa.exc.OperationalError as exc:
            errors.append(f"{candidate}: {exc.orig}")
            engine.dispose()
    raise SystemExit("no local PostgreSQL; give --database-url\n" + "\n".join(errors))


def _server_settings(url: str) -> str:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            values = [
                f"{name} {connection.exec_driver_sql(f'SHOW {name}').scalar()}"
                for name in (
                    "server_version",
                    "synchronous_commit",
                    "fsync",
                    "shared_buffers",
                    "max_connections",
                )
            ]
    finally:
        engine.dispose()
    return ", ".join(values)


def _server_position(url: str) -> tuple[int, int]:
    """(WAL position in bytes, size of the database in bytes) of the server now."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            lsn = str(connection.exec_driver_sql("SELECT pg_current_wal_lsn()").scalar())
            size = int(
                connection.exec_driver_sql("SELECT pg_database_size(current_database())").scalar() or 0
            )
    finally:
        engine.dispose()
    high, low = lsn.split("/")
    return (int(high, 16) << 32) + int(low, 16), size


def _scored_at(sessions: Any, prefix: str) -> dict[str, float]:
    """path -> Unix time of its scored row, for scored files under ``prefix``."""
    from monitor.store import iter_export_rows

    with sessions() as session:
        return {
            row["path"]: _utc(row["scored_at"]).timestamp()
            for row in iter_export_rows(session, status="scored")
            if row["path"].startswith(prefix)
        }


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


# ---------------------------------------------------------------------------------------- CPU


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads); 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _postgres_cpu_s() -> float:
    """CPU seconds of every ``postgres`` process on the host (server and backends)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().startswith("postgres"):
                    total += _process_cpu_s(int(entry.name))
            except OSError:
                continue
    return total


def _host_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


# ---------------------------------------------------------------------------------------- daemons


def _serial_ms(masks: list[bytes], staging: Path) -> tuple[float, float]:
    """Median ms of (sha256 + ``load_mask``, writing the two artifacts) of one file.

    The first is what a daemon's intake does to every file it sees, and the worker again before
    scoring; the second is what the worker does after scoring (``save_labels`` of the pGT and the
    inconsistency map, here the mask itself and an empty map). Both run outside the ``Scorer``.
    """
    import hashlib

    from monitor.io.nifti import load_mask, save_labels
    from monitor.qc.labels import get_label_map

    label_map = get_label_map("acdc")
    loads, writes = [], []
    for i, data in enumerate(masks):
        path = staging / f"serial{i}.nii.gz"
        path.write_bytes(data)
        t0 = time.perf_counter()
        with open(path, "rb") as fh:
            hashlib.file_digest(fh, "sha256")
        volume = load_mask(path, label_map)
        t1 = time.perf_counter()
        save_labels(staging / "pgt.nii.gz", volume.labels, volume.affine, label_map=label_map)
        save_labels(staging / "xor.nii.gz", np.zeros(volume.shape, bool), volume.affine)
        t2 = time.perf_counter()
        loads.append(t1 - t0)
        writes.append(t2 - t1)
        path.unlink()
    return 1000 * float(np.median(loads)), 1000 * float(np.median(writes))


class _Daemon:
    """One ``cmr-monitor watch`` subprocess with its metrics port."""

    def __init__(
        self, folder: Path, *, url: str, work: Path, index: int, threads: int, batch_size: int
    ) -> None:
        from monitor.telemetry.server import free_port

        self.port = free_port()
        self.log = work / f"daemon{index}.log"
        self._log_offset = self._ended = 0
        command = [
            sys.executable, "-m", "monitor.cli", "watch", str(folder), "--db", url,
            "--artifacts", str(work / "artifacts"), "--device", "cpu", "--threads", str(threads),
            "--batch-size", str(batch_size), "--metrics-port", str(self.port), "--log-format", "json",
            "--stable-s", "0.5", "--poll-interval-s", "0.2",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(command, cwd=_REPO, stdout=out, stderr=subprocess.STDOUT, env=env)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, ""
        except OSError:
            return 0, ""

    def wait_ready(self, deadline: float) -> None:
        while self.get("/readyz")[0] != 200:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"daemon not ready; see {self.log}")
            time.sleep(0.2)

    def scrape(self) -> Scrape:
        status, body = self.get("/metrics")
        if status != 200:
            raise SystemExit(f"/metrics answered {status}; see {self.log}")
        return {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(body)
            for sample in family.samples
        }

    def ended(self) -> int:
        """Files this daemon scored or rejected so far, counted in its JSON log (no database query,
        which would add to the database's time being measured)."""
        with open(self.log, "rb") as log:
            log.seek(self._log_offset)
            text = log.read()
        text = text[: text.rfind(b"\n") + 1]  # whole lines only
        self._log_offset += len(text)
        self._ended += text.count(b'"action": "scored"') + text.count(b'"action": "rejected"')
        return self._ended

    def cpu_s(self) -> float:
        return _process_cpu_s(self.process.pid)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def _total(scrape: Scrape, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, items), v in scrape.items() if n == name and wanted <= set(items))


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonRun:
    """Figures of one daemon configuration (sums over its daemons, over the measured window)."""

    daemons: int
    layout: str  #: shared (one folder) or split (one folder each)
    threads: int
    files: int
    wall_s: float
    p50_s: float
    p95_s: float
    per_daemon: tuple[int, ...]  #: files scored by each daemon
    db_s: dict[str, float]  #: operation -> seconds in the database
    db_calls: dict[str, float]  #: operation -> successful calls
    busy_s: float  #: worker busy seconds: batch durations + claims
    daemon_cpu_s: float
    postgres_cpu_s: float
    host_busy: float  #: share of all cores busy


def run_daemons(
    count: int,
    layout: str,
    *,
    url: str,
    masks: list[bytes],
    work: Path,
    args: argparse.Namespace,
    threads: int,
) -> DaemonRun:
    """Start ``count`` daemons on ``url`` watching one folder (``layout`` shared) or one each (split),
    deliver ``args.files`` masks, stop them; the figures."""
    from monitor.store import make_engine, make_session_factory

    incoming = work / "incoming"
    folders = [incoming] if layout == "shared" else [incoming / str(i) for i in range(count)]
    targets = [f / "scale" / "1.0" for f in folders]
    for target in targets:
        target.mkdir(parents=True)
    daemons = [
        _Daemon(
            folders[i % len(folders)],
            url=url,
            work=work,
            index=i,
            threads=threads,
            batch_size=args.batch_size,
        )
        for i in range(count)
    ]
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    try:
        deadline = time.monotonic() + 300
        for daemon in daemons:
            daemon.wait_ready(deadline)
        warm = 2 * count
        for i in range(warm):
            deliver(targets[i % len(targets)], f"warm{i:03d}_ED.nii.gz", masks[i % len(masks)])
        while sum(d.ended() for d in daemons) < warm:
            time.sleep(0.1)
        before = [d.scrape() for d in daemons]
        cpu_before = [d.cpu_s() for d in daemons]
        pg_before, host_before = _postgres_cpu_s(), _host_jiffies()
        base = sum(d.ended() for d in daemons)
        backlog = args.backlog or 2 * args.batch_size * count
        delivered: dict[str, float] = {}
        ended = 0
        while ended < args.files:
            while len(delivered) < args.files and len(delivered) - ended < backlog:
                i = len(delivered)
                target = targets[i % len(targets)]
                delivered[str(target / f"case{i:05d}_ED.nii.gz")] = deliver(
                    target, f"case{i:05d}_ED.nii.gz", masks[(i + warm) % len(masks)]
                )
            time.sleep(0.1)
            ended = sum(d.ended() for d in daemons) - base
            if any(d.process.poll() is not None for d in daemons):
                raise SystemExit(f"a daemon exited; see {work}")
        after = [d.scrape() for d in daemons]
        cpu_after = [d.cpu_s() for d in daemons]
        pg_after, host_after = _postgres_cpu_s(), _host_jiffies()
        scored = _scored_at(sessions, str(incoming))
    finally:
        codes = [d.stop() for d in daemons]
        engine.dispose()
    if any(codes):
        print(f"warning: daemon exit codes {codes}; logs in {work}", file=sys.stderr)
    latencies = [scored[p] - t for p, t in delivered.items() if p in scored]
    if len(latencies) != args.files:
        raise SystemExit(f"{len(latencies)} of {args.files} files scored; see {work}")
    start = min(delivered.values())
    operations = sorted({dict(k[1]).get("operation", "") for s in after for k in s} - {""})

    def delta(name: str, **labels: str) -> float:
        return sum(
            _total(a, name, **labels) - _total(b, name, **labels) for a, b in zip(after, before, strict=True)
        )

    claim_s = delta("cmr_monitor_database_seconds_sum", operation="claim")
    return DaemonRun(
        daemons=count,
        layout=layout,
        threads=threads,
        files=args.files,
        wall_s=max(scored[p] for p in delivered) - start,
        p50_s=float(np.percentile(latencies, 50)),
        p95_s=float(np.percentile(latencies, 95)),
        per_daemon=tuple(
            round(_total(a, "cmr_monitor_files_scored_total") - _total(b, "cmr_monitor_files_scored_total"))
            for a, b in zip(after, before, strict=True)
        ),
        db_s={op: delta("cmr_monitor_database_seconds_sum", operation=op) for op in operations},
        db_calls={op: delta("cmr_monitor_database_seconds_count", operation=op) for op in operations},
        busy_s=delta("cmr_monitor_scoring_batch_duration_seconds_sum") + claim_s,
        daemon_cpu_s=sum(cpu_after) - sum(cpu_before),
        postgres_cpu_s=pg_after - pg_before,
        host_busy=(host_after[0] - host_before[0]) / max(1, host_after[1] - host_before[1]),
    )


def print_daemon_table(runs: list[DaemonRun]) -> None:
    print()
    header = (
        f"{'daemons':>7} {'layout':>6} {'thr':>3} {'files':>5} {'files/s':>7} {'p50 s':>6} {'p95 s':>6} "
        f"{'scored by daemon':>16} {'db ms/file':>10} {'db/busy':>7} {'db/wall':>7} {'cpu ms/file':>11} "
        f"{'pg ms/file':>10} {'host busy':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        db_total = sum(r.db_s.values())
        worker_db = r.db_s.get("claim", 0.0) + r.db_s.get("record", 0.0)
        print(
            f"{r.daemons:>7} {r.layout:>6} {r.threads:>3} {r.files:>5} {r.files / r.wall_s:>7.2f} "
            f"{r.p50_s:>6.2f} {r.p95_s:>6.2f} {'/'.join(map(str, r.per_daemon)):>16} "
            f"{1000 * db_total / r.files:>10.1f} {worker_db / r.busy_s:>7.1%} "
            f"{db_total / (r.wall_s * r.daemons):>7.1%} {1000 * r.daemon_cpu_s / r.files:>11.0f} "
            f"{1000 * r.postgres_cpu_s / r.files:>10.1f} {r.host_busy:>9.0%}"
        )
    print()
    print("database calls of all daemons: mean ms per call x calls per file, by operation; calls per second")
    operations = ("enqueue", "claim", "record")
    header = (
        f"{'daemons':>7} {'layout':>6} "
        + " ".join(f"{op:>16}" for op in (*operations, "other"))
        + f" {'calls/s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        other = [op for op in r.db_calls if op not in operations]
        cells = []
        for ops in (*((op,) for op in operations), other):
            calls = sum(r.db_calls.get(op, 0.0) for op in ops)
            seconds = sum(r.db_s.get(op, 0.0) for op in ops)
            cells.append(
                f"{1000 * seconds / calls:>7.2f} x {calls / r.files:>6.2f}" if calls else f"{'-':>16}"
            )
        rate = sum(r.db_calls.values()) / r.wall_s
        print(f"{r.daemons:>7} {r.layout:>6} " + " ".join(cells) + f" {rate:>8.1f}")


# ---------------------------------------------------------------------------------------- database ceiling


def _score() -> Any:
    """A realistic ``VolumeScore`` of a 10-slice ACDC volume (what the daemon records per file)."""
    from monitor.qc.labels import Structure
    from monitor.qc.levels import FlagLevel
    from monitor.qc.reasons import ReasonCode
    from monitor.qc.records import StructureScore, VolumeScore

    def structure(
        which: Structure, pdsc: float, phd_mm: float, flag: FlagLevel, reasons: tuple[ReasonCode, ...]
    ) -> Any:
        return StructureScore(
            structure=which,
            pdsc=pdsc,
            phd_mm=phd_mm,
            flag=flag,
            reasons=reasons,
            mask_voxels=21_000,
            pgt_voxels=20_400,
            mask_volume_ml=138.2,
        )

    return VolumeScore(
        structures=(
            structure(Structure.LV, 0.93, 4.9, FlagLevel.OK, ()),
            structure(Structure.RV, 0.88, 9.5, FlagLevel.OK, ()),
            structure(Structure.MYO, 0.47, 12.1, FlagLevel.SUSPICIOUS, (ReasonCode.PDSC_LOW,)),
        ),
        flag=FlagLevel.SUSPICIOUS,
        shape=(10, 232, 256),
        spacing_mm=(10.0, 1.5625, 1.5625),
        slices_scored=9,
        timings_s={"load": 0.004, "preprocess": 0.003, "model": 0.09, "postprocess": 0.002, "metrics": 0.016},
    )


def _db_client(
    url: str,
    model_id: int,
    batch: int,
    seconds: float,
    tag: str,
    ready: Any,
    start: Any,
    finish: Any,
    out: Any,
) -> None:
    """One ceiling client (a process): enqueue, claim and record in a loop; puts its counts on ``out``,
    then keeps its connection (and so its server process, whose CPU is counted) until ``finish``."""
    from monitor.store import claim_batch, enqueue_file, make_engine, make_session_factory, record_scores

    engine = make_engine(url)
    sessions = make_session_factory(engine)
    score = _score()
    times: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    n = 0

    def cycle(session: Any, count: bool) -> int:
        nonlocal n
        for _ in range(batch):
            t0 = time.perf_counter()
            enqueue_file(
                session,
                path=f"/bench/{tag}/{os.getpid()}/case{n:07d}_ED.nii.gz",
                content_hash=uuid.uuid4().hex * 2,
                case_key=f"case{n:07d}",
                phase="ED",
                segmenter_name="scale",
                segmenter_version="1.0",
            )
            n += 1
            if count:
                times["enqueue"] += time.perf_counter() - t0
                calls["enqueue"] += 1
        t0 = time.perf_counter()
        claimed = claim_batch(session, worker_id=f"bench/{tag}/{os.getpid()}", limit=batch, lease_s=600)
        if count:
            times["claim"] += time.perf_counter() - t0
            calls["claim"] += 1
        for item in claimed:
            t0 = time.perf_counter()
            artifacts = {kind: f"/qc/{item.file_id // 1000:06d}/{item.file_id}_{kind}.nii.gz" for kind in ("pgt", "inconsistency")}  # fmt: skip
            record_scores(session, item.file_id, score, model_id=model_id, artifacts=artifacts)
            if count:
                times["record"] += time.perf_counter() - t0
                calls["record"] += 1
        return len(claimed)

    with sessions() as session:
        cycle(session, count=False)  # connect and warm up
        ready.put(os.getpid())
        start.wait()
        began = time.perf_counter()
        recorded = 0
        while time.perf_counter() - began < seconds:
            recorded += cycle(session, count=True)
        elapsed = time.perf_counter() - began
        out.put({"recorded": recorded, "elapsed": elapsed, "times": dict(times), "calls": dict(calls)})
        finish.wait(timeout=120)
    engine.dispose()


@dataclass(frozen=True, slots=True, kw_only=True)
class DbRun:
    processes: int
    files: int
    elapsed_s: float
    times: dict[str, float]
    calls: dict[str, int]
    postgres_cpu_s: float
    clients_cpu_s: float
    host_busy: float
    wal_bytes: int  #: WAL the server wrote meanwhile (every database of the server)
    size_bytes: int  #: growth of this database


def run_db_ceiling(processes: int, *, url: str, args: argparse.Namespace) -> DbRun:
    from monitor.store import make_engine, make_session_factory, register_model

    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        model_id = register_model(session, "5" * 64, {"checkpoint": "bench/scale.py (no model)"})
    engine.dispose()
    context = mp.get_context("spawn")
    ready, out, start, finish = context.Queue(), context.Queue(), context.Event(), context.Event()
    tag = f"k{processes}-{uuid.uuid4().hex[:6]}"
    clients = [
        context.Process(
            target=_db_client,
            args=(url, model_id, args.batch_size, args.db_seconds, tag, ready, start, finish, out),
        )
        for _ in range(processes)
    ]
    for client in clients:
        client.start()
    for _ in clients:
        ready.get(timeout=120)
    position_before = _server_position(url)
    pg_before, host_before = _postgres_cpu_s(), _host_jiffies()
    clients_before = sum(_process_cpu_s(c.pid) for c in clients if c.pid is not None)
    start.set()
    results = [out.get(timeout=args.db_seconds + 120) for _ in clients]
    pg_after, host_after = _postgres_cpu_s(), _host_jiffies()
    clients_after = sum(_process_cpu_s(c.pid) for c in clients if c.pid is not None)
    position_after = _server_position(url)
    finish.set()
    for client in clients:
        client.join(timeout=30)
    times: dict[str, float] = defaultdict(float)
    calls: dict[str, int] = defaultdict(int)
    for result in results:
        for op, value in result["times"].items():
            times[op] += value
            calls[op] += result["calls"][op]
    return DbRun(
        processes=processes,
        files=sum(r["recorded"] for r in results),
        elapsed_s=max(r["elapsed"] for r in results),
        times=dict(times),
        calls=dict(calls),
        postgres_cpu_s=pg_after - pg_before,
        clients_cpu_s=clients_after - clients_before,
        host_busy=(host_after[0] - host_before[0]) / max(1, host_after[1] - host_before[1]),
        wal_bytes=position_after[0] - position_before[0],
        size_bytes=position_after[1] - position_before[1],
    )


def print_db_table(runs: list[DbRun]) -> None:
    print()
    header = (
        f"{'procs':>5} {'files':>6} {'files/s':>8} {'tx/s':>7} {'enqueue ms':>10} {'claim ms':>8} "
        f"{'record ms':>9} {'db ms/file':>10} {'pg ms/file':>10} {'client ms/file':>14} {'host busy':>9} "
        f"{'WAL kB/file':>11} {'size kB/file':>12}"
    )
    print(header)
    print("-" * len(header))
    for r in runs:
        transactions = sum(r.calls.values())
        mean = {
            op: 1000 * r.times.get(op, 0.0) / max(1, r.calls.get(op, 0))
            for op in ("enqueue", "claim", "record")
        }
        per_file = 1000 * sum(r.times.values()) / max(1, r.files)
        print(
            f"{r.processes:>5} {r.files:>6} {r.files / r.elapsed_s:>8.1f} {transactions / r.elapsed_s:>7.1f} "
            f"{mean['enqueue']:>10.2f} {mean['claim']:>8.2f} {mean['record']:>9.2f} {per_file:>10.2f} "
            f"{1000 * r.postgres_cpu_s / max(1, r.files):>10.2f} {1000 * r.clients_cpu_s / max(1, r.files):>14.2f} "
            f"{r.host_busy:>9.0%} {r.wal_bytes / 1024 / max(1, r.files):>11.1f} "
            f"{r.size_bytes / 1024 / max(1, r.files):>12.1f}"
        )


# ---------------------------------------------------------------------------------------- main


def _counts(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected counts >= 1 separated by commas, got {text!r}")
    return values


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=None, help="PostgreSQL URL (default: a new local database)")
    parser.add_argument("--files", type=int, default=240, help="masks delivered per daemon configuration")
    parser.add_argument("--daemons", type=_counts, default=[1, 2, 4], help="daemon counts (default 1,2,4)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads per daemon (default cores / D)"
    )
    parser.add_argument(
        "--layout",
        choices=("shared", "split", "both"),
        default="both",
        help="daemons watch one folder, one each, or both in turn (split only for 2 or more; default both)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="files claimed together (daemon and ceiling)"
    )
    parser.add_argument(
        "--backlog", type=int, default=0, help="most files not yet ended (default 2 x batch x D)"
    )
    parser.add_argument(
        "--db-processes", type=_counts, default=[1, 2, 4, 8], help="ceiling clients (1,2,4,8)"
    )
    parser.add_argument("--db-seconds", type=float, default=8.0, help="seconds per ceiling configuration")
    parser.add_argument("--skip-daemons", action="store_true", help="only the database ceiling")
    parser.add_argument("--skip-db", action="store_true", help="only the daemons")
    args = parser.parse_args()
    if args.files < 1 or args.batch_size < 1:
        parser.error("--files and --batch-size must be >= 1")

    cores = os.cpu_count() or 1
    began = time.monotonic()
    with _database(args.database_url) as url:
        from monitor.store import safe_url

        print(f"bench/scale.py on {cores} cores, load average {os.getloadavg()[0]:.2f} at start")
        print(f"PostgreSQL {safe_url(url)}: {_server_settings(url)}")
        if not args.skip_daemons:
            work = Path(tempfile.mkdtemp(prefix="cmr-scale-"))
            staging = work / "staging"
            staging.mkdir()
            masks = mask_pool(_POOL, staging=staging)
            load_ms, write_ms = _serial_ms(masks, staging)
            print(
                f"\n1. daemons: {args.files} ACDC-like masks per configuration, layout {args.layout}, batch size "
                f"{args.batch_size}, backlog {args.backlog or '2 x batch x daemons'}; work folder {work}"
            )
            print(
                f"   per file, median: sha256 + load_mask {load_ms:.1f} ms (intake: once per daemon that sees the "
                f"file; worker: once more), writing the 2 artifacts {write_ms:.1f} ms (worker)"
            )
            layouts = ("shared", "split") if args.layout == "both" else (args.layout,)
            configurations = [
                (count, layout)
                for layout in layouts
                for count in args.daemons
                if not (layout == "split" and count == 1 and args.layout == "both")
            ]
            runs = []
            for count, layout in configurations:
                threads = args.threads or max(1, cores // count)
                work_folder = work / f"{layout}{count}"
                runs.append(
                    run_daemons(
                        count, layout, url=url, masks=masks, work=work_folder, args=args, threads=threads
                    )
                )
                print(f"   {count} daemon(s), {layout}: done", flush=True)
            print_daemon_table(runs)
            print(
                "\ndb ms/file: every cmr_monitor_database_seconds operation of every daemon / files. db/busy: "
                "(claim + record) s / (scoring_batch_duration + claim) s, summed over daemons. db/wall: all "
                "database seconds / (wall x daemons). cpu ms/file: the daemons' CPU; pg ms/file: every postgres "
                "process's CPU; host busy: all cores."
            )
        if not args.skip_db:
            print(
                f"\n2. database ceiling: K processes x (enqueue {args.batch_size}, claim_batch, record_scores each) "
                f"for {args.db_seconds:.0f} s, no model"
            )
            print_db_table([run_db_ceiling(k, url=url, args=args) for k in args.db_processes])
            print(
                "\ntx/s: enqueue + claim + record transactions per second (each commits); db ms/file: the "
                "clients' wall time in those calls / files recorded; pg ms/file: CPU of every postgres process "
                "per file; client ms/file: the clients' CPU (Python, SQLAlchemy, psycopg) per file; WAL kB/file: "
                "WAL written by the server (all its databases) per file; size kB/file: growth of the database "
                "per file (tables and indexes, as allocated). Clients and server share the cores."
            )
    print(f"\ntotal {time.monotonic() - began:.0f} s, load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
