"""Tests of the live demo: its schedule, its work folder, and ``cmr-monitor demo --fast`` end to end
(the session's one run, ``tests/conftest.py``)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest

from monitor.sim.deliveries import DEMO_VERSIONS, LABELLED_EVERY, SMALL_PHANTOM, plan_deliveries
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
    labelled = [d for d in plan if d.labelled]  # patients 1, 6, ..., 41 less the broken files
    assert {d.patient for d in labelled} == set(range(1, 46, LABELLED_EVERY))
    assert len(labelled) == 17 and all(d.quality != "invalid" for d in labelled)


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


@pytest.mark.slow
def test_demo_records_the_real_metrics_of_the_labelled_masks(demo_run: DemoRun) -> None:
    """Every labelled live mask has its real Dice/HD in the database, equal to the mask's against its
    phantom, beside the daemon's estimates: the "Estimated vs realized" page has data."""
    from monitor.io.nifti import load_mask
    from monitor.qc.scores import compare_structures
    from monitor.sim import make_patient
    from monitor.store import estimated_vs_realized, open_session

    with open_session(f"sqlite:///{demo_run.workdir / 'cmr-monitor.db'}") as session:
        realized = estimated_vs_realized(session)
    planned = {
        (d.version, d.patient, d.phase) for d in plan_deliveries(duration_s=10, rate_per_s=3) if d.labelled
    }
    found = {
        (r.segmenter_version, int(r.case_key.removeprefix("patient")), r.phase) for r in realized.itertuples()
    }
    assert found == planned and {v for v, _, _ in found} == set(DEMO_VERSIONS)  # 1.0 and 1.1
    assert set(realized["source"]) == {"demo"} and len(realized) == 3 * len(planned)
    assert realized["edsc"].notna().all()  # the daemon's calibrated estimate beside each
    for (version, case_key, phase), rows in realized.groupby(["segmenter_version", "case_key", "phase"]):
        mask = load_mask(demo_run.workdir / "incoming" / "cardioseg" / version / f"{case_key}_{phase}.nii.gz")
        patient = int(case_key.removeprefix("patient"))
        ed, es = make_patient(np.random.default_rng([0, 3, patient]), **SMALL_PHANTOM)  # seed 0
        truth = ed if phase == "ED" else es
        real = {c.structure.value: c for c in compare_structures(mask.labels, truth.labels, truth.spacing_mm)}
        for row in rows.itertuples():
            assert row.dsc == pytest.approx(real[row.structure].dice, abs=1e-12, nan_ok=True)
            assert row.hd_mm == pytest.approx(real[row.structure].hd_mm, abs=1e-9, nan_ok=True)
        assert any(math.isfinite(v) and v < 0.999 for v in rows["dsc"])  # a segmentation, not the truth
    assert "labelled masks" in demo_run.ran.stdout
