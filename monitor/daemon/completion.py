"""When a file that is being written is complete: ``CompletionTracker`` (pure bookkeeping; the intake
stats the files and acts on its answers).

A file is taken when it was closed after writing or moved in, or when its size and mtime have not
changed for ``stable_s`` seconds; one that does not parse yet waits for its next change, and for at
most ``incomplete_timeout_s`` seconds after its last one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CompletionTracker"]


@dataclass(slots=True)
class _Entry:
    size: int  #: bytes at the last observation
    mtime_ns: int  #: mtime at the last observation
    changed_at: float  #: monotonic time of the last observed change
    closed: bool  #: a close-after-write or move-in was seen since the last change
    check_at: float  #: monotonic time from which the file may be checked


class CompletionTracker:
    """Decides when a file that is being written is complete (pure bookkeeping; the caller stats).

    A file becomes *due* when it was closed after writing or moved in (``observe(..., closed=True)``),
    or when ``stable_s`` seconds passed since its size or mtime last changed. When the caller finds that
    a due file does not parse yet, ``defer`` puts it back until it changes again (or ``retry_s``
    passes); ``expired`` says when ``incomplete_timeout_s`` seconds have passed since its last change,
    after which the caller rejects it.

    Times are monotonic seconds (``time.monotonic()``); ``age_s`` tells how long ago a file seen for the
    first time was last modified (from its mtime), so that old files found by a scan are due at once.

    Example::

        tracker = CompletionTracker(stable_s=2.0, incomplete_timeout_s=60.0)
        tracker.observe(path, size, mtime_ns, now=time.monotonic(), closed=True)
        for path in tracker.due(time.monotonic()):
            ...
    """

    def __init__(self, *, stable_s: float, incomplete_timeout_s: float) -> None:
        if not stable_s >= 0:
            raise ValueError(f"stable_s must be >= 0 seconds, got {stable_s}")
        if not incomplete_timeout_s > 0:
            raise ValueError(f"incomplete_timeout_s must be > 0 seconds, got {incomplete_timeout_s}")
        self.stable_s = stable_s
        self.incomplete_timeout_s = incomplete_timeout_s
        self._entries: dict[Path, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, path: object) -> bool:
        return path in self._entries

    def observe(
        self, path: Path, size: int, mtime_ns: int, *, now: float, closed: bool = False, age_s: float = 0.0
    ) -> bool:
        """Record a sighting of ``path`` with this size and mtime.

        Args:
            closed: the sighting is a close-after-write or a move into the folder (complete now).
            age_s: for a file not tracked yet, seconds since its mtime (>= 0); ignored otherwise.
        Returns: True when the file is new or changed since the last sighting.
        """
        entry = self._entries.get(path)
        if entry is None:
            changed_at = now - max(0.0, age_s)
            self._entries[path] = _Entry(
                size=size,
                mtime_ns=mtime_ns,
                changed_at=changed_at,
                closed=closed,
                check_at=self._ready(changed_at, closed),
            )
            return True
        changed = (size, mtime_ns) != (entry.size, entry.mtime_ns)
        if changed:
            entry.size, entry.mtime_ns, entry.changed_at, entry.closed = size, mtime_ns, now, closed
            entry.check_at = self._ready(now, closed)
        elif closed and not entry.closed:
            entry.closed = True
            entry.check_at = min(entry.check_at, now)
        return changed

    def _ready(self, changed_at: float, closed: bool) -> float:
        return changed_at if closed else changed_at + self.stable_s

    def matches(self, path: Path, size: int, mtime_ns: int) -> bool:
        """True when ``path`` is tracked with exactly this size and mtime."""
        entry = self._entries.get(path)
        return entry is not None and (entry.size, entry.mtime_ns) == (size, mtime_ns)

    def due(self, now: float) -> list[Path]:
        """Tracked files that may be checked now, longest-waiting first."""
        ready = [(e.check_at, p) for p, e in self._entries.items() if e.check_at <= now]
        return [p for _, p in sorted(ready, key=lambda item: item[0])]

    def defer(self, path: Path, now: float, retry_s: float) -> None:
        """Check ``path`` again after ``retry_s`` seconds (or sooner if it changes), but not after it
        has expired."""
        entry = self._entries.get(path)
        if entry is not None:
            entry.closed = False
            entry.check_at = min(now + retry_s, entry.changed_at + self.incomplete_timeout_s)

    def postpone(self, path: Path, until: float) -> None:
        """Check ``path`` (complete, but held up: its row is locked) again at ``until``, or sooner if it
        changes."""
        entry = self._entries.get(path)
        if entry is not None:
            entry.check_at = until

    def expired(self, path: Path, now: float) -> bool:
        """True when ``incomplete_timeout_s`` seconds have passed since ``path`` last changed."""
        entry = self._entries.get(path)
        return entry is not None and now - entry.changed_at >= self.incomplete_timeout_s

    def forget(self, path: Path) -> None:
        """Stop tracking ``path`` (taken, deleted or moved away)."""
        self._entries.pop(path, None)

    def forget_under(self, path: Path) -> None:
        """Stop tracking ``path`` and every file below it (a folder deleted or moved away)."""
        for tracked in [p for p in self._entries if p == path or p.is_relative_to(path)]:
            del self._entries[tracked]

    def next_check(self) -> float | None:
        """Monotonic time of the earliest check, or None when nothing is tracked."""
        return min((e.check_at for e in self._entries.values()), default=None)
