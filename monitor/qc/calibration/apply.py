"""The calibration stage of the pipeline: volume scores -> scores with estimates and estimate flags.

``calibrate_scores`` runs after the evidence stage on a batch of volumes (one model call for all of
them): each structure present in the mask gets ``edsc`` and ``ehd_mm`` (``Estimate`` with the
calibration's interval), the volume its ``calibration_version``, and, under ``basis="estimates"``,
the pseudo-metric reasons ``pdsc_low``/``phd_high`` give way to ``edsc_low``/``ehd_high``
(``fail_probability``): judged on the calibration's failure model (``p_failure``, P(real Dice or HD
past the thresholds)) when it has one for the policy's thresholds, else on the intervals. A structure
missing from the mask keeps no estimate: its flag already says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from statistics import NormalDist

import numpy as np

from monitor.qc.calibration.features import Features, feature_rows
from monitor.qc.calibration.model import Calibration
from monitor.qc.calibration.targets import Target, to_space
from monitor.qc.flags import FlagPolicy, worst_flag
from monitor.qc.labels import Structure
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import Estimate, StructureScore, VolumeScore

__all__ = ["calibrate_scores", "probability_below", "reflag"]

_NORMAL = NormalDist()
_PSEUDO = (ReasonCode.PDSC_LOW, ReasonCode.PHD_HIGH)


def probability_below(estimate: Estimate, threshold: float, target: Target, confidence: float = 0.9) -> float:
    """P(real value < ``threshold``) read from an estimate and its interval.

    The real value is taken as a two-piece normal in the target's learning space, with its median at
    the estimate and its ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles at the ends of
    the interval; a zero-width side is a step.
    """
    z = _NORMAL.inv_cdf((1.0 + confidence) / 2.0)
    t = to_space(target, np.array([estimate.value, estimate.lo, estimate.hi, threshold]))
    sign = 1.0 if target.increasing else -1.0  # in space, "below" means below for HD, above for Dice
    centre, a, b, cut = sign * t
    lower, upper = min(a, b), max(a, b)
    side = (centre - lower) if cut < centre else (upper - centre)
    if side <= 0:
        return 1.0 if cut > centre else 0.0
    return _NORMAL.cdf(float((cut - centre) / (side / z)))


def reflag(item: StructureScore, policy: FlagPolicy, confidence: float = 0.9) -> StructureScore:
    """A structure's reasons and level under ``policy`` once its estimates are known.

    With ``item.p_failure`` (the failure model's P(real Dice or HD past the thresholds)) the structure
    is flagged when it is at least ``policy.fail_probability``, under the code of the metric its
    intervals make the likelier culprit (both when both reach the threshold); without it, each metric
    is flagged when its interval puts P(beyond its threshold) at least ``fail_probability``.
    """
    if policy.basis != "estimates" or item.edsc is None or item.ehd_mm is None:
        return item
    reasons = [code for code in item.reasons if code not in _PSEUDO]
    p_low = probability_below(item.edsc, policy.suspicious_dice, Target.DSC, confidence)
    p_high = 1.0 - probability_below(item.ehd_mm, policy.suspicious_hd_mm, Target.HD, confidence)
    if item.p_failure is not None:
        if item.p_failure >= policy.fail_probability:
            both = min(p_low, p_high) >= policy.fail_probability
            if both or p_low >= p_high:
                reasons.append(ReasonCode.EDSC_LOW)
            if both or p_high > p_low:
                reasons.append(ReasonCode.EHD_HIGH)
    else:
        if p_low >= policy.fail_probability:
            reasons.append(ReasonCode.EDSC_LOW)
        if p_high >= policy.fail_probability:
            reasons.append(ReasonCode.EHD_HIGH)
    level = worst_flag(policy.severity(code) for code in reasons)
    return replace(item, reasons=tuple(reasons), flag=level)


def calibrate_scores(
    calibration: Calibration,
    scores: Sequence[VolumeScore],
    extras: Sequence[Features | None] | None = None,
    *,
    policy: FlagPolicy,
) -> list[VolumeScore]:
    """Estimates, their flags and the calibration version for a batch of volume scores.

    Args:
        calibration: the loaded calibration.
        scores: volume scores after the evidence stage.
        extras: per volume, mask and image features (``mask_features``, ``image_features``) or None.
        policy: thresholds, basis and severities of the flags.
    Returns: the scores in input order; the volume flag is recomputed from its structures.
    """
    extras = list(extras) if extras is not None else [None] * len(scores)
    if len(extras) != len(scores):
        raise ValueError(f"got {len(scores)} scores and {len(extras)} feature sets")
    rows, structures, where = [], [], []
    for v, (score, extra) in enumerate(zip(scores, extras, strict=True)):
        features = feature_rows(score, extra)
        for item in score.structures:
            if item.mask_voxels > 0:
                rows.append(features[item.structure])
                structures.append(item.structure)
                where.append((v, item.structure))
    x = calibration.matrix(rows, structures)  # one matrix for the estimates and the failure model
    estimates: dict[tuple[int, Structure], dict[Target, Estimate]] = dict(
        zip(where, calibration.estimate_matrix(x), strict=True)
    )
    p_failure = calibration.failure_probability(x, policy.suspicious_dice, policy.suspicious_hd_mm)
    failure = {} if p_failure is None else dict(zip(where, (float(p) for p in p_failure), strict=True))
    out = []
    for v, score in enumerate(scores):
        items = []
        for item in score.structures:
            found = estimates.get((v, item.structure))
            if found is not None:
                item = replace(
                    item,
                    edsc=found[Target.DSC],
                    ehd_mm=found[Target.HD],
                    p_failure=failure.get((v, item.structure)),
                )
                item = reflag(item, policy, calibration.confidence)
            items.append(item)
        out.append(
            replace(
                score,
                structures=tuple(items),
                flag=worst_flag(s.flag for s in items),
                calibration_version=calibration.version,
            )
        )
    return out
