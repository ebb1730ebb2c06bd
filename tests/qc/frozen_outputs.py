"""Frozen outputs of the evidence stage and the calibration features, for the speed work's regression test.

A shipped calibration was fitted on these numbers, so a faster evidence stage or feature code must give
back every value exactly (to 1e-9 relative): pDSC/pHD plain and refined, every check (value, verdict,
slices), the refined pGT's bytes, and every mask and image feature. ``cases`` builds the volumes
(phantoms, with and without the MR image, the failure families of ``monitor.sim.failures`` at their
strongest, the simulated segmenters, and edge cases), ``outputs`` turns one into plain numbers.

Regenerate the fixture only with the reference code (it was written with main at ``cf19843``, before
issue 23 changed any of this code, e.g. ``git archive cf19843 monitor | tar -x -C /tmp/ref``)::

    PYTHONPATH=/tmp/ref python -m tests.qc.frozen_outputs tests/qc/data/frozen_outputs.json

Flags and reason codes are not pinned: they follow the flag policy, which changes on its own.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.qc.calibration.features import Features, image_features, mask_features
from monitor.qc.evidence import evaluate_evidence
from monitor.qc.flags import FlagPolicy
from monitor.qc.records import VolumeScore
from monitor.qc.scores import score_volume
from monitor.sim import SEGMENTERS, make_image, make_patient
from monitor.sim.failures import FAMILIES, NotApplicable, apply_failure
from monitor.typing import Spacing3

__all__ = ["FIXTURE", "Case", "cases", "features_record", "outputs"]

FIXTURE = Path(__file__).parent / "data" / "frozen_outputs.json"


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    """One volume of the fixture."""

    name: str  #: stable key in the fixture
    mask: np.ndarray  #: uint8 [z, y, x] canonical labels
    pgt: np.ndarray  #: uint8 [z, y, x] its pseudo ground truth
    spacing_mm: Spacing3  #: (dz, dy, dx) in mm
    image: np.ndarray | None  #: the MR image [z, y, x], or None


def _patient(seed: int, phase: str = "ED", **overrides: object) -> tuple[np.ndarray, Spacing3, np.ndarray]:
    rng = np.random.default_rng(seed)
    ed, es = make_patient(rng, **overrides)
    phantom = ed if phase == "ED" else es
    return phantom.labels, phantom.spacing_mm, make_image(phantom.labels, rng, phantom.spacing_mm)


def cases() -> list[Case]:
    """The fixture's volumes (deterministic)."""
    out: list[Case] = []
    for seed in range(3):  # clean phantoms, pGT = the mask and pGT from a fair segmenter
        for phase in ("ED", "ES"):
            gt, spacing, image = _patient(seed, phase)
            fair, _ = SEGMENTERS["fair"].apply(gt, np.random.default_rng(100 + seed), spacing)
            out.append(Case(name=f"clean-{seed}-{phase}", mask=gt, pgt=gt, spacing_mm=spacing, image=image))
            out.append(
                Case(name=f"clean-{seed}-{phase}-fairpgt", mask=gt, pgt=fair, spacing_mm=spacing, image=None)
            )
    for i, name in enumerate(SEGMENTERS):  # simulated segmenters, the clean volume as pGT
        gt, spacing, image = _patient(10 + i)
        mask, _ = SEGMENTERS[name].apply(gt, np.random.default_rng(i), spacing)
        out.append(Case(name=f"segmenter-{name}", mask=mask, pgt=gt, spacing_mm=spacing, image=image))
    for i, (family, spec) in enumerate(FAMILIES.items()):  # every family, as strong as it applies
        mask = None
        for seed in range(20 + i, 40 + i):
            gt, spacing, image = _patient(seed)
            for strength in reversed(spec.strengths):
                try:
                    mask = apply_failure(gt, spacing, family, strength, np.random.default_rng(i))
                    break
                except NotApplicable:
                    continue
            if mask is not None:
                break
        if mask is not None:
            pgt = gt if i % 2 == 0 else mask  # a perfect autoencoder, or one that reconstructs the mistake
            out.append(Case(name=f"family-{family}", mask=mask, pgt=pgt, spacing_mm=spacing, image=image))
    # edge cases: anisotropic small volume, a missing structure, an empty mask, a constant image
    gt, spacing, image = _patient(40, n_slices=7, shape_yx=(150, 170))
    out.append(Case(name="small-aniso", mask=gt, pgt=gt, spacing_mm=(6.5, 1.37, 1.37), image=image))
    no_rv = np.where(gt == 1, 0, gt).astype(np.uint8)
    out.append(Case(name="no-rv", mask=no_rv, pgt=gt, spacing_mm=spacing, image=image))
    empty = np.zeros_like(gt)
    out.append(Case(name="empty-mask", mask=empty, pgt=gt, spacing_mm=spacing, image=image))
    flat = np.full(gt.shape, 7.0, np.float32)
    out.append(Case(name="constant-image", mask=gt, pgt=gt, spacing_mm=spacing, image=flat))
    return out


def _score(score: VolumeScore) -> dict[str, object]:
    # flags are left out: they follow the flag policy (monitor.qc.flags), which may change on its own
    return {
        "image_used": score.image_used,
        "structures": {
            s.structure.value: {
                "pdsc": s.pdsc,
                "phd_mm": s.phd_mm,
                "pdsc_3d": s.pdsc_3d,
                "phd_mm_3d": s.phd_mm_3d,
                "mask_voxels": s.mask_voxels,
                "pgt_voxels": s.pgt_voxels,
                "mask_volume_ml": s.mask_volume_ml,
                "pgt_volume_ml": s.pgt_volume_ml,
                "checks": [[c.code.value, c.value, c.passed, list(c.slices)] for c in s.evidence],
            }
            for s in score.structures
        },
    }


def features_record(features: Features) -> dict[str, dict[str, float]]:
    """Features as plain JSON types, structures by name."""
    return {s.value: dict(sorted(row.items())) for s, row in features.items()}


def outputs(case: Case) -> dict[str, object]:
    """Every number the fixture pins for one case (plain JSON types; nan and inf as floats)."""
    policy = FlagPolicy()
    out: dict[str, object] = {}
    for key, image in (("score", None), ("score_image", case.image)):
        score = score_volume(
            case.mask, case.pgt, case.spacing_mm, policy=policy, slices_scored=0, image=image
        )
        out[key] = _score(score)
    refined = evaluate_evidence(case.mask, case.pgt, case.spacing_mm).refined_pgt
    out["refined_pgt_sha256"] = hashlib.sha256(np.ascontiguousarray(refined).tobytes()).hexdigest()
    out["mask_features"] = features_record(mask_features(case.mask, case.pgt, case.spacing_mm))
    out["mask_features_no_pgt"] = features_record(mask_features(case.mask, None, case.spacing_mm))
    if case.image is not None:
        out["image_features"] = features_record(image_features(case.image, case.mask))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Write the frozen outputs fixture (from a reference commit)."
    )
    parser.add_argument("out", type=Path, nargs="?", default=FIXTURE)
    args = parser.parse_args()
    data = {case.name: outputs(case) for case in cases()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=None, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"{len(data)} cases -> {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
