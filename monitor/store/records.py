"""Plain records returned by the store's repository functions (never ORM rows)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from monitor.qc.labels import Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.records import VolumeScore
from monitor.typing import Shape3, Spacing3

__all__ = [
    "ARTIFACT_INCONSISTENCY",
    "ARTIFACT_PGT",
    "AlertRecord",
    "CaseRecord",
    "ClaimedFile",
    "FileFilter",
    "FileStatus",
    "FinishedFile",
    "NewReview",
    "ReviewRecord",
    "ReviewVerdict",
    "SegmenterCounts",
    "StatusCounts",
    "StoredCheck",
    "StoredStructureScore",
]

#: Artifact kind of the pseudo ground truth (a NIfTI mask in the input's geometry).
ARTIFACT_PGT = "pgt"
#: Artifact kind of the XOR inconsistency map between mask and pseudo ground truth.
ARTIFACT_INCONSISTENCY = "inconsistency"


class FileStatus(StrEnum):
    """Where a received mask file stands. Every file ends ``scored`` or ``rejected``."""

    PENDING = "pending"  #: waiting to be claimed by a worker
    SCORING = "scoring"  #: claimed by a worker, under a lease
    SCORED = "scored"  #: scores, flag and artifacts recorded
    REJECTED = "rejected"  #: refused, with a reason code and a detail message


class ReviewVerdict(StrEnum):
    """A QA reviewer's verdict on a flag."""

    CONFIRMED = "confirmed"  #: the mask really is faulty
    FALSE_ALARM = "false_alarm"  #: the mask is fine; the flag was wrong
    UNSURE = "unsure"  #: cannot tell


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaimedFile:
    """A file handed to a worker by ``claim_batch``; the worker must record a result or release it."""

    file_id: int  #: primary key of the file row
    path: str  #: mask file, as enqueued
    content_hash: str  #: hash of the bytes that were enqueued
    case_key: str  #: case identifier parsed from the name or sidecar
    phase: str | None  #: e.g. "ED", "ES"; None when unknown
    site: str | None  #: acquisition site, when known
    scanner: str | None  #: scanner model, when known
    image_path: str | None  #: the MR image the mask belongs to, when known
    segmenter_name: str  #: model that produced the mask
    segmenter_version: str  #: its version
    attempts: int  #: claims so far, this one included
    received_at: datetime  #: when the file was enqueued (UTC)
    lease_expires_at: datetime  #: after this (UTC) ``reclaim_expired`` may hand the file to another worker


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCheck:
    """One check of the evidence stage as stored (``monitor.qc.records.Check``, the code as text so that
    a code of a newer version reads back too)."""

    code: str  #: reason code of the check (``monitor.qc.reasons.ReasonCode`` value)
    value: float  #: measured value in the unit of the code; nan when it was not finite
    passed: bool  #: verdict against the check's tolerance
    slices: tuple[int, ...] = ()  #: z indices (of the mask, 0-based) the check implicates


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredStructureScore:
    """Scores of one structure as stored; undefined metrics are ``nan``."""

    structure: Structure  #: LV, RV or MYO
    pdsc: float  #: pseudo Dice (0-1); nan when undefined
    phd_mm: float  #: pseudo Hausdorff distance in mm; nan when undefined
    flag: FlagLevel  #: verdict for this structure
    reasons: tuple[str, ...]  #: reason codes behind the flag (``monitor.qc.reasons``; empty when ok)
    mask_voxels: int  #: voxels of the structure in the mask
    pgt_voxels: int  #: voxels of the structure in the pseudo ground truth
    mask_volume_ml: float  #: volume of the structure in the mask, millilitres
    pdsc_3d: float = math.nan  #: refined pseudo Dice (3D-refined pGT); nan when undefined or not computed
    phd_mm_3d: float = math.nan  #: refined pseudo Hausdorff distance in mm; nan when undefined
    pgt_volume_ml: float = math.nan  #: volume of the structure in the refined pGT, millilitres
    evidence: tuple[StoredCheck, ...] = ()  #: the checks run on the structure (empty before evidence)
    #: the calibration's failure model: P(real Dice < 0.5 or real HD > 50 mm), 0-1; nan when unknown
    p_failure: float = math.nan
    #: the calibration's estimate of the real Dice (0-1) with its 90 % interval; nan without a calibration
    #: (or for a structure missing from the mask, or rows scored before the estimates existed)
    edsc: float = math.nan
    edsc_lo: float = math.nan
    edsc_hi: float = math.nan
    #: the calibration's estimate of the real Hausdorff distance in mm with its 90 % interval; nan as edsc
    ehd_mm: float = math.nan
    ehd_mm_lo: float = math.nan
    ehd_mm_hi: float = math.nan

    def failed_checks(self) -> tuple[StoredCheck, ...]:
        """The checks that did not pass, in stored order."""
        return tuple(check for check in self.evidence if not check.passed)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReviewRecord:
    """A QA review of a file."""

    review_id: int  #: primary key of the review
    file_id: int  #: the reviewed file
    verdict: ReviewVerdict  #: confirmed, false_alarm or unsure
    reviewer: str  #: who reviewed
    note: str | None  #: free text
    reviewed_at: datetime  #: when (UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertRecord:
    """One flagged file in the alert list."""

    file_id: int  #: primary key of the file row
    path: str  #: mask file
    case_key: str  #: case identifier
    phase: str | None  #: cardiac phase, when known
    site: str | None  #: acquisition site, when known
    segmenter_name: str  #: model that produced the mask
    segmenter_version: str  #: its version
    flag: FlagLevel  #: volume-level flag (suspicious or erroneous)
    flagged_structures: tuple[Structure, ...]  #: structures whose flag is not ok, in LV, RV, MYO order
    structures: tuple[StoredStructureScore, ...]  #: the file's structure scores, in LV, RV, MYO order
    scored_at: datetime  #: when the file was scored (UTC)
    review_verdict: ReviewVerdict | None  #: latest review verdict; None when unreviewed
    reviews: int  #: number of reviews


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRecord:
    """One file in full: identity, queue state, scores, artifacts and reviews."""

    file_id: int  #: primary key of the file row
    path: str  #: mask file
    content_hash: str  #: hash of its bytes
    case_key: str  #: case identifier
    phase: str | None  #: cardiac phase, when known
    site: str | None  #: acquisition site, when known
    scanner: str | None  #: scanner model, when known
    image_path: str | None  #: MR image, when known
    segmenter_name: str  #: model that produced the mask
    segmenter_version: str  #: its version
    status: FileStatus  #: pending, scoring, scored or rejected
    attempts: int  #: claims so far
    received_at: datetime  #: enqueued (UTC)
    started_at: datetime | None  #: last claimed (UTC)
    scored_at: datetime | None  #: scored (UTC)
    rejected_at: datetime | None  #: rejected (UTC)
    rejection_reason: str | None  #: stable code, e.g. "corrupt"
    rejection_detail: str | None  #: human-readable detail
    flag: FlagLevel | None  #: volume-level flag; None until scored
    shape: Shape3 | None  #: mask shape [z, y, x], voxels
    spacing_mm: Spacing3 | None  #: voxel spacing (dz, dy, dx) in mm
    slices_scored: int | None  #: slices that went through the autoencoder
    timings_s: dict[str, float] | None  #: seconds per scoring stage
    model_checkpoint_hash: str | None  #: autoencoder checkpoint that scored the file
    model_metadata: dict[str, Any] | None  #: its metadata
    structures: tuple[StoredStructureScore, ...]  #: per-structure scores, in LV, RV, MYO order
    artifacts: dict[str, str] = field(default_factory=dict)  #: kind -> path
    reviews: tuple[ReviewRecord, ...] = ()  #: oldest first
    superseded_at: datetime | None = None  #: None while this is its path's current content (UTC)
    image_used: bool | None = None  #: MR image used as evidence; None until scored or before evidence
    image_reason: str | None = None  #: why no image was used (a code such as ``not_found``)
    image_detail: str | None = None  #: that reason as a sentence
    #: the calibration behind the structures' estimates (eDSC, eHD, P(failure)); None without one
    calibration_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SegmenterCounts:
    """File counts of one segmenter version."""

    segmenter_name: str  #: segmentation model
    segmenter_version: str  #: its version
    by_status: dict[str, int]  #: status -> files (every status present, zeros included)
    by_flag: dict[str, int]  #: flag level -> scored files (every level present, zeros included)
    last_scored_at: datetime | None  #: latest score (UTC); None when nothing is scored


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusCounts:
    """Queue and flag counts, overall and per segmenter version."""

    by_status: dict[str, int]  #: status -> files
    by_flag: dict[str, int]  #: flag level -> scored files
    last_scored_at: datetime | None  #: latest score of any file (UTC)
    segmenters: tuple[SegmenterCounts, ...]  #: sorted by name, version

    @property
    def total(self) -> int:
        """Files in the database."""
        return sum(self.by_status.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (timestamps as ISO 8601 strings)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value is not None else None

        return {
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_flag": dict(self.by_flag),
            "last_scored_at": iso(self.last_scored_at),
            "segmenters": [
                {
                    "segmenter_name": s.segmenter_name,
                    "segmenter_version": s.segmenter_version,
                    "by_status": dict(s.by_status),
                    "by_flag": dict(s.by_flag),
                    "last_scored_at": iso(s.last_scored_at),
                }
                for s in self.segmenters
            ],
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class NewReview:
    """A QA review to store with its file by ``bulk_insert_scored``."""

    verdict: ReviewVerdict  #: confirmed, false_alarm or unsure
    reviewer: str  #: who reviewed
    note: str | None = None  #: free text
    reviewed_at: datetime  #: when (timezone-aware)


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishedFile:
    """A mask file that was scored or rejected elsewhere (an import, a benchmark, a test), for
    ``bulk_insert_scored``. Exactly one of ``score`` and ``rejection`` is given."""

    path: str  #: mask file
    content_hash: str  #: hash of its bytes; (path, content_hash) must be new
    case_key: str  #: case identifier
    phase: str | None  #: cardiac phase, when known
    segmenter_name: str  #: model that produced the mask (created on first use)
    segmenter_version: str  #: its version
    received_at: datetime  #: when it arrived (timezone-aware)
    done_at: datetime  #: when it was scored or rejected (timezone-aware)
    score: VolumeScore | None = None  #: its scores; None for a rejected file
    rejection: tuple[str, str] | None = None  #: (reason code, detail) of a rejected file
    site: str | None = None  #: acquisition site, when known
    scanner: str | None = None  #: scanner model, when known
    image_path: str | None = None  #: the MR image, when known
    image_reason: str | None = None  #: why no image was used for the score (a code); None when used
    image_detail: str | None = None  #: that reason as a sentence
    artifacts: dict[str, str] = field(default_factory=dict)  #: kind -> path
    reviews: tuple[NewReview, ...] = ()  #: reviews of a scored file


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFilter:
    """Which files a read query takes (time series, histograms, alerts); each condition only when given.

    The range applies to the time a file was scored (or rejected, for the rejected counts of a time
    series); ranges are half-open, ``[start, end)``. Hashable, so that a cached read can take it.

    Raises: ValueError for empty or unknown levels, an unknown structure or naive timestamps.
    """

    start: datetime | None = None  #: keep files timed at or after start (timezone-aware); None: open
    end: datetime | None = None  #: keep files timed before end (timezone-aware); None: open
    segmenter_name: str | None = None  #: keep only this segmenter; None: any
    segmenter_version: str | None = None  #: keep only this version; None: any
    levels: tuple[FlagLevel, ...] | None = None  #: keep these volume flag levels; None: any
    structure: Structure | None = None  #: with ``levels``: test this structure's flag instead
    reviewed: bool | None = None  #: True: reviewed files only; False: unreviewed only; None: both

    def __post_init__(self) -> None:
        if self.levels is not None:
            levels = sorted({FlagLevel(level) for level in self.levels}, key=lambda level: level.severity)
            if not levels:
                raise ValueError("levels must name at least one flag level")
            object.__setattr__(self, "levels", tuple(levels))
        if self.structure is not None:
            object.__setattr__(self, "structure", Structure(self.structure))
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and (value.tzinfo is None or value.utcoffset() is None):
                raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")

    @property
    def scope_only(self) -> bool:
        """True when only the range and the segmenter are set (what time series and histograms take)."""
        return self.levels is None and self.structure is None and self.reviewed is None
