"""Whether a process still runs: for sweeping what a dead process left behind (temporary files,
staging folders named after their writer's pid)."""

from __future__ import annotations

import os

__all__ = ["process_running"]


def process_running(pid: int) -> bool:
    """True when a process with this id runs on this machine, or exists but cannot be signalled (someone
    else's: treated as running, so its files are left alone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
