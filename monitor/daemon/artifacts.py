"""The artifacts folder: each scored file's pGT and inconsistency map, written or given up per file.

An artifact write that fails never holds up other files: the file's scores are recorded without
artifacts (they are derived data; the mask is still on disk) and the failure is told apart by its
errno, in the log (``artifacts_failed`` with ``errno``) and in ``cmr_monitor_artifact_errors_total``:
``EROFS`` (read-only file system), ``ENOSPC``/``EDQUOT`` (full), ``EACCES``/``EPERM`` (permission),
``EIO``. From the first failure until a write or a probe succeeds the folder counts as failing:
``/readyz`` answers 503 naming the errno, ``cmr_monitor_artifacts_writable`` is 0, and the maintenance
loop probes the folder every few seconds. Nothing is left behind: a failed write removes its temporary
file (``monitor.io.nifti.save_labels``) and the file's other artifact; ``sweep`` removes temporary files
of dead writers at start; ``discard`` removes those of files abandoned at shutdown.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.io.nifti import MaskVolume, save_labels, temporary_writer
from monitor.io.processes import process_running
from monitor.qc.labels import LabelMap
from monitor.store import ARTIFACT_INCONSISTENCY, ARTIFACT_PGT
from monitor.telemetry import DaemonMetrics

if TYPE_CHECKING:
    from monitor.model.scorer import ScoredVolume

__all__ = ["ArtifactsFolder", "ArtifactsProblem", "artifact_paths", "errno_name"]

log = logging.getLogger(__name__)

#: A temporary file younger than this (seconds) whose writer is not running here may be another
#: machine's write in progress (a shared folder): ``sweep`` leaves it.
_TEMPORARY_GRACE_S = 60.0
_PROBE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class ArtifactsProblem:
    """Why the artifacts folder takes no writes."""

    errno_name: str  #: "EROFS", "ENOSPC", "EACCES", ... ("other" without an errno)
    message: str  #: the system's words, e.g. "No space left on device"
    since: float  #: monotonic time of the first failure


def artifact_paths(artifacts_dir: Path, file_id: int) -> dict[str, Path]:
    """Where the artifacts of a file go: ``<dir>/<file_id // 1000>/<file_id>_<kind>.nii.gz``.

    Named by file id only (no patient identifiers in paths), sharded by thousands.
    """
    folder = artifacts_dir / f"{file_id // 1000:06d}"
    return {kind: folder / f"{file_id}_{kind}.nii.gz" for kind in (ARTIFACT_PGT, ARTIFACT_INCONSISTENCY)}


def errno_name(exc: OSError) -> str:
    """The symbolic errno of an OS error (``"ENOSPC"``), or ``"other"`` without a known one."""
    return errno.errorcode.get(exc.errno or -1, "other")


class ArtifactsFolder:
    """Writes artifacts into one folder and remembers whether it takes writes (thread-safe).

    Args:
        folder: the artifacts folder (created when missing).
        metrics: counts failures by errno; ``artifacts_writable``.
        label_map: label values the pGT is written in (the masks' own).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        folder: Path,
        *,
        metrics: DaemonMetrics,
        label_map: LabelMap,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.folder = folder
        self._metrics = metrics
        self._label_map = label_map
        self._clock = clock
        self._lock = threading.Lock()
        self._problem: ArtifactsProblem | None = None

    @property
    def problem(self) -> ArtifactsProblem | None:
        """Why the folder failed its last write or probe; None while it takes writes."""
        with self._lock:
            return self._problem

    def write(self, file_id: int, volume: MaskVolume, result: ScoredVolume) -> dict[str, str]:
        """Write the file's pGT and inconsistency map in the mask's geometry.

        Returns: kind -> path of the artifacts written; {} when the write failed (the failure is logged
            and counted, nothing of the file is left in the folder).
        """
        paths = artifact_paths(self.folder, file_id)
        try:
            save_labels(paths[ARTIFACT_PGT], result.pgt, volume.affine, label_map=self._label_map)
            save_labels(paths[ARTIFACT_INCONSISTENCY], result.inconsistency, volume.affine)
        except OSError as exc:
            for path in paths.values():
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
            self._failed(exc, file_id=file_id)
            return {}
        self._succeeded()
        return {kind: str(path) for kind, path in paths.items()}

    def probe(self) -> None:
        """While the folder is failing: try a small write (and remove it); a success clears the failure."""
        if self.problem is None:
            return
        probe = self.folder / f".probe.{os.getpid()}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(probe, "wb") as fh:
                fh.write(bytes(_PROBE_BYTES))
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            self._failed(exc, file_id=None)
        else:
            self._succeeded()
        finally:
            with contextlib.suppress(OSError):
                probe.unlink(missing_ok=True)

    def sweep(self) -> int:
        """Remove temporary files of writes that will never finish: written by this process id (a
        previous run that had it) or by a process that is not running on this machine, and not touched
        for a minute. Returns how many were removed."""
        removed = 0
        now = time.time()
        for dirpath, _, names in os.walk(self.folder, onerror=lambda exc: None):
            for name in names:
                pid = temporary_writer(name)
                if pid is None:
                    continue
                path = Path(dirpath) / name
                try:
                    stale = pid == os.getpid() or (
                        not process_running(pid) and now - path.stat().st_mtime > _TEMPORARY_GRACE_S
                    )
                    if stale:
                        path.unlink()
                        removed += 1
                except OSError:
                    continue
        if removed:
            log.info(
                "removed %d stale temporary artifact file(s)",
                removed,
                extra={"action": "artifacts_swept", "files": removed},
            )
        return removed

    def discard(self, file_ids: Iterable[int]) -> None:
        """Remove what this process left of the artifacts of files it gave up (shutdown deadline): their
        artifacts and this process's temporary files in their folders."""
        folders = set()
        for file_id in set(file_ids):
            for path in artifact_paths(self.folder, file_id).values():
                folders.add(path.parent)
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        for folder in folders:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    if temporary_writer(entry.name) == os.getpid():
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)

    def _failed(self, exc: OSError, *, file_id: int | None) -> None:
        name = errno_name(exc)
        message = exc.strerror or type(exc).__name__
        with self._lock:
            first = self._problem is None
            since = self._clock() if self._problem is None else self._problem.since
            self._problem = ArtifactsProblem(errno_name=name, message=message, since=since)
        if file_id is None:
            log.debug("artifacts folder probe failed: %s (%s)", name, message)
            return
        self._metrics.record_artifact_error(name)
        if first:
            log.error(
                "artifacts folder failing: %s (%s); scores are recorded without artifacts until it recovers",
                name,
                message,
                extra={"action": "artifacts_failing", "errno": name},
            )
        log.warning(
            "artifacts of file %d not written: %s (%s)",
            file_id,
            name,
            message,
            extra={"action": "artifacts_failed", "file_id": file_id, "errno": name},
        )

    def _succeeded(self) -> None:
        with self._lock:
            recovered = self._problem
            self._problem = None
        if recovered is not None:
            self._metrics.artifacts_writable.set(1)
            log.info(
                "artifacts folder takes writes again (was failing with %s for %.0f s)",
                recovered.errno_name,
                self._clock() - recovered.since,
                extra={"action": "artifacts_recovered", "errno": recovered.errno_name},
            )
