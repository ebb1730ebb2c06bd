"""Simulated scored history: a few weeks of past scores for the dashboard, the demo, tests and benchmarks.

``plan_history`` draws, without touching disk or database, what a monitored segmenter would have
delivered over ``weeks`` weeks: files per day (more during working hours), a site, a cardiac phase, a
quality class per file (``good`` / ``fair`` / ``poor`` / ``failing``, the ``monitor.synthetic`` segmenter
names), per-structure pDSC and pHD (mm) sampled from per-class distributions and flagged with
``monitor.flags``, a few rejected files, and QA reviews of some flagged files. Part-way through, a worse
segmenter version takes over, so the flag rate rises and pDSC drops where the new version appears.

``seed_history`` writes such a plan into a migrated results database through the ``monitor.store`` API.
For a modest number of files it also renders a synthetic phantom, its simulated segmentation, a
pseudo ground truth, the XOR inconsistency map and an MR-like image as NIfTI files, and stores scores
computed from those arrays, so that the dashboard's case page has real images to show.

Example::

    from monitor.history import seed_history

    summary = seed_history("sqlite:///cmr-monitor.db", weeks=4, volumes_per_day=40,
                           artifacts_dir=Path("cmr-monitor-artifacts"))
    print(summary.scored, summary.flagged)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from monitor.flags import FlagPolicy, flag_structure, worst_flag
from monitor.labels import ACDC, CANONICAL_CHANNEL, STRUCTURES, LabelMap, Structure
from monitor.metrics import dice, hausdorff_mm, inconsistency_map, volume_ml
from monitor.nifti import save_labels
from monitor.records import FlagLevel, StructureScore, VolumeScore
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    ReviewVerdict,
    add_review,
    enqueue_file,
    make_engine,
    make_session_factory,
    record_rejection,
    record_scores,
    register_model,
)
from monitor.synthetic import SEGMENTERS, make_image, make_patient

__all__ = [
    "HISTORY_CHECKPOINT_HASH",
    "HISTORY_SEGMENTER",
    "HISTORY_VERSIONS",
    "QUALITY_MIX",
    "HistoryFile",
    "HistoryPlan",
    "HistoryReview",
    "HistorySummary",
    "plan_history",
    "seed_history",
    "write_history",
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


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryReview:
    """A simulated QA review."""

    verdict: ReviewVerdict  #: confirmed, false_alarm or unsure
    reviewer: str  #: reviewer name
    note: str | None  #: free text
    reviewed_at: datetime  #: when (UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryFile:
    """One simulated mask file of the history."""

    index: int  #: position in the plan (0-based, by arrival time)
    case_key: str  #: synthetic case identifier, e.g. "hist00042"
    phase: str  #: "ED" or "ES"
    site: str  #: acquisition site
    segmenter_name: str  #: segmentation model
    segmenter_version: str  #: its version
    quality: str  #: ``monitor.synthetic.SEGMENTERS`` name that describes the mask
    received_at: datetime  #: arrival (UTC)
    done_at: datetime  #: when it was scored or rejected (UTC)
    score: VolumeScore | None  #: sampled scores; None for a rejected file
    rejection: tuple[str, str] | None  #: (reason code, detail) of a rejected file
    reviews: tuple[HistoryReview, ...] = ()  #: QA reviews, oldest first
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


@dataclass(frozen=True, slots=True, kw_only=True)
class HistorySummary:
    """What ``seed_history`` wrote."""

    start: datetime  #: first day of the history (UTC)
    end: datetime  #: end of the history (UTC, exclusive)
    switch_at: datetime  #: when the new version took over
    scored: int  #: scored files
    rejected: int  #: rejected files
    by_flag: dict[str, int]  #: scored files per volume flag level
    by_version: dict[str, dict[str, int]]  #: version -> {"scored", "flagged", "rejected"}
    reviews: int  #: reviews written
    reviewed_files: int  #: files with at least one review
    file_ids: tuple[int, ...]  #: ids of the files, in plan order
    artifact_file_ids: tuple[int, ...]  #: ids of the files with NIfTI artifacts
    written_paths: tuple[Path, ...] = field(default=())  #: every NIfTI file written

    @property
    def flagged(self) -> int:
        """Scored files flagged suspicious or erroneous."""
        return self.by_flag.get(str(FlagLevel.SUSPICIOUS), 0) + self.by_flag.get(str(FlagLevel.ERRONEOUS), 0)


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


def seed_history(
    session_or_url: Session | str,
    *,
    weeks: float = 4,
    volumes_per_day: float = 40,
    seed: int = 0,
    artifacts_dir: Path | None = None,
    artifact_files: int = 12,
    end: datetime | None = None,
    label_map: LabelMap = ACDC,
    **plan_options: object,
) -> HistorySummary:
    """Seed a migrated results database with a few weeks of simulated scored history.

    Args:
        session_or_url: a session on the database, or its URL (the schema must be at head:
            ``cmr-monitor db upgrade``).
        weeks, volumes_per_day, seed, end: see ``plan_history``.
        artifacts_dir: where the NIfTI files of ``artifact_files`` files go (pGT and inconsistency
            maps under ``pgt/`` style names, the masks and MR-like images under ``inputs/``); None
            writes no files and stores no artifact paths.
        artifact_files: how many files get rendered phantoms and NIfTI artifacts (ignored without
            ``artifacts_dir``).
        label_map: label map of the written masks and pGTs (the dashboard must read them with it).
        plan_options: further ``plan_history`` arguments (``switch_fraction``, ``sites``, ...).
    Returns: counts and ids of what was written.
    Raises: ValueError for bad arguments; DatabaseUnavailable; StoreError-derived errors of the store.
    """
    plan = plan_history(
        weeks=weeks,
        volumes_per_day=volumes_per_day,
        seed=seed,
        end=end,
        artifact_files=artifact_files if artifacts_dir is not None else 0,
        **plan_options,  # type: ignore[arg-type]
    )
    if isinstance(session_or_url, Session):
        return write_history(
            session_or_url, plan, artifacts_dir=artifacts_dir, seed=seed, label_map=label_map
        )
    engine = make_engine(session_or_url)
    try:
        with make_session_factory(engine)() as session:
            return write_history(session, plan, artifacts_dir=artifacts_dir, seed=seed, label_map=label_map)
    finally:
        engine.dispose()


def write_history(
    session: Session,
    plan: HistoryPlan,
    *,
    artifacts_dir: Path | None = None,
    seed: int = 0,
    label_map: LabelMap = ACDC,
) -> HistorySummary:
    """Write a plan through the store API: enqueue, score or reject, review; render artifact files.

    Files marked ``with_artifacts`` get a rendered phantom (when ``artifacts_dir`` is given): the mask,
    an MR-like image, a pseudo ground truth and the inconsistency map are written as NIfTI, and the
    stored scores are computed from those arrays instead of the sampled ones.

    Returns: counts and ids of what was written.
    """
    model_id = register_model(
        session, HISTORY_CHECKPOINT_HASH, {"simulated": True, "source": "monitor.history"}
    )
    root = Path(artifacts_dir).resolve() if artifacts_dir is not None else None
    ids: list[int] = []
    artifact_ids: list[int] = []
    written: list[Path] = []
    by_flag: Counter[str] = Counter()
    by_version: dict[str, Counter[str]] = {}
    reviews = reviewed_files = 0
    for item in plan.files:
        version_counts = by_version.setdefault(item.segmenter_version, Counter())
        rendered = None
        if item.with_artifacts and root is not None and item.score is not None:
            rendered = _render_case(item, root, seed=seed, label_map=label_map)
            written.extend(rendered.paths)
        mask_path = (
            str(rendered.mask_path)
            if rendered is not None
            else f"/watch/{item.segmenter_name}/{item.segmenter_version}/{item.case_key}_{item.phase}.nii.gz"
        )
        file_id, _ = enqueue_file(
            session,
            path=mask_path,
            content_hash=f"{plan.segmenter_name}-{item.index:010d}-{item.case_key}".ljust(64, "0")[:64],
            case_key=item.case_key,
            phase=item.phase,
            segmenter_name=item.segmenter_name,
            segmenter_version=item.segmenter_version,
            site=item.site,
            scanner="SimScanner 1.5T",
            image_path=str(rendered.image_path) if rendered is not None else None,
            received_at=item.received_at,
        )
        ids.append(file_id)
        if item.score is None:
            reason, detail = item.rejection or ("corrupt", "unreadable")
            record_rejection(session, file_id, reason, detail, rejected_at=item.done_at)
            version_counts["rejected"] += 1
            continue
        score = rendered.score if rendered is not None else item.score
        artifacts = (
            {ARTIFACT_PGT: str(rendered.pgt_path), ARTIFACT_INCONSISTENCY: str(rendered.xor_path)}
            if rendered is not None
            else {}
        )
        record_scores(session, file_id, score, model_id=model_id, artifacts=artifacts, scored_at=item.done_at)
        if rendered is not None:
            artifact_ids.append(file_id)
        by_flag[str(score.flag)] += 1
        version_counts["scored"] += 1
        version_counts["flagged"] += int(score.flag != FlagLevel.OK)
        # reviews are drawn for the sampled flag; a rendered file keeps them only while still flagged
        kept = item.reviews if score.flag != FlagLevel.OK else ()
        for review in kept:
            add_review(
                session,
                file_id,
                verdict=review.verdict,
                reviewer=review.reviewer,
                note=review.note,
                reviewed_at=review.reviewed_at,
            )
        reviews += len(kept)
        reviewed_files += int(bool(kept))
    scored = sum(by_flag.values())
    return HistorySummary(
        start=plan.start,
        end=plan.end,
        switch_at=plan.switch_at,
        scored=scored,
        rejected=sum(c["rejected"] for c in by_version.values()),
        by_flag={str(level): by_flag.get(str(level), 0) for level in FlagLevel},
        by_version={
            version: {k: counts.get(k, 0) for k in ("scored", "flagged", "rejected")}
            for version, counts in by_version.items()
        },
        reviews=reviews,
        reviewed_files=reviewed_files,
        file_ids=tuple(ids),
        artifact_file_ids=tuple(artifact_ids),
        written_paths=tuple(written),
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
        level, reasons = flag_structure(
            s, pdsc=pdsc, phd_mm=phd, mask_voxels=mask_voxels, pgt_voxels=pgt_voxels, policy=policy
        )
        structures.append(
            StructureScore(
                structure=s,
                pdsc=pdsc,
                phd_mm=phd,
                flag=level,
                reasons=reasons,
                mask_voxels=mask_voxels,
                pgt_voxels=pgt_voxels,
                mask_volume_ml=mask_voxels * voxel_ml,
            )
        )
    return VolumeScore(
        structures=tuple(structures),
        flag=worst_flag(s.flag for s in structures),
        shape=_SHAPE,
        spacing_mm=_SPACING_MM,
        slices_scored=_SHAPE[0] - int(rng.integers(1, 3)),
        timings_s={"load_s": 0.02, "model_s": 0.05, "metrics_s": 0.03},
    )


def _sample_reviews(
    rng: np.random.Generator, flag: FlagLevel, scored_at: datetime, end: datetime, fraction: float
) -> tuple[HistoryReview, ...]:
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
        HistoryReview(
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


# --------------------------------------------------------------------------------------------------
# Rendered artifacts
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rendered:
    """NIfTI files and scores of one rendered file."""

    mask_path: Path
    image_path: Path
    pgt_path: Path
    xor_path: Path
    score: VolumeScore

    @property
    def paths(self) -> tuple[Path, ...]:
        return (self.mask_path, self.image_path, self.pgt_path, self.xor_path)


def _render_case(item: HistoryFile, root: Path, *, seed: int, label_map: LabelMap) -> _Rendered:
    """Phantom -> simulated mask (the file's quality class), pGT, XOR map and image, written as NIfTI.

    The pGT stands in for the autoencoder's output: the ground-truth phantom with the mild boundary noise
    of a good segmenter (the autoencoder reproduces plausible shapes, not the exact ground truth).
    """
    rng = np.random.default_rng([seed, item.index, 7])
    ed, es = make_patient(rng)
    phantom = ed if item.phase == "ED" else es
    mask, _ = SEGMENTERS[item.quality](phantom.labels, rng, phantom.spacing_mm)
    pgt, _ = SEGMENTERS["good"](phantom.labels, rng, phantom.spacing_mm)
    image = make_image(phantom.labels, rng, phantom.spacing_mm)
    structures = _score_arrays(mask, pgt, phantom.spacing_mm)
    score = VolumeScore(
        structures=structures,
        flag=worst_flag(s.flag for s in structures),
        shape=phantom.shape,
        spacing_mm=phantom.spacing_mm,
        slices_scored=int(np.count_nonzero(mask.any(axis=(1, 2)))),
        timings_s={"load_s": 0.02, "model_s": 0.05, "metrics_s": 0.03},
    )
    stem = f"{item.case_key}_{item.phase}"
    inputs = root / "inputs" / item.segmenter_name / item.segmenter_version
    folder = root / "history" / f"{item.index // 1000:06d}"
    mask_path = save_labels(inputs / f"{stem}.nii.gz", mask, phantom.affine, label_map=label_map)
    image_path = save_labels(inputs / f"{stem}_0000.nii.gz", image, phantom.affine)
    pgt_path = save_labels(folder / f"{stem}_{ARTIFACT_PGT}.nii.gz", pgt, phantom.affine, label_map=label_map)
    xor_path = save_labels(
        folder / f"{stem}_{ARTIFACT_INCONSISTENCY}.nii.gz", inconsistency_map(mask, pgt), phantom.affine
    )
    return _Rendered(
        mask_path=mask_path, image_path=image_path, pgt_path=pgt_path, xor_path=xor_path, score=score
    )


def _score_arrays(
    mask: np.ndarray, pgt: np.ndarray, spacing_mm: tuple[float, float, float]
) -> tuple[StructureScore, ...]:
    """pDSC, pHD (mm) and flags of LV, RV, MYO between a mask and its pGT (canonical labels)."""
    scores = []
    for s in STRUCTURES:
        channel = CANONICAL_CHANNEL[s]
        m, g = mask == channel, pgt == channel
        n_mask, n_pgt = int(np.count_nonzero(m)), int(np.count_nonzero(g))
        pdsc, phd = dice(m, g), hausdorff_mm(m, g, spacing_mm)
        level, reasons = flag_structure(s, pdsc=pdsc, phd_mm=phd, mask_voxels=n_mask, pgt_voxels=n_pgt)
        scores.append(
            StructureScore(
                structure=s,
                pdsc=pdsc,
                phd_mm=phd,
                flag=level,
                reasons=reasons,
                mask_voxels=n_mask,
                pgt_voxels=n_pgt,
                mask_volume_ml=volume_ml(m, spacing_mm),
            )
        )
    return tuple(scores)
