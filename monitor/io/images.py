"""The MR image of a mask, found and checked: which file, whether it is used as evidence, and why not.

Where the image may be is ``monitor.io.layouts.image_candidates`` (a sidecar's ``image``, an ACDC frame
beside its ground truth, nnU-Net's ``{case}_0000`` beside the mask or in a sibling ``imagesTs``). The
first candidate that exists is loaded with the size limits of ``monitor.io.nifti``; it is used only when
its geometry is the mask's: the same shape [z, y, x] and the same affine within ``AFFINE_TOLERANCE``.
Otherwise scoring goes on without it and ``ImagePairing`` says why, with a stable code:

===================== ==========================================================================
``disabled``          image evidence is switched off (``CMR_MONITOR_IMAGE_EVIDENCE=false``, or the
                      evidence stage is: ``CMR_MONITOR_EVIDENCE=false``)
``not_found``         no candidate file exists (``path`` is the sidecar's image when it named one)
``geometry_mismatch`` the shape or affine differs from the mask's (the detail gives both)
``unreadable``        the file is not a readable 3D NIfTI within the limits, or not finite
``not_evaluated``     paired, but the evidence stage did not use it (an empty mask, a constant
                      image); set by the store from ``VolumeScore.image_used``
===================== ==========================================================================

Example::

    >>> paired = pair_image(load_mask("labelsTs/case_01.nii.gz"))
    >>> paired.pairing.used, paired.pairing.path
    (True, '/data/imagesTs/case_01_0000.nii.gz')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from monitor.errors import InvalidMask
from monitor.io.layouts import image_candidates
from monitor.io.nifti import ImageVolume, Limits, MaskVolume, read_image

__all__ = [
    "AFFINE_TOLERANCE",
    "IMAGE_DISABLED",
    "IMAGE_GEOMETRY_MISMATCH",
    "IMAGE_NOT_EVALUATED",
    "IMAGE_NOT_FOUND",
    "IMAGE_OUTCOMES",
    "IMAGE_REASONS",
    "IMAGE_UNREADABLE",
    "IMAGE_USED",
    "ImagePairing",
    "PairedImage",
    "geometry_mismatch",
    "image_outcome",
    "pair_image",
]

IMAGE_DISABLED = "disabled"
IMAGE_NOT_FOUND = "not_found"
IMAGE_GEOMETRY_MISMATCH = "geometry_mismatch"
IMAGE_UNREADABLE = "unreadable"
IMAGE_NOT_EVALUATED = "not_evaluated"
#: Every reason an image is not used (a bounded set: stored, logged, counted).
IMAGE_REASONS: tuple[str, ...] = (
    IMAGE_DISABLED,
    IMAGE_NOT_FOUND,
    IMAGE_GEOMETRY_MISMATCH,
    IMAGE_UNREADABLE,
    IMAGE_NOT_EVALUATED,
)
IMAGE_USED = "used"
#: What can become of a scored file's MR image: used, or one reason why not (a bounded label set).
IMAGE_OUTCOMES: tuple[str, ...] = (IMAGE_USED, *IMAGE_REASONS)
#: Largest difference between the image's and the mask's affine entries (mm for the translation, mm per
#: voxel for the rest) still taken as the same geometry: headers written in float32 round ~1e-5 mm.
AFFINE_TOLERANCE = 1e-3


@dataclass(frozen=True, slots=True, kw_only=True)
class ImagePairing:
    """What became of a mask's MR image (stored with the file's scores; no voxels)."""

    path: str | None  #: the image file found (or the sidecar's, when it named a missing one); None if none
    used: bool  #: True when the image is passed to scoring as evidence
    reason: str | None = None  #: why it is not used: one of ``IMAGE_REASONS``; None when used
    detail: str | None = None  #: that reason as a sentence (shapes, affines, the load error)


@dataclass(frozen=True, slots=True, kw_only=True)
class PairedImage:
    """The pairing and, when it is used, the image itself."""

    pairing: ImagePairing  #: what was found and whether it is used
    image: ImageVolume | None = None  #: the image when ``pairing.used``; None otherwise

    @property
    def data(self) -> np.ndarray | None:
        """Intensities float32 [z, y, x] in the mask's geometry, or None when no image is used."""
        return self.image.data if self.image is not None else None


