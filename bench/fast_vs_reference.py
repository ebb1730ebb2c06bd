"""How far the fast ``Scorer`` is from the straightforward reference pipeline, on real or synthetic masks.

Usage:
    python bench/fast_vs_reference.py [--data DIR] [--n 60] [--precision fp32 bf16] [--device cpu]

For each volume, scores from the ``Scorer`` (fused model, bounding-box resampling, k-d tree Hausdorff)
are compared with ``tests/reference_scoring.py`` (the trained model as trained, whole-slice
interpolation, distance transforms over the whole volume). Prints, per precision: the share of pGT voxels
that differ, the largest and the 99th percentile |pDSC difference| and |pHD difference| (mm), and how
many structure flags differ. Without DIR, synthetic phantoms are used.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

_REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu", help="where the fast Scorer runs (the reference: CPU)")
    args = parser.parse_args()

    sys.path.insert(0, str(_REPO))
    from monitor.io.nifti import load_mask
    from monitor.model import Scorer
    from monitor.qc.flags import FlagPolicy
    from tests.reference_scoring import reference_flag, reference_score

    if args.data is not None:
        files = sorted([*args.data.rglob("*.nii.gz"), *args.data.rglob("*.nii")])[: args.n]
    else:
        from monitor.sim import write_dataset

        out = Path(tempfile.mkdtemp(prefix="cmr-bench-"))
        write_dataset(out, patients=max(1, (args.n + 1) // 2), seed=0)
        files = sorted((out / "gt").rglob("*_gt.nii.gz"))[: args.n]
    volumes = [load_mask(f) for f in files]
    base = Scorer(device="cpu", precision="fp32")
    references = [reference_score(base.model, v.labels, v.spacing_mm) for v in volumes]
    policy = FlagPolicy()
    print(f"{len(volumes)} volumes")
    print(
        f"{'precision':<10} {'pGT voxels differing':>21} {'max |dDSC|':>11} {'p99 |dDSC|':>11} "
        f"{'max |dHD| mm':>13} {'p99 |dHD| mm':>13} {'flags differing':>16}"
    )
    for precision in args.precision:
        scorer = Scorer(device=args.device, precision=precision)
        changed, voxels, d_dsc, d_hd, flags = 0, 0, [], [], 0
        for volume, (ref_pgt, ref_scores) in zip(volumes, references, strict=True):
            result = scorer.score(volume)
            changed += int(np.count_nonzero(result.pgt != ref_pgt))
            voxels += ref_pgt.size
            for s in result.score.structures:
                ref_dsc, ref_hd = ref_scores[s.structure]
                for values, a, b in ((d_dsc, s.pdsc, ref_dsc), (d_hd, s.phd_mm, ref_hd)):
                    if np.isnan(a) or np.isnan(b):  # defined on one side only: a mismatch
                        values.append(0.0 if np.isnan(a) and np.isnan(b) else float("inf"))
                    else:
                        values.append(abs(a - b))
                ref_flag = reference_flag(s.structure, volume.labels, ref_pgt, ref_dsc, ref_hd, policy)
                flags += ref_flag != s.flag
        print(
            f"{precision:<10} {changed / voxels:>20.5%} {max(d_dsc):>11.4f} {np.percentile(d_dsc, 99):>11.4f} "
            f"{max(d_hd):>13.2f} {np.percentile(d_hd, 99):>13.2f} {flags:>9} of {len(d_dsc)}"
        )


if __name__ == "__main__":
    main()
