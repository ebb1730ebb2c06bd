"""Shared by the daemon benchmarks: synthetic segmented masks as file bytes, and delivery by rename.

Imported as ``_delivery`` by scripts run as ``python bench/<script>.py`` (their folder is on the path).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np


def segmented_mask(
    patient_seed: int, *, phase: str, quality: str, segmenter_seed: int, staging: Path, **overrides: object
) -> bytes:
    """A phantom of one patient and phase, corrupted by a simulated segmenter, as ``.nii.gz`` bytes.

    Args:
        patient_seed: seed of the patient's geometry (``monitor.sim.make_patient``).
        phase: "ED" or "ES".
        quality: a ``monitor.sim.SEGMENTERS`` name ("good", "fair", "poor").
        segmenter_seed: seed of the segmenter's errors.
        staging: a scratch folder (the file is written there and removed).
        overrides: ``PhantomGeometry`` fields, e.g. ``n_slices=4, shape_yx=(96, 96)``.
    """
    from monitor.io.nifti import save_labels
    from monitor.sim import SEGMENTERS, make_patient

    ed, es = make_patient(np.random.default_rng(patient_seed), **overrides)
    phantom = ed if phase == "ED" else es
    labels, _ = SEGMENTERS[quality](phantom.labels, np.random.default_rng(segmenter_seed), phantom.spacing_mm)
    path = save_labels(staging / f"m{patient_seed}_{segmenter_seed}.nii.gz", labels, phantom.affine)
    data = path.read_bytes()
    path.unlink()
    return data


def mask_pool(n: int, *, staging: Path) -> list[bytes]:
    """``n`` ACDC-like masks (6-14 slices, 180-260 px) as ``.nii.gz`` bytes, alternating ES and ED (even
    ``i`` is ES), of the good segmenter with every third one fair (``segmented_mask`` of patient
    ``100 + i``)."""
    return [
        segmented_mask(
            100 + i,
            phase="ES" if i % 2 == 0 else "ED",
            quality="good" if i % 3 else "fair",
            segmenter_seed=i,
            staging=staging,
        )
        for i in range(n)
    ]


def mr_image(patient_seed: int, *, phase: str, path: Path, **overrides: object) -> Path:
    """Write the MR-like image of a patient's phase (``monitor.sim.make_image``, the geometry of
    ``segmented_mask``'s mask for the same seed and overrides) to ``path``; return it."""
    from monitor.io.nifti import save_labels
    from monitor.sim import make_patient
    from monitor.sim.phantoms import make_image

    ed, es = make_patient(np.random.default_rng(patient_seed), **overrides)
    phantom = ed if phase == "ED" else es
    image = make_image(phantom.labels, np.random.default_rng(patient_seed), phantom.spacing_mm)
    return save_labels(path, image, phantom.affine)  # uint8 intensities, written like a label volume


def deliver(folder: Path, name: str, data: bytes) -> float:
    """Write ``data`` under a hidden temporary name, rename it into place (the way a segmenter should
    deliver); return the wall time (epoch seconds) after the rename."""
    temporary = folder / f".{name}.tmp"
    temporary.write_bytes(data)
    os.replace(temporary, folder / name)
    return time.time()
