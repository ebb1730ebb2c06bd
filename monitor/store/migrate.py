"""Schema migrations (Alembic) as a module API: upgrade, downgrade, current revision, head check.

The Alembic scripts live in the top-level ``migrations/`` folder of the source tree. ``migrations_dir``
finds them from this package, so the API works from any working folder, in a source checkout and in an
editable install (``pip install -e .``); see docs/database.md.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import URL

from monitor.config import get_settings
from monitor.errors import StoreError
from monitor.store.engine import SessionTimeouts, make_engine, normalise_url, safe_url

__all__ = [
    "alembic_config",
    "check_at_head",
    "current",
    "downgrade",
    "head_revision",
    "migration_connection",
    "migrations_dir",
    "upgrade",
]

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent


def migrations_dir() -> Path:
    """The folder of Alembic scripts (``env.py``, ``versions/``).

    Looked up first inside the package (``monitor/store/migrations``, for a build that ships the scripts
    there), then as the top-level ``migrations/`` next to the ``monitor`` package (source checkout,
    editable install).

    Raises: StoreError when neither exists.
    """
    candidates = (_PACKAGE_DIR / "migrations", _PACKAGE_DIR.parent.parent / "migrations")
    for folder in candidates:
        if (folder / "env.py").is_file():
            return folder
    tried = ", ".join(str(c) for c in candidates)
    raise StoreError(
        f"Alembic migrations not found (tried {tried}); reinstall cmr-monitor from its source tree"
    )


def alembic_config(connection: sa.Connection | None = None) -> Config:
    """An Alembic ``Config`` for our scripts; ``connection`` is handed to ``env.py`` when given."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision this version of cmr-monitor needs.

    Raises: StoreError when the scripts have more than one head (a development mistake).
    """
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    if len(heads) != 1:
        raise StoreError(f"migrations must have exactly one head, found {sorted(heads)}: merge them")
    return heads[0]


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the latest), creating it if empty.

    Raises: StoreError when the database cannot be reached, the revision is unknown or the migration fails.
    """
    with migration_connection(url) as connection, _revision_errors(revision):
        command.upgrade(alembic_config(connection), revision)
    log.info("database upgraded", extra={"action": "db_upgrade", "revision": revision})


def downgrade(url: str | URL, revision: str) -> None:
    """Migrate the database at ``url`` down to ``revision`` (``"base"`` drops every table).

    Raises: StoreError when the database cannot be reached, the revision is unknown or the migration fails.
    """
    with migration_connection(url) as connection, _revision_errors(revision):
        command.downgrade(alembic_config(connection), revision)
    log.info("database downgraded", extra={"action": "db_downgrade", "revision": revision})


def current(url: str | URL) -> str | None:
    """The schema revision of the database at ``url``; None for a database never migrated (a SQLite
    file that does not exist is not created).

    Raises: StoreError when the database cannot be reached.
    """
    parsed = normalise_url(url)
    file = parsed.database if parsed.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not Path(file).exists():
        return None
    engine = make_engine(parsed, poolclass=sa.NullPool, timeouts=_migration_timeouts())
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot connect to database {safe_url(url)}: {exc.orig}") from exc
    finally:
        engine.dispose()


def check_at_head(url: str | URL) -> None:
    """Refuse to run against a database whose schema is not the one this version needs.

    Raises: StoreError naming the database's revision, the needed one and the command that fixes it.
    """
    needed = head_revision()
    found = current(url)
    if found == needed:
        return
    shown = safe_url(url)
    if found is not None and _is_unknown(found):
        raise StoreError(
            f"database schema is at {found}, which this version of cmr-monitor does not know "
            f"(it needs {needed}); was the database migrated by a newer cmr-monitor? ({shown})"
        )
    raise StoreError(
        f"database schema is at {found or 'nothing (empty database)'}, this version needs {needed}: "
        f"run `cmr-monitor db upgrade --db {shown}`"
    )


@contextmanager
def _revision_errors(revision: str) -> Iterator[None]:
    """Turn Alembic's errors about revisions (unknown id, wrong direction) into StoreError."""
    try:
        yield
    except CommandError as exc:
        raise StoreError(f"cannot migrate to revision {revision!r}: {exc}") from exc


def _is_unknown(revision: str) -> bool:
    """True when ``revision`` is not among our scripts."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is None
    except CommandError:  # "Can't locate revision identified by ..."
        return True


@contextmanager
def migration_connection(url: str | URL) -> Iterator[sa.Connection]:
    """A connection in one transaction for Alembic; on SQLite, foreign keys are off while it runs.

    SQLite's batch mode rebuilds tables (copy, drop, rename), which foreign keys would block or cascade
    through; the check afterwards proves that no reference was broken.
    """
    engine = make_engine(url, poolclass=sa.NullPool, timeouts=_migration_timeouts())
    try:
        with engine.connect() as connection:
            sqlite = engine.dialect.name == "sqlite"
            if sqlite:
                # outside a transaction, where SQLite honours the pragma
                connection.connection.driver_connection.execute("PRAGMA foreign_keys = OFF")
            with connection.begin():
                yield connection
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise StoreError(
                            f"migration left {len(broken)} broken foreign keys, e.g. {broken[0]}"
                        )
    except sa.exc.OperationalError as exc:
        raise StoreError(f"cannot migrate database {safe_url(url)}: {exc.orig}") from exc
    finally:
        engine.dispose()


def _migration_timeouts() -> SessionTimeouts:
    """The configured session timeouts without the statement limit: building an index on a large
    table may take minutes; a lock held by a running daemon still fails the migration fast."""
    settings = get_settings()
    return SessionTimeouts(
        lock_s=settings.db_lock_timeout_s,
        statement_s=0.0,
        idle_in_transaction_s=settings.db_idle_in_transaction_timeout_s,
    )
