"""Tests of the dashboard aggregates of monitor/store/queries.py (time series, histograms, reviewed alerts)
and of bulk_insert_scored, on SQLite and PostgreSQL.

The aggregates are checked against pandas / numpy references computed from the files that were written
(``numpy.percentile``'s linear method is PostgreSQL's ``percentile_cont``), and SQLite against
PostgreSQL on the same data.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import StructureScore, VolumeScore
from monitor.store import (
    FileFilter,
    FinishedFile,
    NewReview,
    ReviewVerdict,
    bulk_insert_scored,
    export_frame,
    get_case,
    list_alerts,
    make_engine,
    make_session_factory,
    register_model,
    reviewed_alert_scores,
    score_histogram,
    series_columns,
    status_counts,
    structure_time_series,
    upgrade,
    volume_time_series,
)
from monitor.store._aggregate import segment_quantiles
from monitor.store.alerts import REVIEWED_COLUMNS
from monitor.store.series import PDSC_BINS, PHD_BIN_MM, PHD_BINS

D0 = datetime(2026, 3, 2, tzinfo=UTC)
GROUPINGS: list[tuple[str, ...]] = [("segmenter",), ("site",), ("segmenter", "site"), ()]
BUCKETS = ["hour", "day", None]
_PDSC_EDGES = [0.0, 0.05, 0.15, 0.35, 0.5, 0.95, 1.0]
_PHD_EDGES_MM = [0.0, 2.0, 3.0, 58.0, 60.0, 75.5]
_SEVERITY = {FlagLevel.OK: 0, FlagLevel.SUSPICIOUS: 1, FlagLevel.ERRONEOUS: 2}


def _history(n: int = 240, seed: int = 7) -> list[FinishedFile]:
    """Scored and rejected files over three days: two versions, three sites (one unknown), undefined
    metrics, values on bin edges, a structure missing now and then, reviews of flagged files."""
    rng = np.random.default_rng(seed)
    files = []
    for i in range(n):
        done = D0 + timedelta(
            minutes=int(rng.integers(0, 3 * 24 * 60)), microseconds=int(rng.integers(0, 10**6))
        )
        version = "2.0" if done >= D0 + timedelta(days=1, hours=12) and i % 4 else "1.0"
        site = ("site-A", "site-B", None)[int(rng.integers(0, 3))]
        common = {
            "path": f"/watch/unet/{version}/case{i:04d}_ED.nii.gz",
            "content_hash": f"{i:064x}",
            "case_key": f"case{i:04d}",
            "phase": "ED",
            "segmenter_name": "unet",
            "segmenter_version": version,
            "received_at": done - timedelta(seconds=30),
            "done_at": done,
            "site": site,
        }
        if i % 25 == 0:
            files.append(FinishedFile(**common, rejection=("corrupt", "not a gzip file")))
            continue
        structures = []
        for s in STRUCTURES:
            if s == Structure.MYO and i % 17 == 0:
                continue
            if i % 11 == 0:
                pdsc = math.nan
            elif i % 7 == 0:
                pdsc = float(rng.choice(_PDSC_EDGES))
            else:
                pdsc = float(rng.uniform(0, 1))
            if i % 13 == 0:
                phd = math.nan
            elif i % 5 == 0:
                phd = float(rng.choice(_PHD_EDGES_MM))
            else:
                phd = float(rng.lognormal(2.0, 0.7))
            flag = FlagLevel(rng.choice(["ok", "ok", "ok", "suspicious", "erroneous"]))
            reasons = () if flag == FlagLevel.OK else (ReasonCode.PHD_HIGH,)
            structures.append(
                StructureScore(
                    structure=s,
                    pdsc=pdsc,
                    phd_mm=phd,
                    flag=flag,
                    reasons=reasons,
                    mask_voxels=1000 + i,
                    pgt_voxels=1100 + i,
                    mask_volume_ml=12.5 + i,
                )
            )
        worst = max((s.flag for s in structures), key=_SEVERITY.__getitem__)
        reviews: tuple[NewReview, ...] = ()
        if worst != FlagLevel.OK and i % 3 == 0:
            verdicts = [
                ReviewVerdict(v) for v in rng.choice(["confirmed", "false_alarm", "unsure"], size=i % 2 + 1)
            ]
            reviews = tuple(
                NewReview(verdict=v, reviewer="dr.x", reviewed_at=done + timedelta(hours=k + 1))
                for k, v in enumerate(verdicts)
            )
        score = VolumeScore(
            structures=tuple(structures),
            flag=worst,
            shape=(10, 224, 256),
            spacing_mm=(10.0, 1.5625, 1.5625),
            slices_scored=8,
            timings_s={"model_s": 0.05},
        )
        files.append(FinishedFile(**common, score=score, reviews=reviews))
    return files


HISTORY = _history()


def _write(session: Session, files: Sequence[FinishedFile] = HISTORY) -> list[int]:
    model_id = register_model(session, "ab" * 32, {"test": True})
    return bulk_insert_scored(session, files, model_id=model_id, chunk_size=64)


def _score_rows(files: Sequence[FinishedFile]) -> pd.DataFrame:
    """One row per scored file and structure, with both bucket starts."""
    rows = [
        {
            "done_at": f.done_at,
            "segmenter_name": f.segmenter_name,
            "segmenter_version": f.segmenter_version,
            "site": f.site,
            "structure": str(s.structure),
            "flagged": int(s.flag != FlagLevel.OK),
            "pdsc": s.pdsc,
            "phd_mm": s.phd_mm,
        }
        for f in files
        if f.score is not None
        for s in f.score.structures
    ]
    return pd.DataFrame(rows)


def _keys(group_by: Sequence[str]) -> list[str]:
    return [c for key in ("segmenter", "site") if key in group_by for c in _KEY_COLUMNS[key]]


_KEY_COLUMNS = {"segmenter": ["segmenter_name", "segmenter_version"], "site": ["site"]}
_RANK = {str(s): i for i, s in enumerate(STRUCTURES)}


def _with_bucket(frame: pd.DataFrame, bucket: str | None) -> pd.DataFrame:
    at = pd.to_datetime(frame["done_at"], utc=True)
    start = at.dt.floor("h" if bucket == "hour" else "D") if bucket else pd.Series(pd.NaT, index=frame.index)
    return frame.assign(bucket_start=start, site=frame["site"].fillna("\x00"))


def _reference_structure(
    files: Sequence[FinishedFile], bucket: str | None, group_by: Sequence[str]
) -> pd.DataFrame:
    rows = _with_bucket(_score_rows(files), bucket)
    keys = ["bucket_start", *_keys(group_by), "structure"]
    out = []
    for key, group in rows.groupby(keys, dropna=False, sort=False):
        record = dict(zip(keys, key, strict=True))
        record["scored"] = len(group)
        record["flagged"] = int(group["flagged"].sum())
        record["flag_rate"] = record["flagged"] / record["scored"]
        for metric in ("pdsc", "phd_mm"):
            defined = group[metric].dropna().to_numpy()
            record[f"{metric}_n"] = len(defined)
            for name, q in (("p25", 25), ("median", 50), ("p75", 75)):
                record[f"{metric}_{name}"] = float(np.percentile(defined, q)) if len(defined) else math.nan
        out.append(record)
    return _sorted(pd.DataFrame(out), series_columns("structure", group_by))


def _sorted(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Order rows like the store (bucket, keys, structure; unknown site last) and name the unknown site None."""
    frame = frame.copy()
    if "site" in frame:
        frame["_site"] = frame["site"].replace("\x00", "\uffff")
        frame["site"] = frame["site"].replace("\x00", None)
    by = [
        c if c != "site" else "_site"
        for c in columns
        if c in ("bucket_start", "segmenter_name", "segmenter_version", "site")
    ]
    if "structure" in frame:
        frame["_rank"] = frame["structure"].map(_RANK)
        by.append("_rank")
    for extra in ("_metric", "bin"):
        if extra in frame:
            by.append(extra)
    return frame.sort_values(by, ignore_index=True).reindex(columns=columns)


