"""Engine and session factory: SQLite (WAL, busy timeout, foreign keys) or PostgreSQL via psycopg 3
(lock, statement and idle-in-transaction timeouts on every session)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import Settings, get_settings
from monitor.errors import StoreError

__all__ = [
    "SQLITE_BUSY_TIMEOUT_S",
    "SQLITE_JOURNAL_SIZE_LIMIT_BYTES",
    "SessionTimeouts",
    "make_engine",
    "make_session_factory",
    "normalise_url",
    "open_session",
    "safe_url",
]

#: How long (seconds) a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Size (bytes) a SQLite write-ahead log is cut back to after a checkpoint (it would keep its largest size).
SQLITE_JOURNAL_SIZE_LIMIT_BYTES = 4 * 1024**2
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


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionTimeouts:
    """Limits set on every PostgreSQL session when it connects; 0 turns one off.

    A process that freezes inside a transaction (SIGSTOP, a VM pause, a long GC pause) keeps its row
    locks; without these limits every other session that needs one of those rows waits for as long as
    the freeze lasts. SQLite has one writer at a time and its own wait, ``SQLITE_BUSY_TIMEOUT_S``.
    """

    lock_s: float  #: ``lock_timeout``: a statement waiting longer for a lock fails (retried by callers)
    statement_s: float  #: ``statement_timeout``: a statement running longer is cancelled
    idle_in_transaction_s: float  #: ``idle_in_transaction_session_timeout``: the server ends the session

    def __post_init__(self) -> None:
        for name in ("lock_s", "statement_s", "idle_in_transaction_s"):
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0 seconds (0 = off), got {value}")

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionTimeouts:
        """The timeouts configured in ``Settings`` (``CMR_MONITOR_DB_*_TIMEOUT_S``)."""
        return cls(
            lock_s=settings.db_lock_timeout_s,
            statement_s=settings.db_statement_timeout_s,
            idle_in_transaction_s=settings.db_idle_in_transaction_timeout_s,
        )

    def statements(self) -> list[str]:
        """The ``SET`` statements that apply them (milliseconds; 0 = off)."""
        return [
            f"SET {name} = {round(seconds * 1000)}"
            for name, seconds in (
                ("lock_timeout", self.lock_s),
                ("statement_timeout", self.statement_s),
                ("idle_in_transaction_session_timeout", self.idle_in_transaction_s),
            )
        ]


def make_engine(
    url: str | URL, *, echo: bool = False, timeouts: SessionTimeouts | None = None, **kwargs: Any
) -> Engine:
    """Create an engine for the results database.

    SQLite: WAL journal (readers never block the writer) cut back to
    ``SQLITE_JOURNAL_SIZE_LIMIT_BYTES`` after each checkpoint, ``busy_timeout`` of
    ``SQLITE_BUSY_TIMEOUT_S``, foreign keys enforced, and transactions started by SQLAlchemy rather than
    the driver, so that the store's write functions can take the write lock up front (``BEGIN
    IMMEDIATE``).
    PostgreSQL: psycopg 3 with connection health checks (``pool_pre_ping``) and ``timeouts`` set on
    every session.

    Args:
        url: SQLAlchemy URL; ``postgresql://`` is read as ``postgresql+psycopg://``.
        echo: log every statement (debugging).
        timeouts: PostgreSQL session limits; None = those of ``get_settings()``.
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
    engine = sa.create_engine(parsed, echo=echo, **kwargs)
    _configure_postgresql(engine, timeouts or SessionTimeouts.from_settings(get_settings()))
    return engine


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
            cursor.execute(f"PRAGMA journal_size_limit = {SQLITE_JOURNAL_SIZE_LIMIT_BYTES}")
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _configure_postgresql(engine: Engine, timeouts: SessionTimeouts) -> None:
    """Set the session timeouts on every new connection (they last for the session)."""
    statements = timeouts.statements()

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        dbapi_connection.commit()
