"""Starting the daemon: the database opened and probed, the scorer's checkpoint registered.

Pure wiring helpers of ``monitor.daemon.service``: each takes what it uses and returns plain values.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from monitor.daemon.config import DaemonConfig
from monitor.daemon.liveness import take_back_dead_work
from monitor.daemon.retry import Retry
from monitor.daemon.worker import ScorerLike
from monitor.store import (
    DatabaseUnavailable,
    SessionTimeouts,
    last_scoring_model,
    make_engine,
    normalise_url,
    register_model,
)
from monitor.telemetry import DaemonMetrics

__all__ = ["open_database", "probe_database", "register_scorer"]

log = logging.getLogger(__name__)


def register_scorer(
    session: Session,
    scorer: ScorerLike,
    *,
    config: DaemonConfig,
    worker_id: str,
    retry: Retry,
    stop: threading.Event,
    metrics: DaemonMetrics,
) -> int:
    """Register the scorer's checkpoint (``monitor_models``), warn when it differs from the one that
    scored the last file, take back the work of dead local workers and publish the model in the
    metrics; return the model's database id.

    Raises: Abandoned when ``stop`` is set while the database is down.
    """
    meta = getattr(scorer, "meta", None)
    metadata = {
        "checkpoint": str(getattr(scorer, "checkpoint_path", config.settings.checkpoint or "")),
        **(_json_safe(asdict(meta)) if meta is not None else {}),
    }
    previous = retry("database", lambda: last_scoring_model(session), until=stop, operation="startup")
    model_id = retry(
        "database",
        lambda: register_model(session, scorer.checkpoint_sha256, metadata),
        until=stop,
        operation="startup",
    )
    _warn_if_checkpoint_changed(previous, model_id, scorer.checkpoint_sha256)
    retry(
        "database",
        lambda: take_back_dead_work(session, worker_id, max_attempts=config.max_attempts),
        until=stop,
        operation="maintain",
    )
    metrics.set_model(
        checkpoint_sha256=scorer.checkpoint_sha256,
        created=str(metadata.get("created_utc", "")),
        trained_with=str(metadata.get("package_version", "")),
        device=str(getattr(scorer, "device", "")),
        precision=str(getattr(scorer, "precision", "")),
        model_id=model_id,
    )
    return model_id


def open_database(url: str, timeouts: SessionTimeouts) -> tuple[Engine, bool]:
    """An engine on ``url`` (fail-fast, keep-alive options and ``timeouts`` on PostgreSQL) and whether
    the database is a SQLite file that did not exist or was empty before (nothing to protect: it may be
    migrated)."""
    new_database = _is_new_sqlite_file(url)  # before connecting creates it
    return make_engine(url, timeouts=timeouts, **_engine_options(url)), new_database


def probe_database(engine: Engine) -> None:
    """Raise DatabaseUnavailable unless the database answers."""
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None (JSON has no nan)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _warn_if_checkpoint_changed(
    previous: tuple[int, str] | None, model_id: int, checkpoint_sha256: str
) -> None:
    """Warn when the checkpoint differs from the one that scored the last file: scores before and after
    come from different models and are not comparable (``cmr_monitor_model_info`` shows the new hash)."""
    if previous is None or previous[1] == checkpoint_sha256:
        return
    log.warning(
        "checkpoint changed: the last file was scored by model %d (sha256 %s...), this run uses model %d "
        "(sha256 %s...); scores before and after are not comparable",
        previous[0],
        previous[1][:12],
        model_id,
        checkpoint_sha256[:12],
        extra={
            "action": "checkpoint_changed",
            "previous_model_id": previous[0],
            "previous_checkpoint_sha256": previous[1],
            "model_id": model_id,
            "checkpoint_sha256": checkpoint_sha256,
        },
    )


def _is_new_sqlite_file(url: str) -> bool:
    """True for a SQLite database file that does not exist yet or is empty (nothing to protect)."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return False
    path = Path(parsed.database)
    return not path.exists() or path.stat().st_size == 0


def _engine_options(url: str) -> dict[str, Any]:
    """Connection options: fail fast and detect dead peers on PostgreSQL (outages are retried)."""
    if normalise_url(url).get_backend_name() == "postgresql":
        return {
            "connect_args": {
                "connect_timeout": 5,
                "keepalives": 1,
                "keepalives_idle": 10,
                "keepalives_interval": 5,
                "keepalives_count": 3,
            },
            "pool_recycle": 1800,
        }
    return {}