def _assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(want.columns)
    assert len(got) == len(want), (len(got), len(want))
    for column in got.columns:
        a, b = got[column], want[column]
        if column == "bucket_start":
            assert [x if pd.notna(x) else None for x in a] == [x if pd.notna(x) else None for x in b], column
        elif pd.api.types.is_numeric_dtype(b) and column not in (
            "segmenter_name",
            "segmenter_version",
            "site",
        ):
            np.testing.assert_allclose(
                a.to_numpy(float), b.to_numpy(float), rtol=1e-12, atol=0, err_msg=column
            )
        else:
            assert [x if isinstance(x, str) else None for x in a] == [
                x if isinstance(x, str) else None for x in b
            ], column


def test_structure_time_series_matches_numpy(session: Session) -> None:
    _write(session)
    for bucket in BUCKETS:
        for group_by in GROUPINGS:
            got = structure_time_series(session, bucket=bucket, group_by=group_by)  # type: ignore[arg-type]
            _assert_frames_equal(got, _reference_structure(HISTORY, bucket, group_by))
    assert str(got["bucket_start"].dtype).endswith("UTC]")


def test_structure_time_series_filters(session: Session) -> None:
    _write(session)
    start, end = D0 + timedelta(hours=20), D0 + timedelta(days=2, hours=3)
    kept = [f for f in HISTORY if start <= f.done_at < end and f.segmenter_version == "2.0"]
    got = structure_time_series(
        session,
        FileFilter(start=start, end=end, segmenter_name="unet", segmenter_version="2.0"),
        bucket="hour",
    )
    _assert_frames_equal(got, _reference_structure(kept, "hour", ("segmenter",)))


