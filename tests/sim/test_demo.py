"""Tests of the live demo: its schedule, its work folder, and ``cmr-monitor demo --fast`` end to end
(the session's one run, ``tests/conftest.py``)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from monitor.sim.deliveries import DEMO_VERSIONS, plan_deliveries
from monitor.sim.demo import prepare_workdir
from tests.conftest import DemoRun


def test_plan_switches_version_half_way() -> None:
    plan = plan_deliveries(duration_s=180, rate_per_s=0.5, seed=0)
    assert len(plan) == 90
    assert [d.version for d in plan] == [DEMO_VERSIONS[0]] * 45 + [DEMO_VERSIONS[1]] * 45
    assert all(a.at_s < b.at_s for a, b in itertools.pairwise(plan)) and plan[-1].at_s <= 180
    assert sum(d.quality == "invalid" for d in plan) == 5
    bad_share = {
        v: sum(d.quality in ("poor", "failing") for d in plan if d.version == v) for v in DEMO_VERSIONS
    }
    assert bad_share[DEMO_VERSIONS[1]] > bad_share[DEMO_VERSIONS[0]]
    assert len({d.relative_path for d in plan}) == len(plan)


def test_workdir_of_someone_else_is_refused(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not made by the demo"):
        prepare_workdir(tmp_path)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    demo = tmp_path / "demo"
    prepare_workdir(demo)
    (demo / "incoming").mkdir()
    prepare_workdir(demo)  # an earlier demo's folder is emptied
    assert [p.name for p in demo.iterdir()] == [".cmr-monitor-demo"]


@pytest.mark.slow
def test_demo_fast_runs_on_cpu(demo_run: DemoRun) -> None:
    out = demo_run.ran.stdout
    assert "metrics:   http://127.0.0.1:" in out
    assert "dashboard: http://127.0.0.1:" in out  # the Streamlit app answered beside the daemon
    assert "written 30/30" in out
    table = out[out.index("cardioseg by version") :]
    for version in DEMO_VERSIONS:
        assert f"│ {version} " in table
    assert "rejected files by reason:" in out
    assert (demo_run.workdir / "cmr-monitor.db").is_file()
    # weeks of simulated history were seeded before the live part, so the drift charts have data
    from monitor.store import make_engine, make_session_factory, status_counts

    engine = make_engine(f"sqlite:///{demo_run.workdir / 'cmr-monitor.db'}")
    with make_session_factory(engine)() as session:
        counts = status_counts(session)
    with engine.connect() as connection:  # the live masks came with their MR image, used as evidence
        images = connection.exec_driver_sql(
            "SELECT image_used, image_reason, count(*) FROM mask_files"
            " WHERE status = 'scored' AND path LIKE '%/incoming/%' GROUP BY image_used, image_reason"
        ).all()
    engine.dispose()
    assert images and all(used == 1 and reason is None for used, reason, _ in images), images
    assert counts.by_status.get("scored", 0) > 300
    assert {"0.9", "1.0", "1.1"} <= {s.segmenter_version for s in counts.segmenters}
