"""The science of quality control, torch-free: labels, metrics, flags with reason codes, scores.

Pure functions on numpy arrays ``[z, y, x]`` (canonical labels 0 BG, 1 RV, 2 MYO, 3 LV; spacing
``(dz, dy, dx)`` in mm) and frozen records; no torch, no disk, no database. Modules:

- ``labels``: structures and label maps (ACDC, M&Ms, custom);
- ``metrics``: Dice, Hausdorff distance in mm, XOR map, volumes;
- ``levels``, ``reasons``: flag levels and reason codes (with the text rendered from a code);
- ``flags``: the threshold policy;
- ``records``: ``StructureScore``, ``VolumeScore``;
- ``evidence``: the evidence stage (3D-refined pGT, stack, topology and image checks),
  ``evaluate_evidence`` and its ``EvidenceSettings``;
- ``scores``: ``compare_structures`` (the one loop over LV, RV, MYO) and ``score_volume`` (the
  post-model step: mask + pseudo ground truth (+ MR image) -> scores, evidence and flags).

Example:
    >>> from monitor.qc import FlagPolicy, score_volume
    >>> score = score_volume(mask, pgt, (10.0, 1.5, 1.5), policy=FlagPolicy(), slices_scored=8)
    >>> score.flag, [s.reasons for s in score.structures]
"""

from __future__ import annotations

import importlib
from typing import Any

#: The modules whose public names the package offers, lightest first: a name is looked up (and its
#: module imported) on first use, so that ``import monitor.qc.labels`` (the store, the settings) does
#: not pay for scipy.
_MODULES = ("labels", "levels", "reasons", "records", "flags", "evidence", "scores")

__all__ = [
    "ACDC",
    "MNMS",
    "STRUCTURES",
    "Check",
    "Estimate",
    "Evidence",
    "EvidenceSettings",
    "FlagLevel",
    "FlagPolicy",
    "LabelMap",
    "ReasonCode",
    "Structure",
    "StructureComparison",
    "StructureScore",
    "VolumeScore",
    "compare_structures",
    "describe",
    "describe_all",
    "evaluate_evidence",
    "flag_structure",
    "get_label_map",
    "reason_title",
    "score_structures",
    "score_volume",
    "structure_score",
    "volume_score",
    "worst_flag",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        for module_name in _MODULES:
            module = importlib.import_module(f"{__name__}.{module_name}")
            if name in module.__all__:
                return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