def test_volume_time_series_matches_pandas(session: Session) -> None:
    _write(session)
    frame = pd.DataFrame(
        {
            "done_at": [f.done_at for f in HISTORY],
            "segmenter_name": [f.segmenter_name for f in HISTORY],
            "segmenter_version": [f.segmenter_version for f in HISTORY],
            "site": [f.site for f in HISTORY],
            "flag": [str(f.score.flag) if f.score else "rejected" for f in HISTORY],
        }
    )
    for bucket in BUCKETS:
        for group_by in GROUPINGS:
            rows = _with_bucket(frame, bucket)
            keys = ["bucket_start", *_keys(group_by)]
            want = rows.groupby(keys, dropna=False)["flag"].value_counts().unstack(fill_value=0).reset_index()
            want = want.reindex(columns=[*keys, "ok", "suspicious", "erroneous", "rejected"], fill_value=0)
            want["scored"] = want[["ok", "suspicious", "erroneous"]].sum(axis=1)
            want["flagged"] = want["suspicious"] + want["erroneous"]
            want["flag_rate"] = want["flagged"] / want["scored"].where(want["scored"] > 0)
            got = volume_time_series(session, bucket=bucket, group_by=group_by)  # type: ignore[arg-type]
            _assert_frames_equal(got, _sorted(want, series_columns("volume", group_by)))


