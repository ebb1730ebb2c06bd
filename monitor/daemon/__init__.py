"""The watch daemon: folders in, scored (or rejected) rows out, until told to stop.

- ``config``: ``DaemonConfig`` (what is watched and how);
- ``signals``: ``on_stop`` (SIGTERM / SIGINT call ``Daemon.stop``);
- ``liveness``: worker ids, dead local workers and their claims;
- ``watch``: the watchdog observer, whose handler only queues ``Sighting`` records;
- ``completion``, ``intake``: when a file is complete; hashing, naming, validating and enqueueing it;
- ``worker``: the worker thread (claim, score, write artifacts, record), given a ``WorkerContext``;
- ``artifacts``: the artifacts folder (each file's written or given up on its own; stale temporaries);
- ``maintenance``: the thread that takes back expired and dead workers' claims and probes the artifacts;
- ``retry``, ``rejection``: transient failures retried with backoff; rejections and quarantine;
- ``service``: ``Daemon``, which starts, wires and stops the parts above.

Example::

    daemon = Daemon(DaemonConfig(roots=(Path("/data/incoming"),), settings=get_settings()))
    with on_stop(daemon.stop):
        daemon.run()
"""

from monitor.daemon.artifacts import artifact_paths
from monitor.daemon.config import DaemonConfig
from monitor.daemon.intake import TRANSIENT_REASONS
from monitor.daemon.liveness import is_dead_local_worker, worker_identity
from monitor.daemon.service import Daemon
from monitor.daemon.signals import on_stop
from monitor.daemon.worker import ScorerLike

__all__ = [
    "TRANSIENT_REASONS",
    "Daemon",
    "DaemonConfig",
    "ScorerLike",
    "artifact_paths",
    "is_dead_local_worker",
    "on_stop",
    "worker_identity",
]
