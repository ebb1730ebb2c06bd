"""Who a worker is and whether it is still alive: worker ids, dead local workers, their claims taken back.

A worker id is ``host/boot/pid-namespace/pid``. Two ids with the same host, boot and pid namespace name
processes that can see each other, so a daemon can tell that the process behind another id is dead and
put its ``scoring`` files back in the queue without waiting for their leases.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from sqlalchemy.orm import Session

from monitor.store import requeue_worker, scoring_workers

__all__ = ["is_dead_local_worker", "take_back_dead_work", "worker_identity"]


def worker_identity() -> str:
    """This process's worker id: ``host/boot/pid-namespace/pid`` (at most 200 characters)."""
    return f"{socket.gethostname()}/{_boot_id()}/{_pid_namespace()}/{os.getpid()}"[:200]


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
    except OSError:
        return "noboot"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "nons"


def is_dead_local_worker(worker_id: str, me: str) -> bool:
    """True when ``worker_id`` names a process on this machine (same boot, pid namespace) that is gone,
    or one on this host before its last reboot."""
    try:
        host, boot, namespace, pid_text = worker_id.rsplit("/", 3)
        my_host, my_boot, my_namespace, _ = me.rsplit("/", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if host != my_host or worker_id == me:
        return False
    if boot != my_boot:
        return boot != "noboot" and my_boot != "noboot"
    if namespace != my_namespace:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_back_dead_work(session: Session, me: str, *, max_attempts: int) -> None:
    """Put the ``scoring`` files of dead local workers back in the queue (``requeue_worker``).

    Raises: DatabaseUnavailable.
    """
    for worker_id in scoring_workers(session):
        if is_dead_local_worker(worker_id, me):
            requeue_worker(session, worker_id, max_attempts=max_attempts)
