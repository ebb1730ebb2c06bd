"""Simulated scored history, written: ``seed_history`` puts a ``plan_history`` plan into a migrated
results database through the ``monitor.store`` API.

For a modest number of files it also renders a synthetic phantom, its simulated segmentation, a pseudo
ground truth, the XOR inconsistency map and an MR-like image as NIfTI files, and stores scores computed
from those arrays (``monitor.qc.scores.score_volume``), so that the dashboard's case page has real
images to show.

Example::

    from monitor.sim import seed_history

    summary = seed_history("sqlite:///cmr-monitor.db", weeks=4, volumes_per_day=40,
                           artifacts_dir=Path("cmr-monitor-artifacts"))
    print(summary.scored, summary.flagged)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from monitor.io.nifti import save_labels
from monitor.qc.flags import FlagPolicy
from monitor.qc.labels import ACDC, LabelMap
from monitor.qc.levels import FlagLevel
from monitor.qc.metrics import inconsistency_map
from monitor.qc.records import VolumeScore
from monitor.qc.scores import score_volume
from monitor.sim.history import (
    HISTORY_CHECKPOINT_HASH,
    SIMULATED_TIMINGS_S,
    HistoryFile,
    HistoryPlan,
    plan_history,
)
from monitor.sim.phantoms import make_image, make_patient
from monitor.sim.segmenters import SEGMENTERS
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    add_review,
    enqueue_file,
    open_session,
    record_rejection,
    record_scores,
    register_model,
)

__all__ = ["HistorySummary", "seed_history", "with_recent_alert_artifacts", "write_history"]


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


def seed_history(
    session_or_url: Session | str,
    *,
    weeks: float = 4,
    volumes_per_day: float = 40,
    seed: int = 0,
    artifacts_dir: Path | None = None,
    artifact_files: int = 12,
    artifact_days: float = 0.0,
    phantom: Mapping[str, object] | None = None,
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
        artifact_days: besides, every flagged file (an alert) of the last ``artifact_days`` days gets
            them, so that the recent alerts' case pages show their maps (ignored without
            ``artifacts_dir``; about 1 s per file on a 2-core CPU at full size).
        phantom: ``monitor.sim.phantoms.sample_geometry`` overrides of the rendered phantoms, e.g.
            ``{"n_slices": 5, "shape_yx": (128, 128)}`` for quick runs; None = full size.
        label_map: label map of the written masks and pGTs (the dashboard must read them with it).
        plan_options: further ``plan_history`` arguments (``switch_fraction``, ``sites``, ...).
    Returns: counts and ids of what was written.
    Raises: ValueError for bad arguments; DatabaseUnavailable; StoreError-derived errors of the store.
    """
    if artifact_days < 0:
        raise ValueError(f"artifact_days must be >= 0, got {artifact_days}")
    plan = plan_history(
        weeks=weeks,
        volumes_per_day=volumes_per_day,
        seed=seed,
        end=end,
        artifact_files=artifact_files if artifacts_dir is not None else 0,
        **plan_options,  # type: ignore[arg-type]
    )
    if artifacts_dir is not None and artifact_days > 0:
        plan = with_recent_alert_artifacts(plan, artifact_days)
    options = {"artifacts_dir": artifacts_dir, "seed": seed, "label_map": label_map, "phantom": phantom}
    if isinstance(session_or_url, Session):
        return write_history(session_or_url, plan, **options)  # type: ignore[arg-type]
    with open_session(session_or_url) as session:
        return write_history(session, plan, **options)  # type: ignore[arg-type]


def with_recent_alert_artifacts(plan: HistoryPlan, days: float) -> HistoryPlan:
    """``plan`` with every flagged file received in its last ``days`` days marked for artifacts."""
    since = plan.end - timedelta(days=days)
    files = tuple(
        replace(item, with_artifacts=True)
        if item.score is not None and item.score.flag != FlagLevel.OK and item.received_at >= since
        else item
        for item in plan.files
    )
    return replace(plan, files=files)


def write_history(
    session: Session,
    plan: HistoryPlan,
    *,
    artifacts_dir: Path | None = None,
    seed: int = 0,
    label_map: LabelMap = ACDC,
    phantom: Mapping[str, object] | None = None,
) -> HistorySummary:
    """Write a plan through the store API: enqueue, score or reject, review; render artifact files.

    Files marked ``with_artifacts`` get a rendered phantom (when ``artifacts_dir`` is given): the mask,
    an MR-like image, a pseudo ground truth and the inconsistency map are written as NIfTI, and the
    stored scores are computed from those arrays instead of the sampled ones.

    Returns: counts and ids of what was written.
    """
    model_id = register_model(
        session, HISTORY_CHECKPOINT_HASH, {"simulated": True, "source": "monitor.sim.seed"}
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
            rendered = _render_case(item, root, seed=seed, label_map=label_map, phantom=phantom or {})
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


def _render_case(
    item: HistoryFile, root: Path, *, seed: int, label_map: LabelMap, phantom: Mapping[str, object]
) -> _Rendered:
    """Phantom -> simulated mask (the file's quality class), pGT, XOR map and image, written as NIfTI.

    The pGT stands in for the autoencoder's output: the ground-truth phantom with the mild boundary noise
    of a good segmenter (the autoencoder reproduces plausible shapes, not the exact ground truth).
    """
    rng = np.random.default_rng([seed, item.index, 7])
    ed, es = make_patient(rng, **phantom)
    phantom = ed if item.phase == "ED" else es
    mask, _ = SEGMENTERS[item.quality](phantom.labels, rng, phantom.spacing_mm)
    pgt, _ = SEGMENTERS["good"](phantom.labels, rng, phantom.spacing_mm)
    image = make_image(phantom.labels, rng, phantom.spacing_mm)
    score = score_volume(
        mask,
        pgt,
        phantom.spacing_mm,
        policy=FlagPolicy(),
        slices_scored=int(np.count_nonzero(mask.any(axis=(1, 2)))),
        timings_s=SIMULATED_TIMINGS_S,
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