def image_outcome(pairing: ImagePairing | None, image_used: bool) -> str | None:
    """What became of a scored file's image: ``used`` when the score used it (``VolumeScore.image_used``),
    else the pairing's reason, or ``not_evaluated`` when it was paired but given no check; None when no
    pairing was tried."""
    if image_used:
        return IMAGE_USED
    if pairing is None:
        return None
    return pairing.reason if not pairing.used else IMAGE_NOT_EVALUATED


def geometry_mismatch(
    mask: MaskVolume, image: ImageVolume, tolerance: float = AFFINE_TOLERANCE
) -> str | None:
    """Why ``image`` is not in ``mask``'s geometry, as a sentence; None when it is.

    The shapes [z, y, x] must be equal and every affine entry within ``tolerance`` (mm).
    """
    if image.shape != mask.shape:
        return f"image shape {list(image.shape)} [z, y, x] differs from the mask's {list(mask.shape)}"
    difference = float(np.max(np.abs(np.asarray(image.affine) - np.asarray(mask.affine))))
    if not difference <= tolerance:  # nan-safe
        spacing = ", ".join(f"{v:.3g}" for v in image.spacing_mm)
        mask_spacing = ", ".join(f"{v:.3g}" for v in mask.spacing_mm)
        return (
            f"image affine differs from the mask's by up to {difference:.3g} mm (tolerance {tolerance:g}); "
            f"spacing ({spacing}) mm vs ({mask_spacing}) mm"
        )
    return None


def pair_image(
    mask: MaskVolume,
    *,
    image_path: str | Path | None = None,
    candidates: Sequence[str | Path] = (),
    limits: Limits | None = None,
    enabled: bool = True,
    tolerance: float = AFFINE_TOLERANCE,
) -> PairedImage:
    """Find, load and check the MR image of ``mask``; never raises for a bad or missing image (any error
    reading it makes it ``unreadable``).

    Args:
        mask: the loaded mask (its ``path`` gives the places to look, ``image_candidates``).
        image_path: the image a sidecar names (absolute, or relative to the mask's folder); tried first.
        candidates: further places to try after the mask's own (e.g. beside its ground truth).
        limits: size limits for loading (the masks' limits by default).
        enabled: False skips the search (reason ``disabled``).
        tolerance: see ``geometry_mismatch``.
    Returns: the pairing, with the image when it is used.
    """
    if image_path is not None and mask.path is not None:
        image_path = mask.path.parent / image_path
    if not enabled:
        named = str(image_path) if image_path is not None else None
        return PairedImage(
            pairing=ImagePairing(
                path=named, used=False, reason=IMAGE_DISABLED, detail="image evidence is switched off"
            )
        )
    places = image_candidates(mask.path, image_path) if mask.path is not None else []
    if mask.path is None and image_path is not None:
        places = [Path(image_path)]
    places = list(dict.fromkeys([*places, *(Path(c) for c in candidates)]))
    found = next((p for p in places if p.is_file()), None)
    if found is None:
        named = str(image_path) if image_path is not None else None
        detail = f"the image the sidecar names does not exist: {named}" if named else "no MR image found"
        return PairedImage(
            pairing=ImagePairing(path=named, used=False, reason=IMAGE_NOT_FOUND, detail=detail)
        )
    path = str(found.absolute())
    try:
        image = read_image(found, limits)
    except InvalidMask as exc:
        return PairedImage(
            pairing=ImagePairing(
                path=path, used=False, reason=IMAGE_UNREADABLE, detail=f"{exc.reason}: {exc.detail}"
            )
        )
    except OSError as exc:
        return PairedImage(
            pairing=ImagePairing(
                path=path, used=False, reason=IMAGE_UNREADABLE, detail=exc.strerror or type(exc).__name__
            )
        )
    except Exception as exc:  # nibabel raises many types for garbage; a bad image never stops scoring
        return PairedImage(
            pairing=ImagePairing(path=path, used=False, reason=IMAGE_UNREADABLE, detail=type(exc).__name__)
        )
    mismatch = geometry_mismatch(mask, image, tolerance)
    if mismatch is not None:
        return PairedImage(
            pairing=ImagePairing(path=path, used=False, reason=IMAGE_GEOMETRY_MISMATCH, detail=mismatch)
        )
    if not np.isfinite(image.data).all():
        return PairedImage(
            pairing=ImagePairing(
                path=path,
                used=False,
                reason=IMAGE_UNREADABLE,
                detail="the image holds NaN or infinite values",
            )
        )
    return PairedImage(pairing=ImagePairing(path=path, used=True), image=image)
