"""The cases table: real and pseudo metrics of every paired volume, one row per volume and structure.

Real Dice and Hausdorff distance (mm) against the ground truth and the pseudo ones of the ``Scorer``
both come from ``monitor.qc.scores`` (Dice 0 when exactly one mask is empty, nan when both are; HD nan
when either is empty). Beside the paper's plain pDSC/pHD and its flag (``flag_plain``, thresholds on
the plain values alone) stand the refined ones (``pdsc_3d``, ``phd_mm_3d``) and the flag with the
evidence (``flag``, ``reason_codes``). The MR image of each ground truth (ACDC
``patientNNN_frameFF.nii.gz`` beside ``patientNNN_frameFF_gt.nii.gz``, or nnU-Net's, found and checked by
``monitor.io.images.pair_image`` as in the daemon) is passed to scoring when its geometry is the mask's.
Reads the masks and images; everything after this table is pure (``statistics``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from monitor.errors import InvalidMask
from monitor.evaluation.clinical import ClinicalVolume
from monitor.evaluation.pairing import GROUND_TRUTH, CasePair, SkippedCase
from monitor.io.images import IMAGE_NOT_FOUND, pair_image
from monitor.io.nifti import Limits, MaskVolume, load_mask
from monitor.qc.clinical import indices_from_score, volume_indices
from monitor.qc.flags import FlagPolicy, flag_structure, worst_flag
from monitor.qc.labels import ACDC, LabelMap
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import describe_all
from monitor.qc.records import ESTIMATE_FIELDS, StructureScore, VolumeScore
from monitor.qc.scores import compare_structures

if TYPE_CHECKING:
    from monitor.model.scorer import Scorer

__all__ = ["CASE_COLUMNS", "evaluate_cases"]

log = logging.getLogger(__name__)

#: Columns of the cases table (one row per volume and structure), in order.
CASE_COLUMNS: tuple[str, ...] = (
    "segmenter",
    "patient",
    "phase",
    "structure",
    "dice",
    "hd_mm",
    "pdsc",
    "phd_mm",
    "flag",
    "reasons",
    "missing",
    "case",
    "volume_flag",
    "mask_voxels",
    "gt_voxels",
    "pgt_voxels",
    "pred_file",
    "gt_file",
    "pdsc_3d",
    "phd_mm_3d",
    "reason_codes",
    "flag_plain",
    "volume_flag_plain",
    "image_used",
    *ESTIMATE_FIELDS,
    "flag_review",
    "volume_flag_review",
    "p_failure",
)


def _ground_truth_pairs(pairs: Sequence[CasePair]) -> list[CasePair]:
    """Each distinct ground truth of ``pairs`` as a prediction of the ``ground_truth`` pseudo-segmenter."""
    seen: dict[Path, CasePair] = {}
    for pair in pairs:
        if pair.gt_path not in seen:
            seen[pair.gt_path] = CasePair(
                segmenter=GROUND_TRUTH,
                case=pair.case,
                patient=pair.patient,
                phase=pair.phase,
                pred_path=pair.gt_path,
                gt_path=pair.gt_path,
            )
    return sorted(seen.values(), key=lambda p: (p.patient, p.phase, p.case))


def _load_pair(
    pair: CasePair, label_map: LabelMap, limits: Limits | None
) -> tuple[MaskVolume, MaskVolume] | SkippedCase:
    try:
        pred = load_mask(pair.pred_path, label_map, limits)
        gt = pred if pair.gt_path == pair.pred_path else load_mask(pair.gt_path, label_map, limits)
    except InvalidMask as exc:
        path = exc.path or pair.pred_path
        return SkippedCase(
            segmenter=pair.segmenter, case=pair.case, path=path, reason=exc.reason, detail=exc.detail
        )
    if pred.shape != gt.shape or not np.allclose(pred.spacing_mm, gt.spacing_mm, rtol=1e-3):
        return SkippedCase(
            segmenter=pair.segmenter,
            case=pair.case,
            path=pair.pred_path,
            reason="geometry_mismatch",
            detail=f"prediction {pred.shape} at {pred.spacing_mm} mm vs ground truth {gt.shape} "
            f"at {gt.spacing_mm} mm",
        )
    return pred, gt


def paired_image(gt: MaskVolume, limits: Limits | None) -> np.ndarray | None:
    """The MR image of a ground truth (float32 [z, y, x]), or None when there is none or it is unusable.

    Found and checked as the daemon does (``monitor.io.images.pair_image``): the ACDC frame beside the
    ground truth, nnU-Net's ``_0000`` beside it or in a sibling ``imagesTs``; used only when its shape and
    affine are the ground truth's. An image that exists but is not used is logged with the reason.
    """
    paired = pair_image(gt, limits=limits)
    reason = paired.pairing.reason
    if reason is not None and reason != IMAGE_NOT_FOUND:
        name = Path(paired.pairing.path).name if paired.pairing.path else "?"
        log.warning("image %s not used: %s (%s)", name, reason, paired.pairing.detail)
    return paired.data


def evaluate_cases(
    pairs: Sequence[CasePair],
    scorer: Scorer,
    *,
    label_map: LabelMap = ACDC,
    batch_volumes: int = 8,
    include_ground_truth: bool = True,
    limits: Limits | None = None,
    images: bool = True,
    clinical: list[ClinicalVolume] | None = None,
) -> tuple[pd.DataFrame, list[SkippedCase]]:
    """Real and pseudo metrics of every paired volume, one row per volume and structure.

    Each segmenter's volumes are scored ``batch_volumes`` at a time. Real Dice and HD (mm) use
    ``monitor.qc.metrics`` at the ground truth's voxel spacing.

    Args:
        pairs: from ``pair_cases``.
        scorer: a loaded ``Scorer``.
        label_map: label values of both predictions and ground truth.
        batch_volumes: volumes per ``score_batch`` call.
        include_ground_truth: also score each ground truth as the pseudo-segmenter ``ground_truth``
            (its real Dice is 1 and HD 0; used for the false-alarm rate).
        limits: size limits for loading; ``Limits()`` when None.
        images: pair each ground truth's MR image (``paired_image``) and pass it to scoring.
        clinical: when given, each evaluated volume's clinical volumes (prediction with its pGT, and
            the ground truth's) are appended to it, for ``monitor.evaluation.clinical``.
    Returns: (cases table with ``CASE_COLUMNS``, volumes skipped because a file was unreadable or the
        geometries differ).
    Raises: ValueError if ``batch_volumes`` < 1.
    """
    if batch_volumes < 1:
        raise ValueError(f"batch_volumes must be at least 1, got {batch_volumes}")
    work = list(pairs) + (_ground_truth_pairs(pairs) if include_ground_truth else [])
    order = list(dict.fromkeys(p.segmenter for p in work))
    rows: list[dict[str, Any]] = []
    skipped: list[SkippedCase] = []
    for name in order:
        mine = [p for p in work if p.segmenter == name]
        for start in range(0, len(mine), batch_volumes):
            loaded: list[tuple[CasePair, MaskVolume, MaskVolume]] = []
            for pair in mine[start : start + batch_volumes]:
                volumes = _load_pair(pair, label_map, limits)
                if isinstance(volumes, SkippedCase):
                    log.warning("skipped a volume of %s: %s", name, volumes.reason)
                    skipped.append(volumes)
                else:
                    loaded.append((pair, *volumes))
            scored = _score(scorer, loaded, limits, images=images)
            for (pair, pred, gt), result in zip(loaded, scored, strict=True):
                rows.extend(_case_rows(pair, pred, gt, result.score, scorer.policy))
                if clinical is not None:
                    clinical.append(
                        ClinicalVolume(
                            segmenter=pair.segmenter,
                            patient=pair.patient,
                            phase=pair.phase,
                            pred=indices_from_score(pred.labels, result.pgt, result.score),
                            gt=volume_indices(gt.labels, gt.labels, gt.spacing_mm),
                        )
                    )
            log.info("%s: %d/%d volumes evaluated", name, min(start + batch_volumes, len(mine)), len(mine))
    cases = pd.DataFrame(rows, columns=list(CASE_COLUMNS))
    return cases.astype({"missing": bool, "image_used": bool}), skipped


def _score(
    scorer: Scorer,
    loaded: Sequence[tuple[CasePair, MaskVolume, MaskVolume]],
    limits: Limits | None,
    *,
    images: bool,
) -> list[Any]:
    """Score a batch, each prediction with its ground truth's MR image when there is one."""
    if not loaded:
        return []
    volumes = [pred for _, pred, _ in loaded]
    found = [paired_image(gt, limits) for _, _, gt in loaded] if images else []
    if any(image is not None for image in found):
        return scorer.score_batch(volumes, images=found)
    return scorer.score_batch(volumes)


