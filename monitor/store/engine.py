"""Engine and session factory: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL via psycopg 3."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import StoreError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_S",
    "make_engine",
    "make_session_factory",
    "normalise_url",
    "open_session",
    "safe_url",
]

#: How long (seconds) a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Execution option that makes the next SQLite transaction ``BEGIN IMMEDIATE`` (take the write lock now).
_IMMEDIATE = "cmr_monitor_sqlite_immediate"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL and pick the driver: ``postgresql://`` and ``postgres://`` become psycopg 3.

    Raises: StoreError when the URL cannot be parsed or names a database other than SQLite or PostgreSQL.
    """
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            f"cannot parse database URL {url!r}: expected sqlite:///FILE or postgresql://..."
        ) from exc
    backend = parsed.get_backend_name()
    if backend == "postgres" or parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        raise StoreError(
            f"unsupported database {parsed.drivername!r} in {safe_url(parsed)}: use SQLite or PostgreSQL"
        )
    return parsed


def safe_url(url: str | URL) -> str:
    """The URL as text with any password masked (for messages and logs)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "<unparseable database URL>"


def make_engine(url: str | URL, *, echo: bool = False, **kwargs: Any) -> Engine:
    """Create an engine for the results database.

    SQLite: WAL journal (readers never block the writer), ``busy_timeout`` of ``SQLITE_BUSY_TIMEOUT_S``,
    foreign keys enforced, and transactions started by SQLAlchemy rather than the driver, so that the
    store's write functions can take the write lock up front (``BEGIN IMMEDIATE``).
    PostgreSQL: psycopg 3 with connection health checks (``pool_pre_ping``).

    Args:
        url: SQLAlchemy URL; ``postgresql://`` is read as ``postgresql+psycopg://``.
        echo: log every statement (debugging).
        kwargs: passed on to ``sqlalchemy.create_engine``.
    Raises: StoreError for an unparseable or unsupported URL.
    """
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args = {"timeout": SQLITE_BUSY_TIMEOUT_S, **kwargs.pop("connect_args", {})}
        engine = sa.create_engine(parsed, echo=echo, connect_args=connect_args, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa.create_engine(parsed, echo=echo, **kwargs)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine``; sessions keep loaded values after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def open_session(url: str | URL) -> Iterator[Session]:
    """A session on an engine of its own, disposed when the block ends (one-off commands, scripts).

    Example::

        with open_session(url) as session:
            counts = status_counts(session)
    """
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    """Connection pragmas and explicit BEGIN handling for pysqlite."""

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # let SQLAlchemy emit BEGIN itself (pysqlite's implicit BEGIN cannot be made IMMEDIATE)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
