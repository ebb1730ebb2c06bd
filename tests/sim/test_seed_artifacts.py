"""``with_recent_alert_artifacts``: which seeded files get rendered maps (pure, no disk)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.qc.levels import FlagLevel
from monitor.sim.history import plan_history
from monitor.sim.seed import with_recent_alert_artifacts


def test_every_recent_alert_and_nothing_else_is_marked() -> None:
    end = datetime(2026, 3, 2, tzinfo=UTC)
    plan = plan_history(weeks=2, volumes_per_day=30, seed=5, end=end, artifact_files=0)
    marked = with_recent_alert_artifacts(plan, 3)
    since = end - timedelta(days=3)
    expected = {
        f.index
        for f in plan.files
        if f.score is not None and f.score.flag != FlagLevel.OK and f.received_at >= since
    }
    assert len(expected) >= 5
    assert {f.index for f in marked.files if f.with_artifacts} == expected
    assert [f.index for f in marked.files] == [f.index for f in plan.files]
    assert with_recent_alert_artifacts(plan, 0).files == plan.files
