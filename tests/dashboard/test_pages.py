"""Every dashboard page through ``streamlit.testing.v1.AppTest`` on a seeded database (SQLite and
PostgreSQL): no exception, the expected numbers shown, and a review submitted through the form stored."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashboard.summaries import flag_type_precision, md_escape
from monitor.store import (
    FileFilter,
    count_alerts,
    get_case,
    open_session,
    score_histogram,
    structure_time_series,
)
from tests.dashboard.conftest import Seeded


def _texts(elements: object) -> list[str]:
    return [str(e.value) for e in elements]  # type: ignore[attr-defined]


def _metrics(at: object) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}  # type: ignore[attr-defined]


def _case_page(at: Any, file_id: int | str) -> Any:
    """``at`` (an ``AppTest``) run, then switched to the case page of ``file_id`` (the URL's value)."""
    at.run()
    at.query_params["file_id"] = str(file_id)
    return at.switch_page("views/case.py").run()


def _ok(at: object) -> None:
    assert not at.exception, [e.value for e in at.exception]  # type: ignore[attr-defined]
    assert not at.error, _texts(at.error)  # type: ignore[attr-defined]


def test_overview_shows_counts_and_charts(seeded: Seeded, app_test) -> None:
    at = app_test(seeded).run()
    _ok(at)
    s = seeded.summary
    metrics = _metrics(at)
    assert metrics["Masks scored"] == f"{s.scored:,}"
    assert metrics["Flagged"] == f"{s.flagged:,}"
    assert metrics["Flag rate"] == f"{s.flagged / s.scored:.1%}"
    assert metrics["Erroneous"] == f"{s.by_flag['erroneous']:,}"
    assert metrics["Rejected"] == f"{s.rejected:,}"
    assert len(at.get("vega_lite_chart")) == 4  # scored; flag rate, pDSC, pHD (a panel per structure)
    assert f"New in this range: {md_escape('cardioseg 1.1')} from" in " ".join(_texts(at.caption))
    summary_table = at.dataframe[0].value.set_index("version")
    for version, counts in s.by_version.items():
        assert summary_table.loc[f"cardioseg {version}", "scored"] == counts["scored"]
        assert summary_table.loc[f"cardioseg {version}", "rejected"] == counts["rejected"]


def test_overview_split_by_site(seeded: Seeded, app_test) -> None:
    at = app_test(seeded).run()
    at.radio(key="overview_split").set_value("Site").run()
    _ok(at)
    s = seeded.summary
    assert _metrics(at)["Masks scored"] == f"{s.scored:,}"
    assert len(at.get("vega_lite_chart")) == 4
    assert "Masks scored per day, by site" in _texts(at.subheader)
    per_site = at.dataframe[1].value
    assert per_site["scored"].sum() == s.scored
    assert per_site["rejected"].sum() == s.rejected
    with open_session(seeded.url) as session:
        by_site = structure_time_series(session, bucket=None, group_by=("site",))
    assert set(per_site["site"]) == {x if isinstance(x, str) else "(no site)" for x in by_site["site"]}
    spec = at.get("vega_lite_chart")[1].proto.spec
    assert '"facet"' in spec and '"site"' in spec  # flag rate: one panel per structure, a line per site


def test_overview_segmenter_filter(seeded_sqlite: Seeded, app_test) -> None:
    at = app_test(seeded_sqlite).run()
    at.selectbox(key="filter_segmenter").select("cardioseg 1.1").run()
    _ok(at)
    counts = seeded_sqlite.summary.by_version["1.1"]
    assert _metrics(at)["Masks scored"] == f"{counts['scored']:,}"
    assert _metrics(at)["Flagged"] == f"{counts['flagged']:,}"


def test_alerts_lists_flagged_files_most_urgent_first(seeded: Seeded, app_test) -> None:
    at = app_test(seeded).run()
    at.switch_page("views/alerts.py").run()
    _ok(at)
    with open_session(seeded.url) as session:
        total = count_alerts(session)
        reviewed = count_alerts(session, FileFilter(reviewed=True))
        erroneous = count_alerts(session, FileFilter(levels=["erroneous"]))
    assert total == seeded.summary.flagged
    assert f"**{total:,} alerts**" in _texts(at.markdown)[0]
    table = at.dataframe[0].value
    assert len(table) == min(total, 50)
    # unreviewed before reviewed; within the unreviewed, erroneous before suspicious
    reviewed_flags = (table["review"] != "unreviewed").tolist()
    assert reviewed_flags == sorted(reviewed_flags)
    unreviewed = table[table["review"] == "unreviewed"]["flag"].tolist()
    assert unreviewed == sorted(unreviewed)  # "erroneous" < "suspicious"

    at.multiselect(key="alerts_levels").set_value(["erroneous"]).run()
    assert f"**{erroneous:,} alerts**" in _texts(at.markdown)[0]
    at.multiselect(key="alerts_levels").set_value(["erroneous", "suspicious"])
    at.selectbox(key="alerts_reviewed").select("Reviewed").run()
    _ok(at)
    assert f"**{reviewed:,} alerts**" in _texts(at.markdown)[0]
    assert set(at.dataframe[0].value["review"]) <= {"confirmed", "false_alarm", "unsure"}


def test_alerts_row_selection_opens_case_by_id(seeded_sqlite: Seeded, app_test) -> None:
    at = app_test(seeded_sqlite).run()
    at.switch_page("views/alerts.py").run()
    first = int(at.dataframe[0].value.iloc[0]["file_id"])
    at.session_state["alerts_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.run()
    _ok(at)
    assert _texts(at.title) == ["Case"]
    assert at.query_params == {"file_id": str(first)}  # the id, not the case key, goes into the URL
    assert _metrics(at)["Flag"] in ("suspicious", "erroneous")


def test_case_shows_slices_scores_and_reviews(seeded: Seeded, app_test) -> None:
    file_id = seeded.summary.artifact_file_ids[0]
    with open_session(seeded.url) as session:
        record = get_case(session, file_id)
    assert record is not None
    at = _case_page(app_test(seeded), file_id)
    _ok(at)
    assert _metrics(at)["Flag"] == str(record.flag)
    assert _metrics(at)["Segmenter"] == f"{record.segmenter_name} {record.segmenter_version}"
    images = at.get("image")
    assert len(images) == 3  # mask, pGT, inconsistency map side by side
    assert "over the MR image" in " ".join(_texts(at.caption))
    scores = at.dataframe[0].value.set_index("structure")
    for s in record.structures:
        assert scores.loc[str(s.structure), "flag"] == str(s.flag)
        assert scores.loc[str(s.structure), "pdsc"] == pytest.approx(s.pdsc, nan_ok=True)
    # the slider moves through the slices
    slider = at.slider(key=f"case_slice_{file_id}")
    slider.set_value(1).run()
    _ok(at)
    assert "slice 1 of" in at.get("image")[0].proto.imgs[0].caption


def test_case_without_artifacts_explains_why(seeded_sqlite: Seeded, app_test) -> None:
    plain = next(
        i for i in seeded_sqlite.summary.file_ids if i not in seeded_sqlite.summary.artifact_file_ids
    )
    at = _case_page(app_test(seeded_sqlite), plain)
    assert not at.exception
    assert any("Images not shown" in t for t in _texts(at.info))


def test_case_refuses_files_outside_configured_folders(
    seeded_sqlite: Seeded, app_test, tmp_path: Path
) -> None:
    file_id = seeded_sqlite.summary.artifact_file_ids[0]
    at = _case_page(app_test(seeded_sqlite.url, artifacts_dir=str(tmp_path / "elsewhere")), file_id)
    assert not at.exception
    assert len(at.get("image")) == 0
    assert any("outside the configured folders" in t for t in _texts(at.info))


def test_unknown_case_id(seeded_sqlite: Seeded, app_test) -> None:
    at = _case_page(app_test(seeded_sqlite), "999999")
    assert not at.exception
    assert _texts(at.warning) == ["No file with id 999999."]


def test_review_form_stores_review(writable: Seeded, app_test) -> None:
    file_id = writable.summary.artifact_file_ids[-1]
    with open_session(writable.url) as session:
        before = get_case(session, file_id)
    assert before is not None
    at = _case_page(app_test(writable), file_id)
    _ok(at)
    at.radio(key=f"verdict_{file_id}").set_value("false_alarm")
    at.text_input(key=f"reviewer_{file_id}").input("dr.tester")
    at.text_area(key=f"note_{file_id}").input("contours look fine")
    next(b for b in at.button if b.label == "Save review").click().run()
    _ok(at)
    assert _texts(at.success) == ["Review saved: false alarm by dr.tester."]
    with open_session(writable.url) as session:
        after = get_case(session, file_id)
    assert after is not None
    assert len(after.reviews) == len(before.reviews) + 1
    latest = after.reviews[-1]
    assert (latest.verdict, latest.reviewer, latest.note) == (
        "false_alarm",
        "dr.tester",
        "contours look fine",
    )
    shown = at.dataframe[-2].value  # earlier reviews, newest first (the last table is the file details)
    assert shown.iloc[0]["reviewer"] == "dr.tester"
    assert shown.iloc[0]["verdict"] == "false_alarm"


def test_review_needs_a_verdict_and_a_name(writable: Seeded, app_test) -> None:
    file_id = writable.summary.artifact_file_ids[0]
    with open_session(writable.url) as session:
        before = get_case(session, file_id)
    assert before is not None
    at = _case_page(app_test(writable), file_id)
    assert at.radio(key=f"verdict_{file_id}").value is None  # nothing preselected
    next(b for b in at.button if b.label == "Save review").click().run()
    assert _texts(at.error) == ["Choose a verdict and enter your name to save the review."]
    at.radio(key=f"verdict_{file_id}").set_value("confirmed")
    next(b for b in at.button if b.label == "Save review").click().run()
    assert _texts(at.error) == ["Enter your name to save the review."]
    with open_session(writable.url) as session:
        after = get_case(session, file_id)
    assert after is not None and len(after.reviews) == len(before.reviews)


def test_a_rejected_file_says_when_it_was_rejected(seeded_sqlite: Seeded, app_test) -> None:
    with open_session(seeded_sqlite.url) as session:
        records = [get_case(session, i) for i in seeded_sqlite.summary.file_ids[:400]]
    rejected = next(r for r in records if r is not None and r.status == "rejected")
    at = _case_page(app_test(seeded_sqlite), rejected.file_id)
    assert not at.exception
    captions = _texts(at.caption)
    when = rejected.rejected_at.strftime("%Y-%m-%d %H:%M")
    assert f"File {rejected.file_id}, rejected {when} UTC." in captions
    assert not any(", scored" in c for c in captions)  # was "scored – UTC"
    assert any(t.startswith("This file is rejected") for t in _texts(at.info))  # with its reason


def test_versions_side_by_side_and_precision(seeded: Seeded, app_test) -> None:
    at = app_test(seeded).run()
    at.switch_page("views/versions.py").run()
    _ok(at)
    s = seeded.summary
    metrics = [(m.label, m.value) for m in at.metric]
    old, new = s.by_version["1.0"], s.by_version["1.1"]
    assert metrics[:3] == [
        ("Scored", f"{old['scored']:,}"),
        ("Flag rate", f"{old['flagged'] / old['scored']:.1%}"),
        ("Erroneous", metrics[2][1]),
    ]
    assert metrics[3:5] == [
        ("Scored", f"{new['scored']:,}"),
        ("Flag rate", f"{new['flagged'] / new['scored']:.1%}"),
    ]
    assert new["flagged"] / new["scored"] > old["flagged"] / old["scored"]  # the new version is worse
    assert len(at.get("vega_lite_chart")) == 4  # flag rates, two histograms, running precision
    # flag rates per structure and the histograms: exact counts over every file of the range
    with open_session(seeded.url) as session:
        exact = structure_time_series(session, bucket=None)
        histogram = score_histogram(session)
    rates = at.dataframe[-2].value.set_index(["version", "structure"])
    for row in exact.itertuples():
        shown = rates.loc[(f"{row.segmenter_name} {row.segmenter_version}", row.structure)]
        assert (shown["scored"], shown["flagged"]) == (row.scored, row.flagged)
    table = at.dataframe[-1].value
    assert table["files"].sum() == histogram["files"].sum()
    assert '"bin_start"' in at.get("vega_lite_chart")[1].proto.spec
    precision = at.dataframe[0].value
    assert not precision.empty
    assert (precision[["confirmed", "false_alarm", "unsure"]].sum(axis=1) == precision["reviewed"]).all()
    assert precision["precision"].tolist() == pytest.approx(
        (precision["confirmed"] / precision["reviewed"]).tolist()
    )
    with open_session(seeded.url) as session:
        reviewed_files = count_alerts(session, FileFilter(reviewed=True))
    assert precision["reviewed"].sum() >= reviewed_files  # a file counts once per flag type it has
    assert list(precision.columns) == list(flag_type_precision(precision.iloc[0:0]).columns)


def test_schema_not_at_head_is_refused(app_test, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    at = app_test(f"sqlite:///{empty}").run()
    assert not at.exception
    (message,) = _texts(at.error)
    assert "cannot use this database" in message
    assert "cmr-monitor db upgrade" in message
    assert not at.metric  # no page ran


def test_login_required_when_password_set(seeded_sqlite: Seeded, app_test) -> None:
    at = app_test(seeded_sqlite, dashboard_password="s3cret-pw").run()
    assert not at.exception
    assert not at.metric and not at.dataframe  # nothing from the database before login
    assert [t.label for t in at.text_input] == ["Password"]
    at.text_input(key="login_password").input("wrong")
    at.button[0].click().run()
    assert _texts(at.error) == ["Wrong password."]
    assert not at.metric
    at.text_input(key="login_password").input("s3cret-pw")
    at.button[0].click().run()
    _ok(at)
    assert _metrics(at)["Masks scored"] == f"{seeded_sqlite.summary.scored:,}"


def test_login_password_from_streamlit_secrets(seeded_sqlite: Seeded, app_test) -> None:
    at = app_test(seeded_sqlite)
    at.secrets["dashboard_password"] = "from-secrets"
    at.run()
    assert [t.label for t in at.text_input] == ["Password"]
    at.text_input(key="login_password").input("from-secrets")
    at.button[0].click().run()
    _ok(at)
    assert re.fullmatch(r"[\d,]+", _metrics(at)["Masks scored"])


def test_sidebar_auto_refresh_refresh_now_and_logout(seeded_sqlite: Seeded, app_test) -> None:
    at = app_test(seeded_sqlite, dashboard_password="pw").run()
    at.text_input(key="login_password").input("pw")
    at.button[0].click().run()
    at.toggle(key="auto_refresh").set_value(True).run()
    _ok(at)
    assert at.select_slider(key="auto_refresh_s").value == 30
    next(b for b in at.sidebar.button if b.label == "Refresh now").click().run()
    _ok(at)
    assert _metrics(at)["Masks scored"] == f"{seeded_sqlite.summary.scored:,}"
    next(b for b in at.sidebar.button if b.label == "Log out").click().run()
    assert not at.metric
    assert [t.label for t in at.text_input] == ["Password"]


@pytest.mark.parametrize("raw", ["abc", "-3", "0", "9" * 40], ids=["text", "negative", "zero", "huge"])
def test_case_ignores_bad_file_ids(seeded_sqlite: Seeded, app_test, raw: str) -> None:
    at = _case_page(app_test(seeded_sqlite), raw)
    assert not at.exception
    assert any("enter its file id" in t for t in _texts(at.info))


def test_case_of_a_rejected_file(seeded_sqlite: Seeded, app_test) -> None:
    with open_session(seeded_sqlite.url) as session:
        rejected = next(
            i
            for i in seeded_sqlite.summary.file_ids
            if (c := get_case(session, i)) and c.status == "rejected"
        )
    at = _case_page(app_test(seeded_sqlite), rejected)
    assert not at.exception
    assert any(t.startswith("This file is rejected") for t in _texts(at.info))
    assert "Only scored files can be reviewed." in _texts(at.caption)


def test_estimated_vs_realized_per_version(writable: Seeded, app_test) -> None:
    import sqlalchemy as sa

    from monitor.qc.labels import Structure
    from monitor.store import record_realized

    with open_session(writable.url) as session:
        ids = session.execute(
            sa.text("SELECT id FROM mask_files WHERE status = 'scored' ORDER BY id LIMIT 6")
        ).all()
        for i, (file_id,) in enumerate(ids):
            session.execute(
                sa.text(
                    "UPDATE structure_scores SET edsc = :e, edsc_lo = :e - 0.1, edsc_hi = :e + 0.1, "
                    "ehd_mm = :h, ehd_mm_lo = :h - 3, ehd_mm_hi = :h + 3 WHERE file_id = :f AND structure = 'LV'"
                ),
                {"e": 0.8 + 0.02 * i, "h": 10.0 + i, "f": file_id},
            )
            session.commit()
            record_realized(session, file_id, {Structure.LV: (0.81 + 0.02 * i, 11.0 + i)}, source="demo")
    at = app_test(writable).run()
    at.switch_page("views/realized.py").run()
    _ok(at)
    summary = at.dataframe[0].value
    lv = summary[(summary["structure"] == "LV") & (summary["metric"] == "Dice")]
    assert int(lv["n"].sum()) == len(ids) == 6
    assert (lv["coverage"] == 1.0).all() and (lv["mae_estimate"].round(6) == 0.01).all()
    assert len(at.get("vega_lite_chart")) == 2
