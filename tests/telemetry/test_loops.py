"""Tests of ``monitor.telemetry.loops``: how long a daemon loop's step has gone without progress."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from monitor.telemetry import LOOPS, LoopWatch


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_step_without_progress_counts_up_and_progress_resets_it() -> None:
    clock = _Clock()
    watch = LoopWatch(clock)
    registry = CollectorRegistry()
    registry.register(watch)
    assert watch.stalled_s("intake") == 0.0  # waiting for work: not stalled
    with watch.step("intake"):
        clock.now += 7.5
        assert watch.stalled_s("intake") == 7.5
        assert registry.get_sample_value("cmr_monitor_loop_stalled_seconds", {"loop": "intake"}) == 7.5
        watch.progress("intake")  # a file taken
        clock.now += 2.0
        assert watch.stalled_s("intake") == 2.0
        with watch.step("maintenance"):
            clock.now += 12.0
            assert watch.stalled(after_s=10.0) == [("intake", 14.0), ("maintenance", 12.0)]
        assert watch.stalled(after_s=10.0) == [("intake", 14.0)]
    assert watch.stalled(after_s=0.0) == []
    assert registry.get_sample_value("cmr_monitor_loop_stalled_seconds", {"loop": "worker"}) == 0.0
    assert [
        registry.get_sample_value("cmr_monitor_loop_stalled_seconds", {"loop": loop}) for loop in LOOPS
    ] == [0.0] * len(LOOPS)


def test_nested_steps_count_from_the_outermost_and_labels_are_bounded() -> None:
    clock = _Clock()
    watch = LoopWatch(clock)
    with watch.step("worker"):
        clock.now += 3.0
        with watch.step("worker"):
            clock.now += 1.0
        assert watch.stalled_s("worker") == 4.0  # the inner step's end does not end the outer one
    assert watch.stalled_s("worker") == 0.0
    watch.progress("worker")  # outside a step: nothing to reset, nothing started
    assert watch.stalled_s("worker") == 0.0
    with pytest.raises(ValueError, match="loop must be one of"), watch.step("case_0042"):  # type: ignore[arg-type]
        pass
