"""Simulated scored history, planned: a few weeks of past scores for the dashboard, the demo, tests
and benchmarks (pure: no disk, no database; ``monitor.sim.seed`` writes a plan).

``plan_history`` draws what a monitored segmenter would have delivered over ``weeks`` weeks: files per
day (more during working hours), a site, a cardiac phase, a quality class per file (``good`` / ``fair``
/ ``poor`` / ``failing``, the ``monitor.sim.segmenters`` names), per-structure pDSC and pHD (mm) sampled
from per-class distributions and flagged with ``monitor.qc.flags``, a few rejected files, and QA reviews
of some flagged files. Part-way through, a worse segmenter version takes over, so the flag rate rises
and pDSC drops where the new version appears.

Example::

    plan = plan_history(weeks=4, volumes_per_day=40, seed=0)
    print(len(plan.files), plan.switch_at)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.records import VolumeScore
from monitor.qc.scores import structure_score, volume_score
from monitor.sim.segmenters import SEGMENTERS
from monitor.store.records import NewReview, ReviewVerdict

__all__ = [
    "HISTORY_CHECKPOINT_HASH",
    "HISTORY_SEGMENTER",
    "HISTORY_VERSIONS",
    "QUALITY_MIX",
    "SIMULATED_TIMINGS_S",
    "HistoryFile",
    "HistoryPlan",
    "plan_history",
]

#: Name of the simulated segmentation model.
HISTORY_SEGMENTER = "cardioseg"
#: Its versions, oldest first; the last one is deployed part-way through and is worse.
HISTORY_VERSIONS: tuple[str, str] = ("1.0", "1.1")
#: Checkpoint hash under which the simulated scores are registered (not a real checkpoint).
HISTORY_CHECKPOINT_HASH = "0" * 56 + "5eed4157"
#: Share of each quality class per version position (0 = the old version, 1 = the new one).
QUALITY_MIX: tuple[dict[str, float], dict[str, float]] = (
    {"good": 0.64, "fair": 0.27, "poor": 0.06, "failing": 0.03},
    {"good": 0.30, "fair": 0.32, "poor": 0.23, "failing": 0.15},
)
#: Median pDSC per quality class and structure (the autoencoder reconstructs even ground truth at
#: about 0.91 LV, 0.87 RV, 0.82 MYO, so good masks score below 1).
_PDSC_MEDIAN: dict[str, dict[Structure, float]] = {
    "good": {Structure.LV: 0.90, Structure.RV: 0.85, Structure.MYO: 0.80},
    "fair": {Structure.LV: 0.84, Structure.RV: 0.76, Structure.MYO: 0.70},
    "poor": {Structure.LV: 0.68, Structure.RV: 0.56, Structure.MYO: 0.52},
    "failing": {Structure.LV: 0.45, Structure.RV: 0.35, Structure.MYO: 0.32},
}
#: Concentration of the Beta distribution of pDSC per class (higher = narrower).
_PDSC_CONCENTRATION = {"good": 300.0, "fair": 90.0, "poor": 25.0, "failing": 8.0}
#: Median pHD (mm) of good masks per structure, and the factor per class; log-normal spread.
_PHD_MEDIAN_MM = {Structure.LV: 6.0, Structure.RV: 10.0, Structure.MYO: 7.0}
_PHD_FACTOR = {"good": 1.0, "fair": 1.7, "poor": 3.6, "failing": 6.5}
_PHD_SIGMA = {"good": 0.25, "fair": 0.35, "poor": 0.45, "failing": 0.55}
#: Typical structure volumes (ml) at ED and ES, and their spread (coefficient of variation).
_VOLUME_ML = {
    "ED": {Structure.LV: 150.0, Structure.RV: 160.0, Structure.MYO: 120.0},
    "ES": {Structure.LV: 60.0, Structure.RV: 80.0, Structure.MYO: 125.0},
}
#: Voxel size of the simulated masks (dz, dy, dx), mm, and their shape [z, y, x].
_SPACING_MM = (8.0, 1.5625, 1.5625)
_SHAPE = (10, 224, 224)
#: Relative number of files per hour of day (UTC): a working day with a quiet night.
_HOURLY = np.array([1, 1, 1, 1, 1, 1, 2, 4, 8, 10, 10, 9, 7, 9, 10, 10, 8, 6, 4, 3, 2, 2, 1, 1], dtype=float)
_REJECTIONS: tuple[tuple[str, str], ...] = (
    ("corrupt", "not a readable gzip stream"),
    ("labels_outside_map", "label values [4] are not in the map acdc"),
    ("bad_ndim", "expected a 3D volume, got 4D"),
)
_REVIEWERS = ("qa.alice", "qa.bob", "dr.chen")
#: Probability of each verdict for a reviewed file, by volume flag level.
_VERDICTS: dict[FlagLevel, dict[ReviewVerdict, float]] = {
    FlagLevel.ERRONEOUS: {
        ReviewVerdict.CONFIRMED: 0.85,
        ReviewVerdict.FALSE_ALARM: 0.10,
        ReviewVerdict.UNSURE: 0.05,
    },
    FlagLevel.SUSPICIOUS: {
        ReviewVerdict.CONFIRMED: 0.55,
        ReviewVerdict.FALSE_ALARM: 0.35,
        ReviewVerdict.UNSURE: 0.10,
    },
}
#: Stage timings stored with the simulated scores (seconds).
SIMULATED_TIMINGS_S: dict[str, float] = {"load_s": 0.02, "model_s": 0.05, "metrics_s": 0.03}


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryFile:
    """One simulated mask file of the history."""

    index: int  #: position in the plan (0-based, by arrival time)
    case_key: str  #: synthetic case identifier, e.g. "hist00042"
    phase: str  #: "ED" or "ES"
    site: str  #: acquisition site
    segmenter_name: str  #: segmentation model
    segmenter_version: str  #: its version
    quality: str  #: ``monitor.sim.segmenters.SEGMENTERS`` name that describes the mask
    received_at: datetime  #: arrival (UTC)
    done_at: datetime  #: when it was scored or rejected (UTC)
    score: VolumeScore | None  #: sampled scores; None for a rejected file
    rejection: tuple[str, str] | None  #: (reason code, detail) of a rejected file
    reviews: tuple[NewReview, ...] = ()  #: QA reviews, oldest first
    with_artifacts: bool = False  #: render phantoms and write NIfTI artifacts for this file


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryPlan:
    """What ``plan_history`` drew: the files, by arrival time, and when the new version took over."""

    files: tuple[HistoryFile, ...]  #: every file, oldest first
    start: datetime  #: first day of the history (UTC midnight)
    end: datetime  #: end of the history (UTC, exclusive)
    switch_at: datetime  #: when the new version took over
    segmenter_name: str  #: segmentation model
    versions: tuple[str, str]  #: (old, new) version


def plan_history(
    *,
    weeks: float = 4,
    volumes_per_day: float = 40,
    seed: int = 0,
    end: datetime | None = None,
    segmenter_name: str = HISTORY_SEGMENTER,
    versions: tuple[str, str] = HISTORY_VERSIONS,
    switch_fraction: float = 0.65,
    sites: Mapping[str, float] | None = None,
    rejected_fraction: float = 0.02,
    review_fraction: float = 0.35,
    artifact_files: int = 12,
    policy: FlagPolicy = FlagPolicy(),
) -> HistoryPlan:
    """Draw a simulated scored history (pure: no disk, no database).

    Args:
        weeks: length of the history in weeks (> 0); it ends at ``end``.
        volumes_per_day: mean files per day (>= 0), Poisson-distributed, mostly in working hours.
        seed: random seed; the same arguments give the same plan.
        end: end of the history (timezone-aware, exclusive); the current hour when None.
        segmenter_name, versions: the segmentation model and its (old, new) versions.
        switch_fraction: where in the history the new version takes over (0-1).
        sites: site -> share of files; default two sites, 60 / 40.
        rejected_fraction: share of files rejected (0-1).
        review_fraction: share of flagged files that get a QA review (0-1).
        artifact_files: how many files get rendered NIfTI artifacts (a mix of quality classes and
            versions, the most recent first).
        policy: flag thresholds used on the sampled scores.
    Returns: the plan, files by arrival time.
    Raises: ValueError for out-of-range arguments or a naive ``end``.
    """
    if not weeks > 0:
        raise ValueError(f"weeks must be > 0, got {weeks}")
    if volumes_per_day < 0:
        raise ValueError(f"volumes_per_day must be >= 0, got {volumes_per_day}")
    for name, value in (
        ("switch_fraction", switch_fraction),
        ("rejected_fraction", rejected_fraction),
        ("review_fraction", review_fraction),
    ):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if artifact_files < 0:
        raise ValueError(f"artifact_files must be >= 0, got {artifact_files}")
    if end is None:
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    elif end.tzinfo is None or end.utcoffset() is None:
        raise ValueError(f"end must be timezone-aware, got naive {end.isoformat()}")
    end = end.astimezone(UTC)
    site_shares = dict(sites) if sites is not None else {"site-A": 0.6, "site-B": 0.4}
    site_names = list(site_shares)
    site_p = np.array([site_shares[s] for s in site_names], dtype=float)
    site_p /= site_p.sum()

    rng = np.random.default_rng(seed)
    start = end - timedelta(days=7 * weeks)
    switch_at = start + (end - start) * switch_fraction
    arrivals = _arrival_times(rng, start, end, volumes_per_day)
    files: list[HistoryFile] = []
    for index, received_at in enumerate(arrivals):
        position = 1 if received_at >= switch_at else 0
        mix = QUALITY_MIX[position]
        quality = str(rng.choice(list(mix), p=list(mix.values())))
        phase = "ED" if index % 2 == 0 else "ES"
        done_at = received_at + timedelta(seconds=float(rng.uniform(2.0, 40.0)))
        common = {
            "index": index,
            "case_key": f"hist{index // 2:05d}",
            "phase": phase,
            "site": str(site_names[int(rng.choice(len(site_names), p=site_p))]),
            "segmenter_name": segmenter_name,
            "segmenter_version": versions[position],
            "quality": quality,
            "received_at": received_at,
            "done_at": done_at,
        }
        if rng.random() < rejected_fraction:
            files.append(HistoryFile(**common, score=None, rejection=_REJECTIONS[int(rng.integers(3))]))
            continue
        score = _sample_score(rng, quality, phase, policy)
        reviews = _sample_reviews(rng, score.flag, done_at, end, review_fraction)
        files.append(HistoryFile(**common, score=score, rejection=None, reviews=reviews))
    for index in _pick_artifact_files(files, artifact_files):
        files[index] = replace(files[index], with_artifacts=True)
    return HistoryPlan(
        files=tuple(files),
        start=start,
        end=end,
        switch_at=switch_at,
        segmenter_name=segmenter_name,
        versions=versions,
    )


# --------------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------------


def _arrival_times(
    rng: np.random.Generator, start: datetime, end: datetime, volumes_per_day: float
) -> list[datetime]:
    """Poisson arrivals per hour between ``start`` and ``end``, following the working-day profile."""
    hours = int((end - start).total_seconds() // 3600)
    if hours <= 0 or volumes_per_day == 0:
        return []
    weights = _HOURLY / _HOURLY.sum() * volumes_per_day
    times: list[datetime] = []
    for h in range(hours):
        hour_start = start + timedelta(hours=h)
        weekend = 0.35 if hour_start.weekday() >= 5 else 1.0
        n = int(rng.poisson(weights[hour_start.hour] * weekend))
        offsets = np.sort(rng.uniform(0.0, 3600.0, size=n))
        times.extend(hour_start + timedelta(seconds=float(s)) for s in offsets)
    return times


def _sample_score(rng: np.random.Generator, quality: str, phase: str, policy: FlagPolicy) -> VolumeScore:
    """Per-structure pDSC / pHD (mm) drawn for a quality class, flagged with ``policy``."""
    voxel_ml = math.prod(_SPACING_MM) / 1000.0
    missing: Structure | None = None
    vanished: Structure | None = None
    if quality == "failing":
        draw = rng.random()
        if draw < 0.35:
            missing = STRUCTURES[int(rng.choice(3, p=[0.25, 0.5, 0.25]))]
        elif draw < 0.45:
            vanished = STRUCTURES[int(rng.integers(3))]
    structures = []
    for s in STRUCTURES:
        volume = max(5.0, rng.normal(_VOLUME_ML[phase][s], 0.18 * _VOLUME_ML[phase][s]))
        mask_voxels = round(volume / voxel_ml)
        median = _PDSC_MEDIAN[quality][s]
        k = _PDSC_CONCENTRATION[quality]
        pdsc = float(rng.beta(median * k, (1.0 - median) * k))
        phd = float(_PHD_MEDIAN_MM[s] * _PHD_FACTOR[quality] * math.exp(rng.normal(0.0, _PHD_SIGMA[quality])))
        pgt_voxels = round(mask_voxels * rng.uniform(0.85, 1.15))
        if s == missing:
            mask_voxels, pdsc, phd = 0, 0.0, math.nan
        elif s == vanished:
            pgt_voxels, pdsc, phd = 0, 0.0, math.nan
        structures.append(
            structure_score(
                s,
                pdsc=pdsc,
                phd_mm=phd,
                mask_voxels=mask_voxels,
                pgt_voxels=pgt_voxels,
                mask_volume_ml=mask_voxels * voxel_ml,
                policy=policy,
            )
        )
    return volume_score(
        structures,
        shape=_SHAPE,
        spacing_mm=_SPACING_MM,
        slices_scored=_SHAPE[0] - int(rng.integers(1, 3)),
        timings_s=SIMULATED_TIMINGS_S,
    )


def _sample_reviews(
    rng: np.random.Generator, flag: FlagLevel, scored_at: datetime, end: datetime, fraction: float
) -> tuple[NewReview, ...]:
    """QA reviews of a flagged file (none for ok files or beyond ``end``)."""
    if flag == FlagLevel.OK or rng.random() >= fraction:
        return ()
    reviewed_at = scored_at + timedelta(hours=float(rng.uniform(0.5, 30.0)))
    if reviewed_at >= end:
        return ()
    p = _VERDICTS[flag]
    verdict = ReviewVerdict(str(rng.choice([str(v) for v in p], p=list(p.values()))))
    note = {
        ReviewVerdict.CONFIRMED: "contour clearly wrong",
        ReviewVerdict.FALSE_ALARM: "mask acceptable",
        ReviewVerdict.UNSURE: None,
    }[verdict]
    return (
        NewReview(
            verdict=verdict,
            reviewer=_REVIEWERS[int(rng.integers(len(_REVIEWERS)))],
            note=note,
            reviewed_at=reviewed_at,
        ),
    )


def _pick_artifact_files(files: Sequence[HistoryFile], n: int) -> list[int]:
    """Indices of up to ``n`` scored files, round-robin over (version, quality), most recent first."""
    groups: dict[tuple[str, str], list[int]] = {}
    for item in reversed(files):
        if item.score is not None:
            groups.setdefault((item.segmenter_version, item.quality), []).append(item.index)
    order = sorted(groups, key=lambda key: (-_quality_rank(key[1]), key[0]))
    picked: list[int] = []
    while len(picked) < n and any(groups[key] for key in order):
        for key in order:
            if groups[key] and len(picked) < n:
                picked.append(groups[key].pop(0))
    return sorted(picked)


def _quality_rank(quality: str) -> int:
    names = list(SEGMENTERS)
    return names.index(quality) if quality in names else len(names)