def _reference_histogram(files: Sequence[FinishedFile], group_by: Sequence[str]) -> pd.DataFrame:
    rows = _with_bucket(_score_rows(files), None)
    keys = [*_keys(group_by), "structure"]
    out = []
    for key, group in rows.groupby(keys, dropna=False, sort=False):
        for rank, metric in enumerate(("pdsc", "phd_mm")):
            values = group[metric].to_numpy()
            if metric == "pdsc":
                index = np.where(
                    values * PDSC_BINS >= PDSC_BINS - 1, PDSC_BINS - 1, np.floor(values * PDSC_BINS)
                )
                bounds = [i / PDSC_BINS for i in range(PDSC_BINS)] + [1.0]
            else:
                index = np.where(values / PHD_BIN_MM >= PHD_BINS, PHD_BINS, np.floor(values / PHD_BIN_MM))
                bounds = [i * PHD_BIN_MM for i in range(PHD_BINS + 1)] + [math.inf]
            index = np.where(np.isnan(values), -1, index).astype(int)
            for b in range(-1, len(bounds) - 1):
                mask = index == b
                out.append(
                    {
                        **dict(zip(keys, key, strict=True)),
                        "metric": metric,
                        "_metric": rank,
                        "bin": b,
                        "bin_start": bounds[b] if b >= 0 else math.nan,
                        "bin_end": bounds[b + 1] if b >= 0 else math.nan,
                        "files": int(mask.sum()),
                        "flagged": int(group["flagged"].to_numpy()[mask].sum()),
                    }
                )
    return _sorted(pd.DataFrame(out), series_columns("histogram", group_by))


def test_score_histogram_matches_numpy(session: Session) -> None:
    _write(session)
    for group_by in GROUPINGS:
        got = score_histogram(session, group_by=group_by)  # type: ignore[arg-type]
        _assert_frames_equal(got, _reference_histogram(HISTORY, group_by))
    # each metric's bins, the undefined one included, add up to the files scored per structure
    got = score_histogram(session)
    series = structure_time_series(session, bucket=None)
    for metric in ("pdsc", "phd_mm"):
        sums = (
            got[got["metric"] == metric]
            .groupby(["segmenter_version", "structure"])[["files", "flagged"]]
            .sum()
        )
        for row in series.itertuples():
            assert sums.loc[(row.segmenter_version, row.structure), "files"] == row.scored
            assert sums.loc[(row.segmenter_version, row.structure), "flagged"] == row.flagged


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("pdsc", 0.0, 0),
        ("pdsc", 0.05, 1),
        ("pdsc", 0.15, 3),
        ("pdsc", 0.9499, 18),
        ("pdsc", 0.95, 19),
        ("pdsc", 1.0, 19),
        ("phd_mm", 0.0, 0),
        ("phd_mm", 1.999, 0),
        ("phd_mm", 2.0, 1),
        ("phd_mm", 59.9, 29),
        ("phd_mm", 60.0, 30),
        ("phd_mm", 250.0, 30),
        ("pdsc", math.nan, -1),
        ("phd_mm", math.nan, -1),
    ],
)
def test_score_histogram_bin_edges(session: Session, metric: str, value: float, expected: int) -> None:
    (one,) = [f for f in HISTORY[1:3] if f.score is not None][:1]
    assert one.score is not None
    structures = tuple(
        StructureScore(
            structure=s.structure,
            pdsc=value if metric == "pdsc" else 0.5,
            phd_mm=value if metric == "phd_mm" else 5.0,
            flag=FlagLevel.OK,
            reasons=(),
            mask_voxels=1,
            pgt_voxels=1,
            mask_volume_ml=1.0,
        )
        for s in one.score.structures[:1]
    )
    score = VolumeScore(
        structures=structures, flag=FlagLevel.OK, shape=(1, 1, 1), spacing_mm=(1.0, 1.0, 1.0), slices_scored=1
    )
    _write(session, [FinishedFile(**{**_fields(one), "score": score, "reviews": ()})])
    got = score_histogram(session)
    row = got[(got["metric"] == metric) & (got["files"] == 1)]
    assert list(row["bin"]) == [expected]
    if expected == 30:
        assert row["bin_end"].iloc[0] == math.inf


def _fields(f: FinishedFile) -> dict:
    return {name: getattr(f, name) for name in FinishedFile.__dataclass_fields__}


