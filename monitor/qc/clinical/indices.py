"""Per-patient clinical indices from an ED and an ES volume: LV and RV EDV, ESV and EF, and LV mass.

Values come in pairs: those of the masks and those of their pseudo ground truths; their difference
(mask minus pGT) is the *pseudo error* of an index, the raw material of the estimated error
(``monitor.qc.clinical.estimator``). Volumes in ml, ejection fractions in percent (0-100, a difference of
two EFs in percentage points), LV mass in g (measured at ED, 1.05 g/ml).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from monitor.qc.clinical.volumes import VolumeIndices, lv_mass_g

__all__ = [
    "INDEX_COLUMNS",
    "INDEX_UNITS",
    "INDICES",
    "ClinicalValues",
    "clinical_values",
    "ed_lv_deficit_ml",
    "ejection_fraction_pct",
    "lvef_deficit_shift_pct",
    "pseudo_errors",
]

#: The per-patient indices, in reporting order.
INDICES: tuple[str, ...] = ("lv_edv", "lv_esv", "lv_ef", "rv_edv", "rv_esv", "rv_ef", "lv_mass")
#: Unit of each index: ml, percent (EF) or g.
INDEX_UNITS: dict[str, str] = {
    "lv_edv": "ml",
    "lv_esv": "ml",
    "lv_ef": "pct",
    "rv_edv": "ml",
    "rv_esv": "ml",
    "rv_ef": "pct",
    "lv_mass": "g",
}
#: Index -> its name with the unit (``lv_edv_ml``, ``lv_ef_pct``, ``lv_mass_g``): columns and fields.
INDEX_COLUMNS: dict[str, str] = {name: f"{name}_{unit}" for name, unit in INDEX_UNITS.items()}


def ejection_fraction_pct(edv_ml: float, esv_ml: float) -> float:
    """Ejection fraction in percent, 100 (EDV - ESV) / EDV; nan when EDV is not positive.

    Not clipped: a mask with ESV > EDV gives a negative EF, which the flags call impossible.
    """
    if not (edv_ml > 0.0) or not math.isfinite(esv_ml):
        return math.nan
    return 100.0 * (edv_ml - esv_ml) / edv_ml


@dataclass(frozen=True, slots=True, kw_only=True)
class ClinicalValues:
    """The seven indices of one patient (from masks, or from pGTs, or their pseudo errors)."""

    lv_edv_ml: float  #: LV end-diastolic volume, ml
    lv_esv_ml: float  #: LV end-systolic volume, ml
    lv_ef_pct: float  #: LV ejection fraction, percent; nan when LV EDV is 0
    rv_edv_ml: float  #: RV end-diastolic volume, ml
    rv_esv_ml: float  #: RV end-systolic volume, ml
    rv_ef_pct: float  #: RV ejection fraction, percent; nan when RV EDV is 0
    lv_mass_g: float  #: LV mass at ED, g (1.05 g/ml x myocardial volume)

    def get(self, index: str) -> float:
        """The value of ``index`` (one of ``INDICES``)."""
        return float(getattr(self, INDEX_COLUMNS[index]))

    def as_dict(self) -> dict[str, float]:
        """Index -> value, in ``INDICES`` order."""
        return {name: self.get(name) for name in INDICES}


#: Bounds of the ED/ES ratio of LV cavity area per slice used to scale a lost slice's ES volume.
_ED_ES_RATIO = (1.0, 3.0)


def ed_lv_deficit_ml(ed: VolumeIndices, es: VolumeIndices, *, scaled: bool = True) -> float:
    """LV volume (ml) the ED mask lacks in slices where the ES mask has LV cavity and the ED mask none.

    The heart is longest at end-diastole (the base descends in systole), so an ES slice with LV cavity
    and the same ED slice without any is a slice lost at ED (a missed base or apex). At least the ES
    volume of that slice is missing from the EDV (``scaled=False``: a lower bound); ``scaled=True``
    multiplies it by the median ED/ES ratio of the slices both masks fill (clipped to 1-3), the best
    guess of the ED volume lost. 0 when nothing is lost or the stacks differ in slice count.
    """
    if len(ed.lv_slice_ml) != len(es.lv_slice_ml):
        return 0.0
    pairs = list(zip(ed.lv_slice_ml, es.lv_slice_ml, strict=True))
    lost = float(sum(s for e, s in pairs if e == 0.0 and s > 0.0))
    if lost == 0.0 or not scaled:
        return lost
    shared = [e / s for e, s in pairs if e > 0.0 and s > 0.0]
    ratio = float(np.clip(np.median(shared), *_ED_ES_RATIO)) if shared else _ED_ES_RATIO[0]
    return lost * ratio


def lvef_deficit_shift_pct(ed: VolumeIndices, es: VolumeIndices, *, scaled: bool = True) -> float:
    """How far the mask's LVEF moves (percentage points, >= 0) when the ED volume it lost in slices the
    ES mask fills (``ed_lv_deficit_ml``) is put back; 0 when nothing is lost, nan when undefined.

    With ``scaled=False`` this is a lower bound of the LVEF error such a mask makes.
    """
    lost = ed_lv_deficit_ml(ed, es, scaled=scaled)
    if lost == 0.0:
        return 0.0
    return abs(
        ejection_fraction_pct(ed.lv_volume_ml + lost, es.lv_volume_ml)
        - ejection_fraction_pct(ed.lv_volume_ml, es.lv_volume_ml)
    )


def clinical_values(ed: VolumeIndices, es: VolumeIndices, *, source: str = "mask") -> ClinicalValues:
    """The indices of a patient from its ED and ES volumes.

    Args:
        ed, es: the end-diastolic and end-systolic volumes of one case (one segmenter).
        source: ``mask`` (the masks' volumes) or ``pgt`` (the pseudo ground truths'; the pGT's LV EDV
            also gets ``ed_lv_deficit_ml``, the cavity the ED mask lost in slices the ES mask fills).
    Raises: ValueError for another source.
    """
    if source == "mask":
        lv = (ed.lv_volume_ml, es.lv_volume_ml)
        rv = (ed.rv_volume_ml, es.rv_volume_ml)
        myo = ed.myo_volume_ml
    elif source == "pgt":
        lv = (ed.pgt_lv_volume_ml + ed_lv_deficit_ml(ed, es), es.pgt_lv_volume_ml)
        rv = (ed.pgt_rv_volume_ml, es.pgt_rv_volume_ml)
        myo = ed.pgt_myo_volume_ml
    else:
        raise ValueError(f"source must be 'mask' or 'pgt', got {source!r}")
    return ClinicalValues(
        lv_edv_ml=lv[0],
        lv_esv_ml=lv[1],
        lv_ef_pct=ejection_fraction_pct(*lv),
        rv_edv_ml=rv[0],
        rv_esv_ml=rv[1],
        rv_ef_pct=ejection_fraction_pct(*rv),
        lv_mass_g=lv_mass_g(myo),
    )


def pseudo_errors(mask: ClinicalValues, pgt: ClinicalValues) -> ClinicalValues:
    """Mask minus pGT for every index (ml, percentage points, g); nan where either is nan."""
    return ClinicalValues(**{INDEX_COLUMNS[i]: mask.get(i) - pgt.get(i) for i in INDICES})
