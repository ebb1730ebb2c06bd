"""Soak test: N files through the real daemon; throughput, latency, memory and file descriptors over time.

Usage:
    python bench/soak.py [--files 10000] [--backlog 32] [--sample-s 10] [--invalid-every 20] [--acdc]

Starts ``cmr-monitor watch`` (``python -m monitor.cli``) as a subprocess on CPU with a SQLite
database in a temporary folder, and delivers ``--files`` masks into it (renamed into place, the way a
segmenter should), keeping at most ``--backlog`` files waiting so that the run measures the daemon,
not a queue growing without bound. Every ``--invalid-every``-th file is a broken one (a truncated
transfer, a 2D image, float labels) that must be rejected. Masks come from a pool of 64 synthetic
phantoms made before the clock starts (4 slices of 96 x 96, or ACDC-like sizes with ``--acdc``),
each delivered under its own name.

Every ``--sample-s`` seconds a row of the table: files ended, throughput in the interval, the
daemon's resident memory (``VmRSS``), its peak (``VmHWM``), open file descriptors and threads, all
read from ``/proc/<pid>``. The clock starts once the daemon has started (model loaded); the latency
includes the wait in the backlog, so it is the latency of a saturated daemon. Over a long run memory and descriptors should be flat. At the end: overall
throughput, latency percentiles from the rename to the scored row, and the slope of memory and
descriptors over the second half of the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from _delivery import deliver, segmented_mask

_REPO = Path(__file__).resolve().parents[1]
_POOL = 64


def _make_masks(acdc: bool, staging: Path) -> list[bytes]:
    overrides = {} if acdc else {"n_slices": 4, "shape_yx": (96, 96)}
    return [
        segmented_mask(
            i,
            phase="ED" if i % 2 == 0 else "ES",
            quality=("good", "good", "fair", "poor")[i % 4],
            segmenter_seed=i,
            staging=staging,
            **overrides,
        )
        for i in range(_POOL)
    ]


def _broken(i: int, good: bytes, staging: Path) -> bytes:
    import nibabel as nib

    kind = i % 3
    if kind == 0:
        return good[: len(good) // 2]
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    if kind == 1:
        path = staging / "flat.nii.gz"
        nib.save(nib.Nifti1Image(np.zeros((32, 32), np.uint8), affine), path)
        return path.read_bytes()
    volume = np.zeros((32, 32, 3), np.float32)
    volume[8:20, 8:20, :] = 1.5
    path = staging / "float.nii.gz"
    nib.save(nib.Nifti1Image(volume, affine), path)
    return path.read_bytes()


def _proc(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (bytes), open descriptors and threads of a live process."""
    out = {"fds": len(os.listdir(f"/proc/{pid}/fd"))}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
        elif key == "Threads":
            out["threads"] = int(value)
    return out


class _Db:
    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.NullPool)

    def ended(self) -> tuple[int, int]:
        """(scored, rejected) rows."""
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(
                    sa.text(
                        "SELECT status, count(*) FROM mask_files WHERE status IN ('scored', 'rejected') GROUP BY status"
                    )
                ).all()
        except sa.exc.OperationalError:
            return 0, 0
        counts = dict(rows)
        return int(counts.get("scored", 0)), int(counts.get("rejected", 0))

    def scored_at(self) -> dict[str, float]:
        with self.engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT path, scored_at FROM mask_files WHERE status = 'scored'")
            ).all()
        out = {}
        for path, when in rows:
            stamp = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
            out[Path(path).name] = stamp.replace(tzinfo=UTC).timestamp()
        return out


