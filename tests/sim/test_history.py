"""monitor.sim: the simulated history is deterministic, worse after the switch, and written through
the store with real artifacts for a few files."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from monitor.io.nifti import load_image, load_mask
from monitor.qc.labels import ACDC
from monitor.qc.levels import FlagLevel
from monitor.sim import plan_history, seed_history
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    get_case,
    make_engine,
    make_session_factory,
    status_counts,
    upgrade,
)
from tests.dashboard.conftest import Seeded

END = datetime(2026, 3, 2, tzinfo=UTC)


def test_plan_is_deterministic_and_the_new_version_is_worse() -> None:
    a = plan_history(weeks=4, volumes_per_day=30, seed=5, end=END)
    b = plan_history(weeks=4, volumes_per_day=30, seed=5, end=END)
    assert a == b
    assert a.start == END - timedelta(weeks=4) and a.files[-1].received_at < END
    assert all(x.received_at <= y.received_at for x, y in zip(a.files, a.files[1:], strict=False))
    rates = {}
    for version in ("1.0", "1.1"):
        scored = [f for f in a.files if f.segmenter_version == version and f.score is not None]
        assert all((f.received_at >= a.switch_at) == (version == "1.1") for f in scored)
        rates[version] = sum(f.score.flag != FlagLevel.OK for f in scored) / len(scored)
    assert rates["1.1"] > 2 * rates["1.0"]
    pdsc = [s.pdsc for f in a.files if f.score for s in f.score.structures if not math.isnan(s.pdsc)]
    assert min(pdsc) >= 0.0 and max(pdsc) <= 1.0
    reviewed = [f for f in a.files if f.reviews]
    assert reviewed and all(f.score is not None and f.score.flag != FlagLevel.OK for f in reviewed)
    assert all(r.reviewed_at < END for f in reviewed for r in f.reviews)
    assert sum(f.with_artifacts for f in a.files) == 12


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weeks": 0},
        {"volumes_per_day": -1},
        {"switch_fraction": 1.5},
        {"artifact_files": -1},
        {"end": datetime(2026, 1, 1)},
    ],
    ids=["weeks", "volumes", "switch", "artifacts", "naive-end"],
)
def test_plan_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        plan_history(**kwargs)


def test_seeded_database_matches_the_summary(seeded_sqlite: Seeded) -> None:
    s = seeded_sqlite.summary
    with make_session_factory(make_engine(seeded_sqlite.url))() as session:
        counts = status_counts(session)
        assert counts.by_flag == s.by_flag
        assert counts.by_status["scored"] == s.scored and counts.by_status["rejected"] == s.rejected
        case = get_case(session, s.artifact_file_ids[0])
    assert s.reviews >= s.reviewed_files > 0
    assert case is not None and set(case.artifacts) == {ARTIFACT_PGT, ARTIFACT_INCONSISTENCY}
    mask = load_mask(case.path, ACDC).labels
    pgt = load_mask(case.artifacts[ARTIFACT_PGT], ACDC).labels
    xor, _ = load_image(case.artifacts[ARTIFACT_INCONSISTENCY])
    image, _ = load_image(case.image_path)
    assert mask.shape == pgt.shape == xor.shape == image.shape == case.shape
    np.testing.assert_array_equal(xor > 0, mask != pgt)
    assert all(Path(p).is_relative_to(seeded_sqlite.artifacts_dir) for p in s.written_paths)


def test_seed_without_artifacts_accepts_a_session(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as session:
        summary = seed_history(session, weeks=0.5, volumes_per_day=10, end=END)
        assert summary.artifact_file_ids == () and summary.written_paths == ()
        assert status_counts(session).total == len(summary.file_ids) > 0
    engine.dispose()
