"""The demo's simulated segmenter: what it delivers, when, and how it writes each file.

``plan_deliveries`` schedules the masks (ED then ES of each patient, version 1.1 taking over half way,
one in 17 broken, every 5th patient labelled by the site); ``DeliveryWriter`` makes each mask from a
phantom (``monitor.sim``) and writes it the way pipelines do (renamed into place, slowly in chunks, or at
once), remembering its real Dice, and of a labelled mask its real Dice and HD (mm) per structure. Given
an images folder, it also writes each mask's MR-like image there and a sidecar naming it (written before
the mask, as a segmenter should), so that the daemon uses the image as evidence.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from monitor.io.nifti import save_labels
from monitor.qc.labels import ACDC, Structure
from monitor.qc.scores import StructureComparison, compare_structures
from monitor.sim.phantoms import Phantom, make_image, make_patient
from monitor.sim.segmenters import SEGMENTERS

__all__ = [
    "DEMO_SEGMENTER",
    "DEMO_VERSIONS",
    "LABELLED_EVERY",
    "SMALL_PHANTOM",
    "Delivery",
    "DeliveryWriter",
    "deliver",
    "plan_deliveries",
]

#: Name of the simulated segmentation model.
DEMO_SEGMENTER = "cardioseg"
#: Its versions: the second one, deployed half way, is worse.
DEMO_VERSIONS: tuple[str, str] = ("1.0", "1.1")
#: Share of each quality (``SEGMENTERS`` names) per version.
_MIX: dict[str, dict[str, float]] = {
    "1.0": {"good": 0.64, "fair": 0.27, "poor": 0.06, "failing": 0.03},
    "1.1": {"good": 0.15, "fair": 0.27, "poor": 0.3, "failing": 0.28},
}
#: Every ``_INVALID_EVERY``-th delivery (from the ``_INVALID_FIRST``-th) is a broken file.
_INVALID_EVERY, _INVALID_FIRST = 17, 11
#: Every ``LABELLED_EVERY``-th patient (the 1st, 6th, ...) has ground truth at the site: its masks' real
#: metrics are recorded beside their estimates (the dashboard's "Estimated vs realized" page).
LABELLED_EVERY = 5
#: How files are written: renamed into place, written slowly in chunks, or written at once.
_WRITE_MODES: dict[str, float] = {"rename": 0.7, "chunks": 0.2, "direct": 0.1}
#: Phantom geometry of quick runs (``demo --fast``): 5 slices of 128 x 128.
SMALL_PHANTOM = {"n_slices": 5, "shape_yx": (128, 128)}


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    """One mask the simulated segmenter writes."""

    at_s: float  #: seconds after the start
    version: str  #: segmenter version
    quality: str  #: ``SEGMENTERS`` name, or ``invalid`` (a broken file)
    write_mode: str  #: rename, chunks or direct
    patient: int  #: patient number (1-based)
    phase: str  #: ED or ES
    labelled: bool = False  #: the site has its ground truth (``LABELLED_EVERY``; never a broken file)

    @property
    def relative_path(self) -> Path:
        """Where it goes under the incoming folder."""
        return Path(DEMO_SEGMENTER, self.version, f"patient{self.patient:04d}_{self.phase}.nii.gz")


def plan_deliveries(*, duration_s: float, rate_per_s: float, seed: int = 0) -> list[Delivery]:
    """The simulated segmenter's schedule: about ``duration_s * rate_per_s`` masks, ED then ES of each
    patient, at jittered regular times; the second half comes from version 1.1; one in 17 is broken;
    the valid masks of every ``LABELLED_EVERY``-th patient are labelled."""
    rng = np.random.default_rng([seed, 1])
    n = max(2, round(duration_s * rate_per_s))
    step = duration_s / n
    deliveries = []
    for i in range(n):
        version = DEMO_VERSIONS[0] if i < n // 2 else DEMO_VERSIONS[1]
        mix = _MIX[version]
        at_s = float(min(duration_s, i * step + rng.uniform(0, 0.9 * step)))  # drawn first, as always
        quality = (
            str(rng.choice(list(mix), p=list(mix.values())))
            if i % _INVALID_EVERY != _INVALID_FIRST
            else "invalid"
        )
        deliveries.append(
            Delivery(
                at_s=at_s,
                version=version,
                quality=quality,
                write_mode=str(rng.choice(list(_WRITE_MODES), p=list(_WRITE_MODES.values()))),
                patient=i // 2 + 1,
                phase="ED" if i % 2 == 0 else "ES",
                labelled=(i // 2) % LABELLED_EVERY == 0 and quality != "invalid",
            )
        )
    return deliveries


class DeliveryWriter:
    """Makes and writes the planned masks, remembering their real Dice (``real_dice``: mask path -> mean
    over the structures) and, of the labelled ones, their real metrics (``realized``: mask path ->
    structure -> (Dice, HD mm)).

    Args:
        incoming: the watched folder.
        staging: a scratch folder outside it.
        seed: the simulation's seed.
        small: 5 slices of 128 x 128 instead of ACDC-like sizes.
        images: where each mask's MR-like image goes (outside the watched folder), named by a sidecar
            ``<stem>.json`` beside the mask; None = masks only.
    """

    def __init__(
        self, incoming: Path, staging: Path, seed: int, small: bool, images: Path | None = None
    ) -> None:
        self.incoming = incoming
        self.staging = staging
        self.seed = seed
        self.small = small
        self.images = images
        self.real_dice: dict[str, float] = {}
        self.realized: dict[str, dict[Structure, tuple[float, float]]] = {}
        self._patients: dict[int, tuple[Phantom, Phantom]] = {}

    def write(self, delivery: Delivery) -> Path:
        rng = np.random.default_rng([self.seed, 2, delivery.patient, delivery.phase == "ES"])
        if delivery.patient not in self._patients:
            self._patients.pop(delivery.patient - 2, None)
            overrides = SMALL_PHANTOM if self.small else {}
            self._patients[delivery.patient] = make_patient(
                np.random.default_rng([self.seed, 3, delivery.patient]), **overrides
            )
        ed, es = self._patients[delivery.patient]
        phantom = ed if delivery.phase == "ED" else es
        staged = self.staging / delivery.relative_path.name
        target = self.incoming / delivery.relative_path
        if delivery.quality == "invalid":
            self._write_invalid(staged, phantom, rng)
        else:
            labels, _ = SEGMENTERS[delivery.quality](phantom.labels, rng, phantom.spacing_mm)
            save_labels(staged, labels, phantom.affine, label_map=ACDC)
            real = compare_structures(labels, phantom.labels, phantom.spacing_mm, hausdorff=delivery.labelled)
            self.real_dice[str(target)] = _mean_dice(real)
            if delivery.labelled:
                self.realized[str(target)] = {c.structure: (c.dice, c.hd_mm) for c in real}
            if self.images is not None:
                self._write_image(self.images, delivery, phantom, target)
        data = staged.read_bytes()
        staged.unlink()
        deliver(data, target, delivery.write_mode)
        return target

    def _write_image(self, images: Path, delivery: Delivery, phantom: Phantom, target: Path) -> None:
        """The phantom's MR-like image in ``images``, and the sidecar beside ``target`` that names it."""
        rng = np.random.default_rng([self.seed, 4, delivery.patient, delivery.phase == "ES"])
        image = make_image(phantom.labels, rng, phantom.spacing_mm)
        name = f"{DEMO_SEGMENTER}_{delivery.version}_{target.name}"
        path = save_labels(images / name, image, phantom.affine)  # uint8 intensities
        sidecar = target.with_name(target.name.removesuffix(".nii.gz") + ".json")
        sidecar.parent.mkdir(parents=True, exist_ok=True)
        temporary = sidecar.with_name(f".{sidecar.name}.tmp")
        temporary.write_text(json.dumps({"image": str(path)}))
        os.replace(temporary, sidecar)

    @staticmethod
    def _write_invalid(staged: Path, phantom: Phantom, rng: np.random.Generator) -> None:
        if rng.random() < 0.5:  # a transfer cut short: truncated gzip stream
            save_labels(staged, phantom.labels, phantom.affine)
            data = staged.read_bytes()
            staged.write_bytes(data[: len(data) // 2])
        else:  # a probability map saved instead of labels
            probabilities = (phantom.labels.astype(np.float32) * 0.45).transpose(2, 1, 0)
            nib.save(nib.Nifti1Image(probabilities, phantom.affine), str(staged))


def _mean_dice(real: Sequence[StructureComparison]) -> float:
    """Mean real Dice over the structures (nan ones left out; nan when all are)."""
    finite = [c.dice for c in real if not math.isnan(c.dice)]
    return float(np.mean(finite)) if finite else math.nan


def deliver(data: bytes, target: Path, mode: str) -> None:
    """Write ``data`` to ``target`` the way pipelines do: rename, slow chunks, or at once."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode == "rename":
        temporary = target.with_name(f".{target.name}.tmp")
        temporary.write_bytes(data)
        os.replace(temporary, target)
    elif mode == "chunks":
        with open(target, "wb") as fh:
            for start in range(0, len(data), max(1, len(data) // 3 + 1)):
                fh.write(data[start : start + len(data) // 3 + 1])
                fh.flush()
                time.sleep(0.15)
    else:
        target.write_bytes(data)