def _slope_per_1000(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ``ys`` per 1,000 units of ``xs`` (nan with fewer than 3 points)."""
    if len(xs) < 3 or np.ptp(xs) == 0:
        return float("nan")
    return float(np.polyfit(np.asarray(xs), np.asarray(ys), 1)[0] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=10_000, help="files to deliver (default 10,000)")
    parser.add_argument("--backlog", type=int, default=32, help="most files delivered but not yet ended")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between table rows")
    parser.add_argument("--invalid-every", type=int, default=20, help="every n-th file is broken (0: none)")
    parser.add_argument("--acdc", action="store_true", help="ACDC-like masks instead of 4 x 96 x 96")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads of the daemon")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--workdir", type=Path, default=None, help="default: a new temporary folder")
    args = parser.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="cmr-soak-"))
    incoming, staging = work / "incoming" / "soak" / "1.0", work / "staging"
    incoming.mkdir(parents=True)
    staging.mkdir()
    masks = _make_masks(args.acdc, staging)
    broken = [_broken(i, masks[i], staging) for i in range(3)]
    url = f"sqlite:///{work / 'soak.db'}"
    command = [
        sys.executable, "-m", "monitor.cli", "watch", str(work / "incoming"), "--db", url,
        "--artifacts", str(work / "artifacts"), "--device", "cpu", "--no-metrics",
        "--threads", str(args.threads), "--batch-size", str(args.batch_size), "--log-format", "json",
        "--incomplete-timeout-s", "2", "--stable-s", "0.5",
    ]  # fmt: skip
    if args.checkpoint:
        command += ["--checkpoint", str(args.checkpoint)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    with open(work / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(command, cwd=_REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while b'"action": "started"' not in (work / "daemon.log").read_bytes():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"daemon did not start; see {work / 'daemon.log'}")
        time.sleep(0.2)
    db = _Db(url)
    delivered: dict[str, float] = {}
    samples: list[tuple[float, int, dict[str, int]]] = []
    size = "ACDC-like" if args.acdc else "4 x 96 x 96"
    print(
        f"soak: {args.files} files ({size}, 1 in {args.invalid_every or 'none'} broken), backlog {args.backlog},"
    )
    print(f"daemon pid {daemon.pid} on CPU ({args.threads} thread), SQLite; work folder {work}")
    header = (
        f"{'t (s)':>7} {'ended':>7} {'files/s':>8} {'RSS MiB':>8} {'peak MiB':>9} {'fds':>5} {'threads':>8}"
    )
    print(header)
    print("-" * len(header))
    try:
        start = time.monotonic()
        next_sample, last_ended, last_t = start, 0, start
        i = 0
        while True:
            if daemon.poll() is not None:
                raise SystemExit(f"daemon exited with {daemon.returncode}; see {work / 'daemon.log'}")
            scored, rejected = db.ended()
            ended = scored + rejected
            while i < args.files and i - ended < args.backlog:
                bad = args.invalid_every and i % args.invalid_every == args.invalid_every - 1
                name = f"{'broken' if bad else 'soak'}{i:06d}_ED.nii.gz"
                data = broken[i % 3] if bad else masks[i % _POOL]
                delivered[name] = deliver(incoming, name, data)
                i += 1
            now = time.monotonic()
            if now >= next_sample or ended >= args.files:
                proc = _proc(daemon.pid)
                rate = (ended - last_ended) / max(now - last_t, 1e-9)
                samples.append((now - start, ended, proc))
                print(
                    f"{now - start:7.0f} {ended:7d} {rate:8.2f} {proc['VmRSS'] / 2**20:8.0f} "
                    f"{proc['VmHWM'] / 2**20:9.0f} {proc['fds']:5d} {proc['threads']:8d}",
                    flush=True,
                )
                last_ended, last_t, next_sample = ended, now, now + args.sample_s
            if ended >= args.files:
                break
            time.sleep(0.1)
        elapsed = time.monotonic() - start
        scored_at = db.scored_at()
        latencies = [scored_at[n] - t for n, t in delivered.items() if n in scored_at]
        p = np.percentile(latencies, [50, 90, 95, 99]) if latencies else [float("nan")] * 4
        half = [s for s in samples if s[0] >= samples[-1][0] / 2]
        xs = [float(s[1]) for s in half]
        print()
        print(f"{'files':<34}{args.files} ({scored} scored, {rejected} rejected)")
        print(f"{'wall time':<34}{elapsed:.0f} s")
        print(f"{'throughput':<34}{args.files / elapsed:.2f} files/s")
        print(
            f"{'latency rename -> scored row':<34}p50 {p[0]:.2f} s, p90 {p[1]:.2f} s, p95 {p[2]:.2f} s, "
            f"p99 {p[3]:.2f} s, max {max(latencies, default=float('nan')):.2f} s"
        )
        rss = [s[2]["VmRSS"] / 2**20 for s in samples]
        print(f"{'resident memory':<34}start {rss[0]:.0f} MiB, end {rss[-1]:.0f} MiB, peak "
              f"{samples[-1][2]['VmHWM'] / 2**20:.0f} MiB")  # fmt: skip
        print(
            f"{'2nd half: RSS slope':<34}{_slope_per_1000(xs, [s[2]['VmRSS'] / 2**20 for s in half]):+.1f} MiB "
            f"per 1,000 files"
        )
        fds = [s[2]["fds"] for s in samples]
        print(f"{'open descriptors':<34}start {fds[0]}, end {fds[-1]}, max {max(fds)}")
        print(
            f"{'2nd half: fd slope':<34}{_slope_per_1000(xs, [float(s[2]['fds']) for s in half]):+.1f} per 1,000 files"
        )
    finally:
        daemon.terminate()
        code = daemon.wait(timeout=60)
        print(f"daemon exit code {code} (log: {work / 'daemon.log'})")


if __name__ == "__main__":
    main()
