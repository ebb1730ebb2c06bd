"""Daemon latency and throughput: from a mask file being complete to its scored row, on CPU.

Usage:
    python bench/daemon_latency.py [--rate 1] [--duration 60] [--burst 60] [--small] [--threads N] [--images]

Starts ``cmr-monitor watch`` (``python -m monitor.cli``) as a subprocess on a temporary folder
with a SQLite database, then:

1. steady: writes ``rate`` masks per second for ``duration`` seconds, each renamed into place (the way
   a segmenter should deliver), and measures per file the time from the rename to its row's
   ``scored_at`` (p50, p95, max);
2. burst: writes ``burst`` masks at once and measures how many files per second the daemon sustains
   from the first write to the last scored row.

Masks are synthetic phantoms of ACDC-like size (6-14 slices, 180-260 voxels in-plane), or 5 slices of
128 x 128 with ``--small``; they are made before the clock starts. Two warm-up files are not counted.
With ``--images`` each mask comes with its MR-like image (in a folder beside the watched one, named by a
sidecar written before the mask), so the daemon pairs it and runs the image evidence.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from _delivery import deliver, mr_image, segmented_mask

_REPO = Path(__file__).resolve().parents[1]


def _overrides(small: bool) -> dict[str, object]:
    return {"n_slices": 5, "shape_yx": (128, 128)} if small else {}


def _make_images(n: int, small: bool, folder: Path) -> list[Path]:
    """The MR-like image of each mask of ``_make_masks`` (same seeds and phases)."""
    return [
        mr_image(
            i, phase="ED" if i % 2 == 0 else "ES", path=folder / f"image{i:04d}.nii.gz", **_overrides(small)
        )
        for i in range(n)
    ]


def _make_masks(n: int, small: bool, staging: Path) -> list[bytes]:
    overrides = _overrides(small)
    return [
        segmented_mask(
            i,
            phase="ED" if i % 2 == 0 else "ES",
            quality="good" if i % 4 else "poor",
            segmenter_seed=i,
            staging=staging,
            **overrides,
        )
        for i in range(n)
    ]


def _scored_at(url: str) -> dict[str, float]:
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT path, scored_at FROM mask_files WHERE status = 'scored'")
            ).all()
    except sa.exc.OperationalError:  # the daemon has not created its tables yet
        return {}
    finally:
        engine.dispose()
    out = {}
    for path, when in rows:
        stamp = when if isinstance(when, datetime) else datetime.fromisoformat(str(when))
        out[Path(path).name] = stamp.replace(tzinfo=UTC).timestamp()
    return out


def _wait_scored(url: str, names: list[str], timeout_s: float) -> dict[str, float]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        scored = _scored_at(url)
        if all(n in scored for n in names):
            return scored
        time.sleep(0.05)
    raise SystemExit(f"timed out: {sum(n in _scored_at(url) for n in names)}/{len(names)} scored")


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=1.0, help="masks per second in the steady phase")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of the steady phase")
    parser.add_argument("--burst", type=int, default=60, help="masks written at once in the burst phase")
    parser.add_argument(
        "--small", action="store_true", help="5 slices of 128 x 128 instead of ACDC-like sizes"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads of the daemon")
    parser.add_argument("--batch-size", type=int, default=8, help="files the daemon scores together")
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--images", action="store_true", help="each mask with its MR-like image (sidecar)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cmr-daemon-bench-"))
    incoming, staging = work / "incoming", work / "staging"
    incoming.mkdir()
    staging.mkdir()
    n_steady = max(1, round(args.rate * args.duration))
    masks = _make_masks(2 + n_steady + args.burst, args.small, staging)
    images = _make_images(len(masks), args.small, work / "images") if args.images else []

    def send(name: str, index: int) -> float:
        if images:  # the sidecar first: it is read when the mask is complete
            sidecar = {"image": str(images[index])}
            (incoming / name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
        return deliver(incoming, name, masks[index])

    url = f"sqlite:///{work / 'bench.db'}"
    command = [
        sys.executable, "-m", "monitor.cli", "watch", str(incoming), "--db", url,
        "--artifacts", str(work / "artifacts"), "--device", "cpu", "--no-metrics",
        "--batch-size", str(args.batch_size), "--log-format", "json",
    ]  # fmt: skip
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.checkpoint:
        command += ["--checkpoint", str(args.checkpoint)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    with open(work / "daemon.log", "wb") as log:
        daemon = subprocess.Popen(command, cwd=_REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        size = "small (5 x 128 x 128)" if args.small else "ACDC-like (6-14 slices, 180-260 px)"
        with_images = ", each with its MR image" if images else ""
        print(
            f"daemon on CPU, SQLite, {size} masks{with_images}, batch size {args.batch_size}, work folder {work}"
        )
        warm = [f"warm{i}_ED.nii.gz" for i in range(2)]
        time.sleep(1.0)
        for index, name in enumerate(warm):
            send(name, index)
        _wait_scored(url, warm, timeout_s=120)

        done_at: dict[str, float] = {}
        start = time.monotonic()
        for i in range(n_steady):
            time.sleep(max(0.0, start + i / args.rate - time.monotonic()))
            name = f"steady{i:04d}_ED.nii.gz"
            done_at[name] = send(name, 2 + i)
        scored = _wait_scored(url, list(done_at), timeout_s=120)
        latencies = [scored[n] - t for n, t in done_at.items()]
        print(
            f"steady {args.rate:g} file/s for {args.duration:g} s ({n_steady} files): latency complete -> "
            f"scored row p50 {_percentile(latencies, 50):.2f} s, p95 {_percentile(latencies, 95):.2f} s, "
            f"max {max(latencies):.2f} s, mean {statistics.fmean(latencies):.2f} s"
        )

        burst = [f"burst{i:04d}_ED.nii.gz" for i in range(args.burst)]
        if burst:
            first = time.time()
            for i, name in enumerate(burst):
                send(name, 2 + n_steady + i)
            scored = _wait_scored(url, burst, timeout_s=600)
            elapsed = max(scored[n] for n in burst) - first
            print(
                f"burst of {args.burst} files: all scored in {elapsed:.1f} s = {args.burst / elapsed:.2f} files/s sustained"
            )
        if images:
            engine = sa.create_engine(url, poolclass=sa.NullPool)
            with engine.connect() as connection:
                used = connection.execute(
                    sa.text("SELECT count(*) FROM mask_files WHERE image_used")
                ).scalar()
            engine.dispose()
            print(f"MR image used as evidence for {used} of {len(masks)} files")
    finally:
        daemon.terminate()
        code = daemon.wait(timeout=60)
        print(f"daemon exit code {code} (log: {work / 'daemon.log'})")


if __name__ == "__main__":
    main()
