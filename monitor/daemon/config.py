"""``DaemonConfig``: what the watch daemon watches and how (its tuning; ``Settings`` holds the rest)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from monitor.config import Settings
from monitor.io.identity import IngestConfig, find_root, is_candidate
from monitor.telemetry import DEFAULT_METRICS_ADDR, DEFAULT_METRICS_PORT

__all__ = ["DaemonConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class DaemonConfig:
    """What the daemon watches and how; ``settings`` holds the rest (database, artifacts folder, model,
    device, label map, input limits, flag thresholds).

    Raises: ValueError for no or relative folders, non-positive times, bad counts or ports, or an
        artifacts or quarantine folder inside a watched folder.
    """

    roots: tuple[Path, ...]  #: watched folders (absolute, existing), searched recursively
    settings: Settings  #: database_url, artifacts_dir (outside the watched folders), scoring settings
    quarantine_dir: Path | None = None  #: rejected files are moved here (outside the watched folders)
    migrate: bool = False  #: upgrade the schema to head at start instead of refusing an old one
    ingest: IngestConfig = field(default_factory=IngestConfig)  #: file patterns and naming
    polling: bool = False  #: poll the folders instead of inotify (NFS/SMB shares)
    poll_interval_s: float = 1.0  #: polling period; also the longest idle wait of the loops
    stable_s: float = 2.0  #: size and mtime unchanged this long = complete (without a close event)
    incomplete_timeout_s: float = 60.0  #: not parsing this long after its last change = rejected
    rescan_interval_s: float = 300.0  #: full rescan of the folders (missed events)
    batch_size: int = 8  #: files claimed and scored together
    lease_s: float = 600.0  #: a claim not finished in this time is taken back by ``reclaim_expired``
    max_attempts: int = 3  #: claims of one file before it is rejected ("too_many_attempts")
    shutdown_timeout_s: float = 30.0  #: how long stop() waits for the batch in flight
    metrics_addr: str = DEFAULT_METRICS_ADDR  #: address of the /metrics, /healthz, /readyz endpoint
    metrics_port: int | None = DEFAULT_METRICS_PORT  #: its port; 0 = any free port; None = no endpoint

    def __post_init__(self) -> None:
        if not self.roots:
            raise ValueError("at least one folder to watch is needed")
        for root in self.roots:
            if not root.is_absolute():
                raise ValueError(f"watched folders must be absolute paths, got {root}")
        for name in (
            "poll_interval_s",
            "lease_s",
            "shutdown_timeout_s",
            "incomplete_timeout_s",
            "rescan_interval_s",
        ):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if not self.stable_s >= 0:
            raise ValueError(f"stable_s must be >= 0 seconds, got {self.stable_s}")
        if self.batch_size < 1 or self.max_attempts < 1:
            raise ValueError(
                f"batch_size and max_attempts must be >= 1, got {self.batch_size} and {self.max_attempts}"
            )
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65535:
            raise ValueError(f"metrics_port must be 0-65535, got {self.metrics_port}")
        for name, folder in (("artifacts_dir", self.artifacts_dir), ("quarantine_dir", self.quarantine_dir)):
            if folder is None:
                continue
            root = find_root(folder.resolve(), [r.resolve() for r in self.roots])
            if root is not None and not _excluded_folder(folder.resolve(), root, self.ingest):
                raise ValueError(
                    f"{name} {folder} lies inside the watched folder {root}: the daemon would take its own "
                    "output as input; put it elsewhere (or in a hidden folder such as .artifacts)"
                )

    @property
    def database_url(self) -> str:
        """SQLAlchemy URL of the results database (from ``settings``)."""
        return self.settings.database_url

    @property
    def artifacts_dir(self) -> Path:
        """Where pGT and inconsistency maps go (from ``settings``)."""
        return self.settings.artifacts_dir


def _excluded_folder(folder: Path, root: Path, config: IngestConfig) -> bool:
    """True when files under ``folder`` (inside ``root``) can never be candidates."""
    return not is_candidate(folder / "x.nii.gz", root, IngestConfig(include=("*",), exclude=config.exclude))