def _estimates(score: StructureScore) -> dict[str, float]:
    """The calibrated estimates of a structure (nan without a calibration or for a missing structure)."""
    out = {}
    for name, estimate in (("edsc", score.edsc), ("ehd_mm", score.ehd_mm)):
        out[name] = estimate.value if estimate is not None else math.nan
        out[f"{name}_lo"] = estimate.lo if estimate is not None else math.nan
        out[f"{name}_hi"] = estimate.hi if estimate is not None else math.nan
    return out


def review_flag(score: StructureScore, review: FlagPolicy) -> FlagLevel:
    """A structure's level had every failed evidence check raised its code: its own level and the
    levels ``review`` (the policy with ``evidence_flags="all"``, the review mode) gives its checks."""
    raised = (review.severity(c.code) for c in score.evidence if not c.passed)
    return worst_flag([score.flag, *raised])


def _case_rows(
    pair: CasePair, pred: MaskVolume, gt: MaskVolume, score: VolumeScore, policy: FlagPolicy
) -> list[dict[str, Any]]:
    """One row per structure: the real metrics against the ground truth beside the pseudo ones."""
    rows = []
    real_metrics = compare_structures(pred.labels, gt.labels, gt.spacing_mm)
    plain = [
        flag_structure(
            pdsc=s.pdsc, phd_mm=s.phd_mm, mask_voxels=s.mask_voxels, pgt_voxels=s.pgt_voxels, policy=policy
        )[0]
        for s in score.structures
    ]
    volume_plain = worst_flag(plain).value
    review_policy = replace(policy, evidence_flags="all")
    review = [review_flag(s, review_policy) for s in score.structures]
    volume_review = worst_flag(review).value
    for real, pseudo, flag_plain, flag_review in zip(
        real_metrics, score.structures, plain, review, strict=True
    ):
        rows.append(
            {
                "segmenter": pair.segmenter,
                "patient": pair.patient,
                "phase": pair.phase,
                "structure": real.structure.value,
                "dice": real.dice,
                "hd_mm": real.hd_mm,
                "pdsc": pseudo.pdsc,
                "phd_mm": pseudo.phd_mm,
                "flag": pseudo.flag.value,
                "reasons": "; ".join(describe_all([pseudo], policy)),
                "missing": pseudo.mask_voxels == 0 and real.ref_voxels > 0,
                "case": pair.case,
                "volume_flag": score.flag.value,
                "mask_voxels": pseudo.mask_voxels,
                "gt_voxels": real.ref_voxels,
                "pgt_voxels": pseudo.pgt_voxels,
                "pred_file": str(pair.pred_path),
                "gt_file": str(pair.gt_path),
                "pdsc_3d": pseudo.pdsc_3d,
                "phd_mm_3d": pseudo.phd_mm_3d,
                "reason_codes": ";".join(str(code) for code in pseudo.reasons),
                "flag_plain": flag_plain.value,
                "volume_flag_plain": volume_plain,
                "image_used": score.image_used,
                **_estimates(pseudo),
                "flag_review": flag_review.value,
                "volume_flag_review": volume_review,
                "p_failure": math.nan if pseudo.p_failure is None else pseudo.p_failure,
            }
        )
    return rows