def test_empty_range_gives_empty_frames_with_columns(session: Session) -> None:
    _write(session)
    later = datetime(2030, 1, 1, tzinfo=UTC)
    for group_by in GROUPINGS:
        for frame, kind in (
            (volume_time_series(session, FileFilter(start=later), group_by=group_by), "volume"),
            (structure_time_series(session, FileFilter(start=later), group_by=group_by), "structure"),
            (score_histogram(session, FileFilter(start=later), group_by=group_by), "histogram"),
        ):
            assert frame.empty
            assert list(frame.columns) == series_columns(kind, group_by)  # type: ignore[arg-type]
    assert list(reviewed_alert_scores(session, FileFilter(start=later)).columns) == REVIEWED_COLUMNS


def test_bad_arguments(session: Session) -> None:
    with pytest.raises(ValueError, match="bucket must be"):
        structure_time_series(session, bucket="week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="group_by keys"):
        volume_time_series(session, group_by=("scanner",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence of group keys"):
        structure_time_series(session, group_by="site")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="phd_bin_mm > 0"):
        score_histogram(session, phd_bin_mm=0)
    with pytest.raises(ValueError, match="timezone-aware"):
        score_histogram(session, FileFilter(start=datetime(2026, 3, 2)))


def test_reviewed_alert_scores_latest_verdict(session: Session) -> None:
    ids = _write(session)
    got = reviewed_alert_scores(session)
    assert list(got.columns) == REVIEWED_COLUMNS
    reviewed = {file_id: f for file_id, f in zip(ids, HISTORY, strict=True) if f.reviews}
    assert sorted(set(got["file_id"])) == sorted(reviewed)
    for file_id, rows in got.groupby("file_id"):
        f = reviewed[int(file_id)]
        assert f.score is not None
        assert set(rows["verdict"]) == {str(f.reviews[-1].verdict)}  # the latest
        assert list(rows["structure"]) == [str(s.structure) for s in f.score.structures]
        assert [tuple(r) for r in rows["reasons"]] == [s.reasons for s in f.score.structures]
        assert rows["scored_at"].iloc[0] == f.done_at
    # the same files and verdicts as the alert list
    alerts = list_alerts(session, FileFilter(reviewed=True), limit=1000)
    assert {a.file_id: str(a.review_verdict) for a in alerts} == dict(
        zip(got["file_id"], got["verdict"], strict=True)
    )


def test_bulk_insert_scored_round_trip(session: Session) -> None:
    ids = _write(session)
    assert len(ids) == len(set(ids)) == len(HISTORY)
    for file_id, f in list(zip(ids, HISTORY, strict=True))[:30]:
        case = get_case(session, file_id)
        assert case is not None
        assert (case.path, case.content_hash, case.case_key, case.site) == (
            f.path,
            f.content_hash,
            f.case_key,
            f.site,
        )
        assert (case.segmenter_name, case.segmenter_version) == (f.segmenter_name, f.segmenter_version)
        assert case.received_at == f.received_at
        if f.score is None:
            assert (case.status, case.rejected_at, case.rejection_reason) == (
                "rejected",
                f.done_at,
                "corrupt",
            )
            continue
        assert (case.status, case.scored_at, case.flag, case.attempts) == (
            "scored",
            f.done_at,
            f.score.flag,
            1,
        )
        assert case.shape == f.score.shape and case.spacing_mm == f.score.spacing_mm
        assert [s.structure for s in case.structures] == [s.structure for s in f.score.structures]
        for stored, given in zip(case.structures, f.score.structures, strict=True):
            assert stored.pdsc == pytest.approx(given.pdsc, nan_ok=True)
            assert stored.phd_mm == pytest.approx(given.phd_mm, nan_ok=True)
            assert (stored.flag, stored.reasons) == (given.flag, given.reasons)
        assert [(r.verdict, r.reviewed_at) for r in case.reviews] == [
            (r.verdict, r.reviewed_at) for r in f.reviews
        ]
    counts = status_counts(session)
    assert counts.by_status["rejected"] == sum(f.score is None for f in HISTORY)
    assert counts.by_status["scored"] == sum(f.score is not None for f in HISTORY)
    assert len(export_frame(session)) == sum(len(f.score.structures) if f.score else 1 for f in HISTORY)


def test_bulk_insert_scored_analyzes_on_postgresql(empty_url: str, backend: str) -> None:
    """A bulk load leaves planner statistics behind on PostgreSQL (reltuples counted by ANALYZE)."""
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with make_session_factory(engine)() as session:
            _write(session, HISTORY[:100])
            if backend == "postgresql":
                reltuples = session.execute(
                    sa.text("SELECT reltuples FROM pg_class WHERE oid = 'mask_files'::regclass")
                ).scalar()
                assert reltuples == 100
            else:  # SQLite keeps planning by its heuristics: no sqlite_stat1 table
                assert not session.execute(
                    sa.text("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'")
                ).first()
    finally:
        engine.dispose()


def test_bulk_insert_scored_refuses_a_known_file_and_writes_nothing(session: Session) -> None:
    _write(session, HISTORY[:10])
    before = status_counts(session).total
    model_id = register_model(session, "ab" * 32, {"test": True})
    with pytest.raises(ValueError, match="already stored or repeats"):
        bulk_insert_scored(session, [*HISTORY[10:20], HISTORY[3]], model_id=model_id)
    assert status_counts(session).total == before
    with pytest.raises(ValueError, match="already stored or repeats"):
        bulk_insert_scored(session, [HISTORY[30], HISTORY[30]], model_id=model_id)
    assert status_counts(session).total == before


def test_bulk_insert_scored_checks_its_input(session: Session) -> None:
    model_id = register_model(session, "ab" * 32, {"test": True})
    scored = next(f for f in HISTORY if f.score is not None)
    fields = _fields(scored)
    bad = {
        "both score and rejection": {**fields, "rejection": ("corrupt", "x")},
        "neither": {**fields, "score": None, "reviews": ()},
        "naive time": {**fields, "done_at": datetime(2026, 3, 2, 9)},
        "empty path": {**fields, "path": " "},
        "review of a rejected file": {
            **fields,
            "score": None,
            "rejection": ("corrupt", "x"),
            "reviews": (NewReview(verdict=ReviewVerdict.CONFIRMED, reviewer="a", reviewed_at=D0),),
        },
    }
    for why, values in bad.items():
        with pytest.raises(ValueError):
            bulk_insert_scored(session, [FinishedFile(**values)], model_id=model_id)
        assert status_counts(session).total == 0, why
    with pytest.raises(ValueError, match="chunk_size"):
        bulk_insert_scored(session, [scored], model_id=model_id, chunk_size=0)


def test_range_queries_use_the_status_scored_at_index(
    session: Session, engine: sa.Engine, backend: str
) -> None:
    """EXPLAIN: the dashboard's range filter is served by ix_mask_files_status_scored_at (index only on
    SQLite), and status counts by ix_mask_files_segmenter_id_status_flag."""
    _write(session)
    session.close()
    where = "status = 'scored' AND scored_at >= '2026-03-02 06:00' AND scored_at < '2026-03-02 07:00'"
    ranged = f"SELECT segmenter_id, flag, count(*) FROM mask_files WHERE {where} GROUP BY segmenter_id, flag"
    counts = "SELECT segmenter_id, status, flag, count(*) FROM mask_files GROUP BY segmenter_id, status, flag"
    with engine.connect() as connection:
        if backend == "sqlite":
            plans = [
                " ".join(str(r[-1]) for r in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
                for sql in (ranged, counts)
            ]
            assert "COVERING INDEX ix_mask_files_status_scored_at" in plans[0], plans[0]
            assert "COVERING INDEX ix_mask_files_segmenter_id_status_flag" in plans[1], plans[1]
            return
        # a few hundred rows are cheaper to scan sequentially: ask which index serves when one must
        connection.exec_driver_sql("ANALYZE mask_files")
        connection.exec_driver_sql("SET enable_seqscan = off")
        plan = " ".join(str(r[0]) for r in connection.exec_driver_sql(f"EXPLAIN {ranged}"))
    assert "ix_mask_files_status_scored_at" in plan, plan


@pytest.mark.parametrize(
    "counts",
    [[1], [2], [5, 0, 3], [0, 0], [1000, 1, 7]],
    ids=["one", "two", "with-empty", "all-empty", "mixed"],
)
def test_segment_quantiles_is_numpy_linear(counts: list[int]) -> None:
    rng = np.random.default_rng(sum(counts))
    values = rng.normal(size=sum(counts))
    got = segment_quantiles(values, np.array(counts), [0.0, 0.25, 0.5, 0.75, 1.0])
    start = 0
    for i, n in enumerate(counts):
        part = values[start : start + n]
        start += n
        if n == 0:
            assert np.isnan(got[i]).all()
        else:
            np.testing.assert_allclose(
                got[i], np.percentile(part, [0, 25, 50, 75, 100]), rtol=1e-15, atol=1e-15
            )


# --- SQLite and PostgreSQL side by side -----------------------------------------------------------


@pytest.fixture
def both(postgres: object, sqlite_template: Path, tmp_path: Path) -> Iterator[tuple[Session, Session]]:
    """Sessions on a SQLite copy and on the PostgreSQL test database, both holding ``HISTORY``."""
    path = tmp_path / "side.db"
    shutil.copyfile(sqlite_template, path)
    engines = [make_engine(f"sqlite:///{path}"), make_engine(postgres.migrated_url())]  # type: ignore[attr-defined]
    try:
        with make_session_factory(engines[0])() as lite, make_session_factory(engines[1])() as pg:
            _write(lite)
            _write(pg)
            yield lite, pg
    finally:
        for engine in engines:
            engine.dispose()


@pytest.mark.postgres
def test_sqlite_and_postgresql_give_the_same_numbers(both: tuple[Session, Session]) -> None:
    lite, pg = both
    for group_by in GROUPINGS:
        for bucket in BUCKETS:
            _assert_frames_equal(
                structure_time_series(lite, bucket=bucket, group_by=group_by),  # type: ignore[arg-type]
                structure_time_series(pg, bucket=bucket, group_by=group_by),  # type: ignore[arg-type]
            )
            _assert_frames_equal(
                volume_time_series(lite, bucket=bucket, group_by=group_by),  # type: ignore[arg-type]
                volume_time_series(pg, bucket=bucket, group_by=group_by),  # type: ignore[arg-type]
            )
        pd.testing.assert_frame_equal(
            score_histogram(lite, group_by=group_by),  # type: ignore[arg-type]
            score_histogram(pg, group_by=group_by),  # type: ignore[arg-type]
            check_dtype=False,
        )
    a, b = reviewed_alert_scores(lite), reviewed_alert_scores(pg)
    assert a.drop(columns=["file_id"]).astype(str).equals(b.drop(columns=["file_id"]).astype(str))


@pytest.mark.postgres
def test_postgresql_session_time_zone_does_not_move_buckets(postgres: object) -> None:
    url = sa.make_url(postgres.migrated_url())  # type: ignore[attr-defined]
    engines = [make_engine(url), make_engine(url.update_query_dict({"options": "-ctimezone=Asia/Tokyo"}))]
    try:
        with make_session_factory(engines[0])() as utc:
            _write(utc)
            want_s = structure_time_series(utc, bucket="day")
            want_v = volume_time_series(utc, bucket="day")
        with make_session_factory(engines[1])() as tokyo:
            assert tokyo.execute(sa.text("SHOW timezone")).scalar() == "Asia/Tokyo"
            _assert_frames_equal(structure_time_series(tokyo, bucket="day"), want_s)
            _assert_frames_equal(volume_time_series(tokyo, bucket="day"), want_v)
    finally:
        for engine in engines:
            engine.dispose()
