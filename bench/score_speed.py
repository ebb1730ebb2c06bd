"""Scoring speed end to end, per stage: what one mask costs from its file to its database row.

Usage:
    python bench/score_speed.py [--data DIR] [--n 60] [--batch 1] [--device cpu] [--threads 2]
                                [--precision fp32] [--database-url URL] [--conv-reference]

DIR is any folder of masks (e.g. ../shared/data/acdc-dev/predictions/tiramisu); without it, synthetic
ACDC-like phantoms are written to a temporary folder first. Each volume goes through what the daemon
does with a claimed file:

- ``load``: SHA-256 of the file, NIfTI load and validation;
- ``preprocess``, ``model``, ``postprocess``, ``metrics``, ``evidence``: the ``Scorer``'s own timings
  (``evidence``: the evidence stage, i.e. refined pGT, checks and refined metrics, no image);
- ``artifacts``: writing the pGT and the inconsistency map as NIfTI;
- ``database``: enqueue, claim and the scores transaction (file row, 3 structure rows, 2 artifact
  rows) in a fresh SQLite file, or in ``--database-url`` (e.g. a scratch PostgreSQL database; its
  tables are created by the migrations).

``--scorer-only`` leaves out artifacts and database (the ``Scorer``'s own throughput, e.g. on a GPU
with ``--device cuda --batch 64 --prefetch``).

Prints per-stage mean and median seconds per volume, the end to end median, volumes per second and
peak memory. The first volume is a warm-up and is not counted. Then the post-model step alone
(``score_volume``) on the same masks and pGTs, before (``evidence=None``, the paper's metrics) and
after (with the evidence stage), in one run: the evidence stage's cost per volume.

``--conv-reference`` also measures this machine's throughput for the model's own convolutions: each
of the 20 convolution layers alone (random input of the layer's shape, the faster of the contiguous and
channels-last layouts, bias only) for a batch of 10 slices, against the scorer's forward pass for 10
real slices; the ratio is the forward pass's share of the achievable convolution throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

STAGES = ("load", "preprocess", "model", "postprocess", "metrics", "evidence", "artifacts", "database")


def _files(data: Path | None, n: int) -> list[Path]:
    if data is not None:
        files = sorted([*data.rglob("*.nii.gz"), *data.rglob("*.nii")])
        return files[: n + 1]
    from monitor.sim import write_dataset

    out = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    write_dataset(out, patients=max(1, (n + 2) // 2), seed=0)
    return sorted((out / "gt").rglob("*_gt.nii.gz"))[: n + 1]


def _load_chunk(chunk: list[Path]) -> tuple[list[object], list[str], float]:
    """(volumes, SHA-256 of each file, seconds taken) for the files of one batch."""
    from monitor.io.nifti import load_mask

    began = time.perf_counter()
    volumes, digests = [], []
    for path in chunk:
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
        volumes.append(load_mask(path))
    return volumes, digests, time.perf_counter() - began


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def conv_reference(scorer: object, slices: object, repeats: int = 15) -> None:
    """Print the standalone time of each convolution for ``slices`` [n, 256, 256] and the forward's share."""
    import torch
    from torch import nn

    from monitor.model.autoencoder import DECODER_LAYERS, ENCODER_LAYERS

    n = len(slices)  # type: ignore[arg-type]
    total_s = 0.0
    flop = 0.0
    rows = []
    with torch.inference_mode():
        x = torch.rand(n, 4, 256, 256)
        for layers, conv_cls in ((ENCODER_LAYERS, nn.Conv2d), (DECODER_LAYERS, nn.ConvTranspose2d)):
            for c_in, c_out, kernel, stride in layers:
                conv = conv_cls(c_in, c_out, kernel, stride, 1).eval()
                y = conv(x)
                best = min(
                    _median_time(lambda c=conv, i=x: c(i), repeats),
                    _median_time(
                        lambda c=conv.to(memory_format=torch.channels_last), i=x.contiguous(memory_format=torch.channels_last): (
                            c(i)
                        ),
                        repeats,
                    ),
                )
                macs = (y if conv_cls is nn.Conv2d else x).numel() * (
                    c_in if conv_cls is nn.Conv2d else c_out
                )
                layer_flop = 2.0 * macs * kernel * kernel
                rows.append(
                    (conv_cls.__name__, c_in, c_out, kernel, stride, tuple(y.shape[2:]), best, layer_flop)
                )
                total_s += best
                flop += layer_flop
                x = torch.rand_like(y)
        a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
        gemm = 2.0 * 2048**3 / _median_time(lambda: a @ b, 5)
        batch = scorer.network.encode(slices)  # type: ignore[attr-defined]
        forward = _median_time(lambda: scorer._forward(batch), repeats)  # type: ignore[attr-defined]
    print(f"\nconvolutions alone, batch of {n} slices (best of contiguous / channels-last):")
    for name, c_in, c_out, k, s, out, seconds, layer_flop in rows:
        print(
            f"  {name:<16} {c_in:>3}->{c_out:<3} k{k} s{s} out {out!s:<11} {seconds * 1e3:7.2f} ms "
            f"{layer_flop / seconds / 1e9:6.1f} GFLOP/s"
        )
    print(
        f"  sum {total_s * 1e3:.1f} ms for {flop / 1e9:.2f} GFLOP = {flop / total_s / 1e9:.0f} GFLOP/s "
        f"(fp32 SGEMM 2048^3 on this machine: {gemm / 1e9:.0f} GFLOP/s)"
    )
    print(
        f"scorer forward pass, same {n} slices: {forward * 1e3:.1f} ms = {flop / forward / 1e9:.0f} GFLOP/s, "
        f"{100 * total_s / forward:.0f}% of the convolutions' own throughput"
    )


