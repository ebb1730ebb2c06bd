"""Per-volume clinical quantities: LV, RV and MYO volumes (ml) and LV mass (g), of a mask and its pGT.

Arrays are uint8 ``[z, y, x]`` in canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); spacing is ``(dz, dy, dx)``
in mm. The pseudo ground truth's volumes are those of the refined pGT when the evidence stage measured
them (``StructureScore.pgt_volume_ml``), otherwise those of the autoencoder's pGT array. Besides the
volumes, a few slice counts of the mask are kept: they tell a missing base or apex, which the volumes of
one frame alone cannot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from monitor.qc.labels import CANONICAL_CHANNEL, Structure
from monitor.qc.metrics import voxels_ml
from monitor.qc.records import VolumeScore
from monitor.typing import Spacing3

__all__ = [
    "MYOCARDIAL_DENSITY_G_PER_ML",
    "VolumeIndices",
    "indices_from_score",
    "lv_mass_g",
    "volume_indices",
]

#: Density of myocardium used for the LV mass, g/ml (the convention of clinical CMR reporting).
MYOCARDIAL_DENSITY_G_PER_ML = 1.05

_RV, _MYO, _LV = (CANONICAL_CHANNEL[s] for s in (Structure.RV, Structure.MYO, Structure.LV))


def lv_mass_g(myo_volume_ml: float) -> float:
    """LV mass in g from the myocardial volume in ml (1.05 g/ml)."""
    return MYOCARDIAL_DENSITY_G_PER_ML * float(myo_volume_ml)


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeIndices:
    """Volumes of one mask volume and of its pseudo ground truth, plus the mask's slice extent.

    Volumes are in ml (voxel count x voxel volume); a structure absent from the mask has volume 0.
    """

    lv_volume_ml: float  #: LV cavity volume of the mask, ml
    rv_volume_ml: float  #: RV cavity volume of the mask, ml
    myo_volume_ml: float  #: myocardial volume of the mask, ml
    pgt_lv_volume_ml: float  #: LV cavity volume of the (refined) pGT, ml
    pgt_rv_volume_ml: float  #: RV cavity volume of the (refined) pGT, ml
    pgt_myo_volume_ml: float  #: myocardial volume of the (refined) pGT, ml
    n_slices: int  #: slices in the stack (z size)
    lv_slices: int  #: slices of the mask holding LV cavity
    rv_slices: int  #: slices of the mask holding RV cavity
    heart_slices: int  #: slices from the first to the last holding LV or MYO (0 when none)
    pgt_lv_slices: int  #: slices of the pGT array holding LV cavity
    margin_slices: int  #: fewest empty slices between the heart (LV or MYO) and an end of the stack
    #: LV cavity volume of the mask per slice (ml), z order: where ES has LV but ED has none, ED lost it
    lv_slice_ml: tuple[float, ...] = ()
    #: pseudo Dice and Hausdorff distance (mm) of LV, RV, MYO (nan where undefined), for the estimator
    pdsc: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    phd_mm: tuple[float, float, float] = (math.nan, math.nan, math.nan)

    @property
    def lv_mass_g(self) -> float:
        """LV mass of the mask, g (1.05 g/ml x myocardial volume)."""
        return lv_mass_g(self.myo_volume_ml)

    @property
    def pgt_lv_mass_g(self) -> float:
        """LV mass of the pGT, g."""
        return lv_mass_g(self.pgt_myo_volume_ml)


def _slices_with(labels: np.ndarray, value: int) -> np.ndarray:
    """Boolean per z: whether the slice holds ``value``."""
    return np.any(labels == value, axis=(1, 2))


def volume_indices(
    mask: np.ndarray,
    pgt: np.ndarray,
    spacing_mm: Spacing3,
    *,
    refined_pgt_ml: Mapping[Structure, float] | None = None,
    pdsc: Mapping[Structure, float] | None = None,
    phd_mm: Mapping[Structure, float] | None = None,
) -> VolumeIndices:
    """Volumes (ml) and slice extent of a mask and its pseudo ground truth.

    Args:
        mask, pgt: uint8 [z, y, x] canonical labels, same shape.
        spacing_mm: (dz, dy, dx) in mm.
        refined_pgt_ml: structure -> volume (ml) of the refined pGT; a finite value replaces the volume
            counted on ``pgt`` (nan or a missing key keeps it).
        pdsc, phd_mm: structure -> pseudo Dice / Hausdorff distance (mm), kept for the error estimator.
    Raises: ValueError if the shapes differ or the arrays are not 3D.
    """
    if mask.shape != pgt.shape:
        raise ValueError(f"mask and pgt must have the same shape, got {mask.shape} and {pgt.shape}")
    if mask.ndim != 3:
        raise ValueError(f"expected a 3D volume [z, y, x], got {mask.ndim}D")
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=4)
    pgt_counts = np.bincount(np.asarray(pgt, dtype=np.uint8).ravel(), minlength=4)
    refined = dict(refined_pgt_ml or {})

    def pgt_ml(structure: Structure) -> float:
        value = refined.get(structure, math.nan)
        if math.isfinite(value):
            return float(value)
        return voxels_ml(int(pgt_counts[CANONICAL_CHANNEL[structure]]), spacing_mm)

    heart = _slices_with(mask, _LV) | _slices_with(mask, _MYO)
    z = np.flatnonzero(heart)
    n = int(mask.shape[0])
    if z.size:
        heart_slices = int(z[-1] - z[0] + 1)
        margin = int(min(z[0], n - 1 - z[-1]))
    else:
        heart_slices, margin = 0, n
    order = (Structure.LV, Structure.RV, Structure.MYO)
    return VolumeIndices(
        lv_volume_ml=voxels_ml(int(counts[_LV]), spacing_mm),
        rv_volume_ml=voxels_ml(int(counts[_RV]), spacing_mm),
        myo_volume_ml=voxels_ml(int(counts[_MYO]), spacing_mm),
        pgt_lv_volume_ml=pgt_ml(Structure.LV),
        pgt_rv_volume_ml=pgt_ml(Structure.RV),
        pgt_myo_volume_ml=pgt_ml(Structure.MYO),
        n_slices=n,
        lv_slices=int(np.count_nonzero(_slices_with(mask, _LV))),
        rv_slices=int(np.count_nonzero(_slices_with(mask, _RV))),
        heart_slices=heart_slices,
        pgt_lv_slices=int(np.count_nonzero(_slices_with(pgt, _LV))),
        margin_slices=margin,
        lv_slice_ml=tuple(voxels_ml(int(v), spacing_mm) for v in np.count_nonzero(mask == _LV, axis=(1, 2))),
        pdsc=tuple(float((pdsc or {}).get(s, math.nan)) for s in order),  # type: ignore[arg-type]
        phd_mm=tuple(float((phd_mm or {}).get(s, math.nan)) for s in order),  # type: ignore[arg-type]
    )


def indices_from_score(mask: np.ndarray, pgt: np.ndarray, score: VolumeScore) -> VolumeIndices:
    """``volume_indices`` of a scored volume: the refined pGT volumes, pDSC and pHD come from ``score``
    (the 3D-refined pDSC and pHD when the evidence stage ran, the plain ones otherwise).

    Args:
        mask, pgt: uint8 [z, y, x] canonical labels (the mask and the autoencoder's pGT).
        score: the volume's scores (``monitor.qc.scores.score_volume``).
    """
    return volume_indices(
        mask,
        pgt,
        score.spacing_mm,
        refined_pgt_ml={s.structure: s.pgt_volume_ml for s in score.structures},
        pdsc={s.structure: s.pdsc_3d if math.isfinite(s.pdsc_3d) else s.pdsc for s in score.structures},
        phd_mm={
            s.structure: s.phd_mm_3d if math.isfinite(s.phd_mm_3d) else s.phd_mm for s in score.structures
        },
    )
