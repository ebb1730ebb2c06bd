"""Tests of monitor/store/queries.py and export.py on SQLite and PostgreSQL, against a known dataset."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session

from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.levels import FlagLevel
from monitor.store import (
    EXPORT_COLUMNS,
    FileFilter,
    ReviewVerdict,
    count_alerts,
    export_frame,
    list_alerts,
    status_counts,
    structure_time_series,
    volume_time_series,
    write_export,
)

if TYPE_CHECKING:
    from tests.store.conftest import Populated

D1 = datetime(2026, 3, 2, tzinfo=UTC)
D2 = datetime(2026, 3, 3, tzinfo=UTC)


def test_volume_time_series_by_day(session: Session, populated: Populated) -> None:
    frame = volume_time_series(session, bucket="day")
    got = frame.assign(bucket_start=frame["bucket_start"].dt.strftime("%m-%d")).to_dict("records")
    assert got == [
        # day, segmenter, version, scored, ok, suspicious, erroneous, flagged, flag_rate, rejected
        dict(zip(frame.columns, row, strict=True))
        for row in [
            ("03-02", "unet", "1.0", 3, 1, 1, 1, 2, 2 / 3, 1),
            ("03-03", "nnunet", "1", 1, 0, 0, 1, 1, 1.0, 0),
            ("03-03", "unet", "1.0", 1, 1, 0, 0, 0, 0.0, 0),
            ("03-03", "unet", "2.0", 1, 0, 1, 0, 1, 1.0, 0),
        ]
    ]
    assert str(frame["bucket_start"].dt.tz) == "UTC"


def test_volume_time_series_by_hour_with_filters(session: Session, populated: Populated) -> None:
    frame = volume_time_series(
        session, FileFilter(start=D1, end=D2, segmenter_name="unet", segmenter_version="1.0"), bucket="hour"
    )
    assert list(frame["bucket_start"]) == [
        pd.Timestamp("2026-03-02 08:00", tz="UTC"),
        pd.Timestamp("2026-03-02 09:00", tz="UTC"),
    ]
    assert list(frame["scored"]) == [2, 1]
    assert list(frame["suspicious"]) == [1, 0]
    assert list(frame["erroneous"]) == [0, 1]
    assert list(frame["rejected"]) == [0, 1]
    # half-open range: a file scored exactly at `end` is left out
    at_end = volume_time_series(session, FileFilter(end=D2 + timedelta(hours=10)))
    assert at_end["scored"].sum() == 3


def test_time_series_of_an_empty_range(session: Session, populated: Populated) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert volume_time_series(session, FileFilter(start=start)).empty
    assert structure_time_series(session, FileFilter(start=start)).empty


def test_structure_time_series_quantiles(session: Session, populated: Populated) -> None:
    frame = structure_time_series(session, bucket="day")
    assert len(frame) == 4 * 3
    d1 = frame[frame["bucket_start"] == pd.Timestamp(D1)]
    assert list(d1["structure"]) == ["LV", "RV", "MYO"]
    lv = d1.iloc[0]
    # LV on day 1 (unet 1.0): pdsc 0.90, 0.88, 0.0; phd 4.0, 5.0, nan (LV missing in f3)
    assert (lv["scored"], lv["flagged"], lv["pdsc_n"], lv["phd_mm_n"]) == (3, 1, 3, 2)
    assert lv["pdsc_median"] == pytest.approx(0.88)
    assert lv["pdsc_p25"] == pytest.approx(0.44)
    assert lv["phd_mm_median"] == pytest.approx(4.5)
    assert lv["flag_rate"] == pytest.approx(1 / 3)

    # every group against numpy's linear percentiles of the defined values
    for row in frame.itertuples():
        values = [
            v[Structure(row.structure)]
            for _, name, version, scored_at, v in populated.scored
            if (name, version) == (row.segmenter_name, row.segmenter_version)
            and pd.Timestamp(scored_at).floor("D") == row.bucket_start
        ]
        for metric, index in (("pdsc", 0), ("phd_mm", 1)):
            defined = [v[index] for v in values if not math.isnan(v[index])]
            assert getattr(row, f"{metric}_n") == len(defined)
            for name, q in (("p25", 25), ("median", 50), ("p75", 75)):
                got = getattr(row, f"{metric}_{name}")
                if defined:
                    assert got == pytest.approx(np.percentile(defined, q))
                else:
                    assert math.isnan(got)
        assert row.flagged == sum(v[2] != FlagLevel.OK for v in values)


def test_list_alerts_order_and_fields(session: Session, populated: Populated) -> None:
    ids = populated.ids
    alerts = list_alerts(session)
    # unreviewed first, then erroneous before suspicious, then most recent first
    assert [a.file_id for a in alerts] == [ids["f6"], ids["f3"], ids["f5"], ids["f2"]]
    assert count_alerts(session) == 4
    f3 = alerts[1]
    assert (f3.flag, f3.flagged_structures) == (FlagLevel.ERRONEOUS, (Structure.LV,))
    assert [(s.structure, s.reasons) for s in f3.structures] == [
        (Structure.LV, ("missing",)),
        (Structure.RV, ()),
        (Structure.MYO, ()),
    ]
    assert (f3.review_verdict, f3.reviews) == (None, 0)
    assert (f3.case_key, f3.phase, f3.site, f3.segmenter_name) == ("f3", "ED", "site-A", "unet")
    assert f3.scored_at == D1 + timedelta(hours=9, minutes=15)
    f2 = alerts[3]
    assert (f2.review_verdict, f2.reviews) == (ReviewVerdict.CONFIRMED, 2)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"levels": ["erroneous"]}, ["f6", "f3"]),
        ({"levels": ["ok"]}, ["f4", "f1"]),
        ({"structure": "RV"}, ["f6", "f2"]),
        ({"structure": Structure.RV, "levels": [FlagLevel.SUSPICIOUS]}, ["f2"]),
        ({"structure": "MYO"}, ["f5"]),
        ({"segmenter_name": "unet"}, ["f3", "f5", "f2"]),
        ({"segmenter_name": "unet", "segmenter_version": "2.0"}, ["f5"]),
        ({"start": D2}, ["f6", "f5"]),
        ({"end": D2}, ["f3", "f2"]),
        ({"reviewed": True}, ["f2"]),
        ({"reviewed": False}, ["f6", "f3", "f5"]),
        ({"limit": 2}, ["f6", "f3"]),
        ({"limit": 2, "offset": 2}, ["f5", "f2"]),
        ({"offset": 10}, []),
    ],
    ids=lambda value: "-".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else None,
)
def test_list_alerts_filters(
    session: Session, populated: Populated, filters: dict, expected: list[str]
) -> None:
    paging = {k: v for k, v in filters.items() if k in ("limit", "offset")}
    files = FileFilter(**{k: v for k, v in filters.items() if k not in paging})
    got = [a.file_id for a in list_alerts(session, files, **paging)]
    assert got == [populated.ids[key] for key in expected]
    if not paging:
        assert count_alerts(session, files) == len(expected)


def test_list_alerts_refuses_bad_paging(session: Session) -> None:
    with pytest.raises(ValueError):
        list_alerts(session, limit=0)
    with pytest.raises(ValueError, match="at least one flag level"):
        FileFilter(levels=[])


def test_status_counts(session: Session, populated: Populated) -> None:
    counts = status_counts(session)
    assert counts.total == 9
    assert counts.by_status == {"pending": 1, "scoring": 1, "scored": 6, "rejected": 1}
    assert counts.by_flag == {"ok": 2, "suspicious": 2, "erroneous": 2}
    assert counts.last_scored_at == D2 + timedelta(hours=11)
    per = {(s.segmenter_name, s.segmenter_version): s for s in counts.segmenters}
    assert list(per) == [("nnunet", "1"), ("unet", "1.0"), ("unet", "2.0")]
    assert per[("unet", "1.0")].by_status == {"pending": 0, "scoring": 0, "scored": 4, "rejected": 1}
    assert per[("unet", "1.0")].by_flag == {"ok": 2, "suspicious": 1, "erroneous": 1}
    assert per[("unet", "1.0")].last_scored_at == D2 + timedelta(hours=10)
    assert per[("unet", "2.0")].by_status == {"pending": 0, "scoring": 1, "scored": 1, "rejected": 0}
    assert per[("nnunet", "1")].by_status == {"pending": 1, "scoring": 0, "scored": 1, "rejected": 0}
    assert per[("nnunet", "1")].by_flag == {"ok": 0, "suspicious": 0, "erroneous": 1}
    as_dict = counts.to_dict()
    assert as_dict["last_scored_at"] == "2026-03-03T11:00:00+00:00"
    assert as_dict["total"] == 9


def _check_export(frame: pd.DataFrame, populated: Populated) -> None:
    """The export of ``populated``: 6 scored files x 3 structures + 3 unscored files."""
    assert list(frame.columns) == list(EXPORT_COLUMNS)
    assert len(frame) == 6 * 3 + 3
    assert list(frame["file_id"]) == sorted(frame["file_id"])
    scored = frame[frame["status"] == "scored"]
    assert len(scored) == 18
    for key, _, _, _, values in populated.scored:
        rows = scored[scored["file_id"] == populated.ids[key]]
        assert list(rows["structure"]) == [str(s) for s in STRUCTURES]
        for (_, row), structure in zip(rows.iterrows(), STRUCTURES, strict=True):
            pdsc, phd, flag = values[structure]
            assert row["pdsc"] == pytest.approx(pdsc, nan_ok=True)
            assert row["phd_mm"] == pytest.approx(phd, nan_ok=True)
            assert row["structure_flag"] == str(flag)
        assert set(rows["pgt_path"]) == {f"/art/{key}_pgt.nii.gz"}
        assert set(rows["inconsistency_path"]) == {f"/art/{key}_xor.nii.gz"}
    assert scored["pdsc"].sum() == pytest.approx(
        sum(v[0] for *_, values in populated.scored for v in values.values() if not math.isnan(v[0]))
    )
    assert int(scored["mask_voxels"].sum()) == 6 * (1000 + 1001 + 1002)
    assert set(scored["shape_z"]) == {10}
    assert set(scored["spacing_y_mm"]) == {1.5625}
    f2 = frame[frame["file_id"] == populated.ids["f2"]]
    assert set(f2["review_verdict"]) == {"confirmed"}
    assert list(f2["reasons"]) == ["", "phd_high", ""]  # codes, as stored
    rejected = frame[frame["status"] == "rejected"].iloc[0]
    assert (rejected["rejection_reason"], rejected["rejection_detail"]) == ("corrupt", "not a gzip file")
    assert pd.isna(rejected["structure"]) and pd.isna(rejected["pdsc"])
    assert sorted(frame[frame["structure"].isna()]["status"]) == ["pending", "rejected", "scoring"]


def test_export_frame(session: Session, populated: Populated) -> None:
    frame = export_frame(session)
    _check_export(frame, populated)
    assert str(frame["scored_at"].dt.tz) == "UTC"
    assert frame["mask_voxels"].dtype == "Int64"
    assert len(export_frame(session, status="rejected")) == 1


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_export(session: Session, populated: Populated, tmp_path: Path, suffix: str) -> None:
    (tmp_path / "out").mkdir()
    out = tmp_path / "out" / f"results{suffix}"
    assert write_export(session, out, batch_size=4) == 21  # several batches
    frame = (
        pd.read_csv(out, keep_default_na=False, na_values=[""]) if suffix == ".csv" else pd.read_parquet(out)
    )
    if suffix == ".csv":
        frame["reasons"] = frame["reasons"].fillna("").where(frame["structure"].notna())
    _check_export(frame, populated)
    assert list(out.parent.iterdir()) == [out]  # no partial file left behind


def test_write_export_refuses_unknown_format(session: Session, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"\.csv or \.parquet"):
        write_export(session, tmp_path / "results.xlsx")


def test_the_export_columns_are_documented_in_order() -> None:
    """docs/database.md lists ``EXPORT_COLUMNS`` in their order (its "The export's columns" table)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "database.md").read_text()
    section = doc.split("### The export's columns", 1)[1].split("\n## ", 1)[0]
    rows = [line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `")]
    assert re.findall(r"`(\w+)`", " ".join(rows)) == list(EXPORT_COLUMNS)