def evidence_before_after(kept: list[tuple[object, object, object]]) -> None:
    """Print ``score_volume``'s time per volume without and with the evidence stage (same inputs)."""
    from monitor.qc.flags import FlagPolicy
    from monitor.qc.scores import score_volume

    policy = FlagPolicy()
    before, after = [], []
    for mask, pgt, spacing in kept:
        for evidence, out in ((None, before), ("default", after)):
            kwargs = {} if evidence == "default" else {"evidence": None}
            began = time.perf_counter()
            score_volume(mask, pgt, spacing, policy=policy, slices_scored=0, **kwargs)  # type: ignore[arg-type]
            out.append(time.perf_counter() - began)
    if before:
        b, a = statistics.median(before) * 1e3, statistics.median(after) * 1e3
        print(
            f"post-model step (score_volume), median ms/volume: before {b:.1f} (paper's metrics), "
            f"after {a:.1f} (with evidence): the evidence stage adds {a - b:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=60, help="volumes to time (one more is the warm-up)")
    parser.add_argument("--batch", type=int, default=1, help="volumes per Scorer.score_batch call")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--precision", default="fp32", help="fp32, bf16 or fp16 (see monitor.model.inference)"
    )
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    parser.add_argument("--conv-reference", action="store_true")
    parser.add_argument(
        "--cpu-workers",
        type=int,
        default=None,
        help="Scorer threads for per-volume CPU stages (default: Scorer's)",
    )
    parser.add_argument(
        "--batch-slices", type=int, default=None, help="slices per forward pass (Scorer's default)"
    )
    parser.add_argument("--prefetch", action="store_true", help="load the next batch while one is scored")
    parser.add_argument(
        "--scorer-only",
        action="store_true",
        help="no artifacts and no database rows: the Scorer's throughput",
    )
    args = parser.parse_args()

    import torch

    from monitor.io.nifti import load_mask, save_labels
    from monitor.model import Scorer
    from monitor.store import claim_batch, enqueue_file, migrate, record_scores, register_model
    from monitor.store.engine import make_engine, make_session_factory

    files = _files(args.data, args.n)
    if len(files) < 2:
        sys.exit("need at least two masks (one is the warm-up)")
    scorer = Scorer(
        args.checkpoint,
        device=args.device,
        threads=args.threads,
        precision=args.precision,
        cpu_workers=args.cpu_workers,
        batch_slices=args.batch_slices,
    )
    scratch = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
    url = args.database_url or f"sqlite:///{scratch / 'bench.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    session = make_session_factory(engine)()
    model_id = register_model(session, scorer.checkpoint_sha256, {"bench": "score_speed"})
    print(
        f"{len(files) - 1} volumes (+1 warm-up), batch {args.batch}, device {scorer.device}, "
        f"precision {scorer.precision}, torch threads {torch.get_num_threads()}, CPU workers "
        f"{scorer.cpu_workers}, prefetch {'on' if args.prefetch else 'off'}, database {engine.dialect.name}"
    )

    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    totals: list[float] = []
    kept: list[tuple[object, object, object]] = []  # (mask, pGT, spacing) for the before/after timing
    slices = 0
    batches = [files[:1]] + [files[i : i + args.batch] for i in range(1, len(files), args.batch)]
    loader = ThreadPoolExecutor(1) if args.prefetch else None
    pending = loader.submit(_load_chunk, batches[0]) if loader else None
    began = time.perf_counter()
    for index, chunk in enumerate(batches):
        if index == 1:
            began = time.perf_counter()
        t0 = time.perf_counter()
        if pending is not None:
            volumes, ids, t_load = pending.result()
            if index + 1 < len(batches):  # load the next batch while this one is scored
                pending = loader.submit(_load_chunk, batches[index + 1])  # type: ignore[union-attr]
        else:
            volumes, ids, t_load = _load_chunk(chunk)
        results = scorer.score_batch(volumes)
        t1 = time.perf_counter()
        written: list[dict[str, str]] = []
        for i, (volume, result) in enumerate(zip(volumes, results, strict=True)):
            if args.scorer_only:
                break
            pgt = save_labels(scratch / f"{index}_{i}_pgt.nii.gz", result.pgt, volume.affine)
            xor = save_labels(scratch / f"{index}_{i}_xor.nii.gz", result.inconsistency, volume.affine)
            written.append({"pgt": str(pgt), "inconsistency": str(xor)})
        t2 = time.perf_counter()
        for i, (path, digest, result) in enumerate(zip(chunk, ids, results, strict=True)):
            if args.scorer_only:
                break
            file_id, _ = enqueue_file(
                session,
                path=f"{path}#{index}.{i}",
                content_hash=digest,
                case_key=path.stem,
                phase=None,
                segmenter_name="bench",
                segmenter_version="1",
            )
            claim_batch(session, worker_id="bench", limit=1, lease_s=60)
            record_scores(
                session,
                file_id,
                result.score,
                model_id=model_id,
                artifacts=written[i],
            )
        t3 = time.perf_counter()
        if index == 0:
            continue
        kept.extend((v.labels, r.pgt, v.spacing_mm) for v, r in zip(volumes, results, strict=True))
        per = len(chunk)
        for result in results:
            times["load"].append(t_load / per)
            for stage in ("preprocess", "model", "postprocess", "metrics", "evidence"):
                times[stage].append(result.score.timings_s[stage])
            times["artifacts"].append((t2 - t1) / per)
            times["database"].append((t3 - t2) / per)
            totals.append((t3 - t0) / per)
            slices += result.score.slices_scored
    wall = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    n = len(totals)
    print(f"{'stage':<12} {'mean s/vol':>10} {'median':>10}")
    for stage, values in times.items():
        print(f"{stage:<12} {statistics.fmean(values):>10.4f} {statistics.median(values):>10.4f}")
    print(f"{'end to end':<12} {statistics.fmean(totals):>10.4f} {statistics.median(totals):>10.4f}")
    print(f"volumes/s: {n / wall:.2f}   slices/volume: {slices / n:.1f}   peak RSS: {peak_mb:.0f} MB")
    session.close()
    engine.dispose()
    evidence_before_after(kept)

    if args.conv_reference:
        from monitor.model.preprocess import to_model_space

        batch = []
        for path in files:
            volume = load_mask(path)
            batch.extend(to_model_space(volume.labels, volume.spacing_mm)[0])
            if len(batch) >= 10:
                break
        import numpy as np

        conv_reference(scorer, np.stack(batch[:10]))


if __name__ == "__main__":
    main()
