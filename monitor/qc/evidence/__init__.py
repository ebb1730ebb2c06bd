"""The evidence stage: what a 2D autoencoder cannot see, from the mask in 3D and from the MR image.

Pure numpy/scipy, between the pseudo metrics and the flags (``monitor.qc.scores.score_volume``).
Arrays are uint8 ``[z, y, x]`` in canonical labels (0 BG, 1 RV, 2 MYO, 3 LV); spacing ``(dz, dy, dx)``
in mm. Modules, one job each:

- ``settings``: ``EvidenceSettings``, the rules and tolerances (from dev ground truth);
- ``anatomy``: ``Anatomy``, the mask's layout built once (boxes, structures, exact slice moments),
  shared by the checks and the calibration features;
- ``profile``: per-slice areas and centroids, slice runs, the apex side, 3D components;
- ``refine``: the 3D-refined pGT (``refine_pgt``) behind ``pdsc_3d`` / ``phd_mm_3d``;
- ``stack``: stack checks (gaps, stack margin, centroid and area jumps, apex taper, RV extent and
  position, components);
- ``topology``: per-slice checks (MYO ring, LV cavity against background, RV at the septum, holes);
- ``image``: image checks (boundary contrast, LV edge offset, class overlap), when an image is paired;
- ``run``: ``evaluate_evidence``, the one entry point (its ``Evidence`` keeps the ``Anatomy``).

Example:
    >>> found = evaluate_evidence(mask, pgt, (10.0, 1.5, 1.5), image=None)
    >>> [c for c in found.checks[Structure.LV] if not c.passed]
"""

from __future__ import annotations

from monitor.qc.evidence.anatomy import Anatomy, build_anatomy
from monitor.qc.evidence.refine import refine_pgt
from monitor.qc.evidence.run import Evidence, evaluate_evidence
from monitor.qc.evidence.settings import EvidenceSettings

__all__ = ["Anatomy", "Evidence", "EvidenceSettings", "build_anatomy", "evaluate_evidence", "refine_pgt"]
