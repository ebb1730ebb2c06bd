"""The file watcher: a watchdog observer (inotify, or polling for NFS/SMB shares) whose handler only
turns events into ``Sighting`` records on a queue; the intake does the rest."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver

__all__ = ["Sighting", "SightingHandler", "SightingKind", "start_observer"]

log = logging.getLogger(__name__)

#: change, closed (after writing), moved_in, gone (a file); gone_dir, dir (a folder).
SightingKind = Literal["change", "closed", "moved_in", "gone", "gone_dir", "dir"]


@dataclass(frozen=True, slots=True)
class Sighting:
    """What the observer saw at ``path``."""

    kind: SightingKind
    path: Path


class SightingHandler(FileSystemEventHandler):
    """Puts each relevant watchdog event on the queue; does nothing else."""

    def __init__(self, sink: queue.Queue[Sighting | None]) -> None:
        self._sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileClosedEvent):
            self._sink.put(Sighting("closed", src))
        elif isinstance(event, FileCreatedEvent | FileModifiedEvent):
            self._sink.put(Sighting("change", src))
        elif isinstance(event, FileMovedEvent):
            self._sink.put(Sighting("gone", src))
            self._sink.put(Sighting("moved_in", Path(os.fsdecode(event.dest_path))))
        elif isinstance(event, FileDeletedEvent):
            self._sink.put(Sighting("gone", src))
        elif isinstance(event, DirDeletedEvent):
            self._sink.put(Sighting("gone_dir", src))
        elif isinstance(event, DirMovedEvent):
            self._sink.put(Sighting("gone_dir", src))
            self._sink.put(Sighting("dir", Path(os.fsdecode(event.dest_path))))
        elif isinstance(event, DirCreatedEvent):
            self._sink.put(Sighting("dir", src))


def start_observer(
    roots: Sequence[Path], sink: queue.Queue[Sighting | None], *, polling: bool, poll_interval_s: float
) -> BaseObserver:
    """Watch ``roots`` recursively and put what is seen on ``sink``; return the running observer.

    inotify unless ``polling``; when inotify's watch or instance limit is reached, polling every
    ``poll_interval_s`` seconds instead (logged).
    """
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    # watchdog warns (on stderr, outside logging) when a folder's watch is added twice, e.g. for a
    # folder created while the recursive watch is being set up; the warning is harmless and
    # spells out watched paths, which may name patients.
    warnings.filterwarnings("ignore", message="Callback with id .* already exists", category=RuntimeWarning)
    handler = SightingHandler(sink)
    if not polling:
        observer: BaseObserver = Observer()
        try:
            for root in roots:
                observer.schedule(handler, str(root), recursive=True)
            observer.start()
            return observer
        except OSError as exc:  # inotify watch or instance limit reached
            log.warning(
                "inotify unavailable (%s); falling back to polling every %.1f s",
                exc,
                poll_interval_s,
                extra={"action": "polling_fallback"},
            )
            with contextlib.suppress(Exception):
                observer.stop()
    observer = PollingObserver(timeout=poll_interval_s)
    for root in roots:
        observer.schedule(handler, str(root), recursive=True)
    observer.start()
    return observer
