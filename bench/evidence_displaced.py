"""The displaced-slice family against the evidence stage: volumes flagged, with and without the image.

Usage:
    python bench/evidence_displaced.py [--data ../shared/data/acdc-dev] [--patients 24] [--skip 0] [--mm 10 15]

For ``--patients`` dev patients after the first ``--skip`` (both phases), shifts one mid-ventricular slice of the
ground truth in-plane by each ``--mm`` (``monitor.sim.failures.displaced_slice``, seeded per volume;
the MR image stays where it was), and runs ``evaluate_evidence`` on the edit with the edit as its own
pGT (the autoencoder reconstructs such a slice as it is; the checks look at the mask). Prints, per
shift, with and without the image: volumes whose ``centroid_jump`` fails on LV or MYO, and volumes
with any failed check that raises a flag under the default severities. The untouched ground truths
are scored the same way, as the false-alarm baseline (``bench/evidence_tolerances.py`` has the full
table).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path("../shared/data/acdc-dev"))
    parser.add_argument("--patients", type=int, default=24)
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N patients (held-out runs)")
    parser.add_argument("--mm", type=float, nargs="+", default=[10.0, 15.0])
    args = parser.parse_args()

    from monitor.io.nifti import load_image, load_mask
    from monitor.qc.evidence import EvidenceSettings, evaluate_evidence
    from monitor.qc.flags import FlagPolicy
    from monitor.qc.labels import Structure
    from monitor.qc.levels import FlagLevel
    from monitor.qc.reasons import ReasonCode
    from monitor.sim.failures import NotApplicable, apply_failure

    gts = sorted((args.data / "gt").rglob("*_gt.nii.gz"))
    patients = sorted({p.parent.name for p in gts})[args.skip : args.skip + args.patients]
    gts = [p for p in gts if p.parent.name in patients]
    settings, policy = EvidenceSettings(), FlagPolicy()

    def verdict(labels: np.ndarray, spacing, image) -> tuple[bool, bool]:
        found = evaluate_evidence(labels, labels, spacing, image, settings)
        jump = any(
            c.code is ReasonCode.CENTROID_JUMP and not c.passed
            for s in (Structure.LV, Structure.MYO)
            for c in found.checks[s]
        )
        flagged = any(
            not c.passed and policy.severity(c.code) is not FlagLevel.OK
            for checks in found.checks.values()
            for c in checks
        )
        return jump, flagged

    rows: dict[str, list[tuple[bool, bool, bool, bool]]] = {"ground truth": []}
    for strength in args.mm:
        rows[f"displaced {strength:g} mm"] = []
    for i, path in enumerate(gts):
        volume = load_mask(path)
        image = load_image(path.with_name(path.name.replace("_gt.nii.gz", ".nii.gz")))[0]
        cases = {"ground truth": volume.labels}
        for strength in args.mm:
            try:
                cases[f"displaced {strength:g} mm"] = apply_failure(
                    volume.labels, volume.spacing_mm, "displaced_slice", strength, np.random.default_rng(i)
                )
            except NotApplicable:
                continue
        for name, labels in cases.items():
            rows[name].append(
                (*verdict(labels, volume.spacing_mm, image), *verdict(labels, volume.spacing_mm, None))
            )
    print(f"{len(patients)} patients, {len(gts)} volumes")
    print(f"{'set':<20} {'n':>4} {'jump+img':>9} {'flag+img':>9} {'jump':>6} {'flag':>6}")
    for name, found in rows.items():
        a = np.asarray(found, dtype=bool).reshape(-1, 4)
        counts = " ".join(f"{int(k):>{w}}" for k, w in zip(a.sum(axis=0), (9, 9, 6, 6), strict=True))
        print(f"{name:<20} {len(a):>4} {counts}")


if __name__ == "__main__":
    main()
