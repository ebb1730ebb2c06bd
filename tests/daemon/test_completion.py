"""Tests of ``monitor.daemon.completion``: when a file that is being written is complete."""

from __future__ import annotations

from pathlib import Path

from monitor.daemon.completion import CompletionTracker


def test_tracker_closed_is_due_at_once_else_after_stable() -> None:
    tracker = CompletionTracker(stable_s=2.0, incomplete_timeout_s=10.0)
    a, b = Path("/w/a.nii.gz"), Path("/w/b.nii.gz")
    tracker.observe(a, 10, 1, now=100.0, closed=True)
    tracker.observe(b, 10, 1, now=100.0)
    assert tracker.due(100.0) == [a]
    assert tracker.next_check() == 100.0
    assert tracker.observe(b, 20, 2, now=101.0)  # still growing
    assert tracker.due(102.5) == [a]
    assert tracker.due(103.0) == [a, b]
    assert not tracker.observe(b, 20, 2, now=103.5)  # unchanged sighting keeps its clock
    assert tracker.matches(b, 20, 2) and not tracker.matches(b, 20, 3)


def test_tracker_old_file_due_at_once_and_defer_until_expiry() -> None:
    tracker = CompletionTracker(stable_s=2.0, incomplete_timeout_s=10.0)
    old = Path("/w/old.nii.gz")
    tracker.observe(old, 5, 1, now=50.0, age_s=3600.0)
    assert tracker.due(50.0) == [old]
    assert tracker.expired(old, 50.0)
    fresh = Path("/w/fresh.nii.gz")
    tracker.observe(fresh, 5, 1, now=50.0, closed=True)
    tracker.defer(fresh, now=50.0, retry_s=30.0)  # does not parse yet: capped at the expiry
    assert tracker.next_check() < 50.0 and tracker.due(59.9) == [old]
    assert tracker.due(60.0) == [old, fresh] and tracker.expired(fresh, 60.0)
    tracker.observe(fresh, 6, 2, now=61.0, closed=True)  # it changed: due again, clock restarted
    assert fresh in tracker.due(61.0) and not tracker.expired(fresh, 61.0)
    tracker.forget_under(Path("/w"))
    assert len(tracker) == 0 and tracker.next_check() is None
