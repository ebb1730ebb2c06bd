"""Transaction helpers shared by the repository and query modules."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.store.engine import _IMMEDIATE
from monitor.store.errors import DatabaseUnavailable, LockTimeout

__all__ = ["aware", "dialect_insert", "nan_to_none", "none_to_nan", "read_transaction", "write_transaction"]

#: Errors that mean "not now" (server down, connection lost, SQLite lock wait exhausted, a lock or
#: statement timeout), not "never".
_TRANSIENT = (sa.exc.OperationalError, sa.exc.InterfaceError)
#: SQLSTATEs that psycopg files under other classes but that are as transient: the server ended an idle
#: transaction's session (``idle_in_transaction_session_timeout``), or the session was terminated.
_TRANSIENT_SQLSTATES = frozenset({"25P03", "57P01", "57P02", "57P03"})
#: PostgreSQL's "lock not available": ``lock_timeout`` expired (or ``NOWAIT``).
_LOCK_NOT_AVAILABLE = "55P03"


def _raise_transient(exc: sa.exc.DBAPIError) -> None:
    """Raise LockTimeout or DatabaseUnavailable for an error worth retrying later; return otherwise."""
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if sqlstate == _LOCK_NOT_AVAILABLE:
        raise LockTimeout(f"database lock not available: {exc.orig}") from exc
    if isinstance(exc, _TRANSIENT) or exc.connection_invalidated or sqlstate in _TRANSIENT_SQLSTATES:
        raise DatabaseUnavailable(f"database unavailable: {exc.orig}") from exc


@contextmanager
def write_transaction(session: Session) -> Iterator[None]:
    """Run the block in a transaction of its own and commit it; roll back on any error.

    A read transaction the caller left open is ended first. On SQLite the transaction starts with
    ``BEGIN IMMEDIATE``, so it holds the write lock from the start and never fails halfway on an upgrade.

    Raises: DatabaseUnavailable for connection loss or lock timeouts (worth retrying; ``LockTimeout``,
        a subclass, when a lock another session holds was waited for in vain).
    """
    if session.in_transaction():
        session.commit()
    try:
        session.connection(execution_options={_IMMEDIATE: True})
        yield
        session.commit()
    except sa.exc.DBAPIError as exc:
        session.rollback()
        _raise_transient(exc)
        raise
    except BaseException:
        session.rollback()
        raise


@contextmanager
def read_transaction(session: Session) -> Iterator[None]:
    """Run reads and end the transaction afterwards if this block started it (no idle snapshot held).

    Raises: DatabaseUnavailable for connection loss or lock timeouts (worth retrying; ``LockTimeout``,
        a subclass, when a lock another session holds was waited for in vain).
    """
    started = not session.in_transaction()
    try:
        yield
    except sa.exc.DBAPIError as exc:
        session.rollback()
        _raise_transient(exc)
        raise
    finally:
        if started and session.in_transaction():
            session.commit()


def dialect_insert(session: Session) -> Callable[..., Any]:
    """``insert`` of the session's dialect (both have ``on_conflict_do_nothing``)."""
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def aware(value: datetime | None, name: str) -> datetime:
    """``value`` (must be timezone-aware) in UTC, or now when None.

    Raises: ValueError for a naive datetime.
    """
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")
    return value.astimezone(UTC)


def nan_to_none(value: float) -> float | None:
    """Store an undefined metric (nan) as NULL."""
    value = float(value)
    return None if math.isnan(value) else value


def none_to_nan(value: float | None) -> float:
    """Read NULL back as nan."""
    return math.nan if value is None else float(value)
