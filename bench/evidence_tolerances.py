"""How many ground-truth volumes pass each evidence check: the measurement behind the default tolerances.

Usage:
    python bench/evidence_tolerances.py [--data ../shared/data/acdc-dev] [--no-images]

Runs every check of ``monitor.qc.evidence`` (default ``EvidenceSettings``) on each ground-truth mask
of an ACDC-layout folder (``gt/patientNNN/patientNNN_frameFF_gt.nii.gz``), with its MR image
(``patientNNN_frameFF.nii.gz`` beside it) unless ``--no-images``. The pGT given to the stage is the
ground truth itself (the checks look at the mask; the refinement's added slices are counted too).

Prints, per structure and check: how many volumes ran it, the pass rate, the value's median, 95th and
99th percentiles and maximum, and the tolerance; then the share of ground-truth volumes with any
failed check (the aim: under 2 %, ideally at most 1 %), and which checks failed on which volumes.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import numpy as np


def _pairs(data: Path) -> list[tuple[Path, Path | None]]:
    out = []
    for gt in sorted((data / "gt").rglob("*_gt.nii.gz")):
        image = gt.with_name(gt.name.replace("_gt.nii.gz", ".nii.gz"))
        out.append((gt, image if image.is_file() else None))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/acdc-dev"))
    parser.add_argument("--no-images", action="store_true")
    args = parser.parse_args()

    from monitor.io.nifti import load_image, load_mask
    from monitor.qc.evidence import EvidenceSettings, evaluate_evidence
    from monitor.qc.scores import compare_structures

    pairs = _pairs(args.data)
    if not pairs:
        sys.exit(f"no ground truth under {args.data / 'gt'}")
    settings = EvidenceSettings()
    values: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    passed: dict[tuple[str, str], int] = collections.Counter()
    failures: list[str] = []
    changed = 0
    for gt_path, image_path in pairs:
        volume = load_mask(gt_path)
        image = None if args.no_images or image_path is None else load_image(image_path)[0]
        found = evaluate_evidence(volume.labels, volume.labels, volume.spacing_mm, image, settings)
        same = all(
            c.dice == 1.0 or np.isnan(c.dice)
            for c in compare_structures(volume.labels, found.refined_pgt, volume.spacing_mm, hausdorff=False)
        )
        changed += not same
        bad = []
        for structure, checks in found.checks.items():
            for check in checks:
                key = (structure.value, check.code.value)
                values[key].append(check.value)
                passed[key] += check.passed
                if not check.passed:
                    bad.append(f"{structure.value}:{check.code.value}={check.value:.3g}@{list(check.slices)}")
        if bad:
            failures.append(f"{gt_path.name}: {', '.join(bad)}")
    n = len(pairs)
    print(f"{n} ground-truth volumes, images {'off' if args.no_images else 'on'}")
    print(
        f"{'structure':<9} {'check':<16} {'runs':>5} {'pass %':>7} {'median':>8} {'p95':>8} {'p99':>8} {'max':>8}"
    )
    for key in sorted(values):
        v = np.asarray(values[key], dtype=float)
        print(
            f"{key[0]:<9} {key[1]:<16} {v.size:>5} {100 * passed[key] / v.size:>7.1f} {np.median(v):>8.3g} "
            f"{np.percentile(v, 95):>8.3g} {np.percentile(v, 99):>8.3g} {v.max():>8.3g}"
        )
    print(f"volumes with any failed check: {len(failures)} of {n} ({100 * len(failures) / n:.1f} %)")
    print(f"refined pGT differs from the ground truth (added slices): {changed} of {n}")
    for line in failures:
        print("  " + line)


if __name__ == "__main__":
    main()
