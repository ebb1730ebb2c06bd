"""Fixtures for the daemon tests: a fresh database per test (SQLite and PostgreSQL), small phantom masks
(the checkpoint snapshot is the session's, ``tests/conftest.py``).

PostgreSQL: the test server of ``tests/pg.py``. A template database migrated to head is made once per
session; each test gets ``CREATE DATABASE ... TEMPLATE`` of it and drops it afterwards. When the server
cannot be reached the PostgreSQL cases are skipped, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.store import upgrade
from tests import pg
from tests.pg import backend_fixture, sqlite_template  # noqa: F401  (fixtures)


class PostgresServer(pg.Server):
    """The test server: a migrated template database, cloned per test."""

    def __init__(self, admin_url: sa.URL) -> None:
        super().__init__(admin_url)
        self.template = f"cmrd_tpl_{uuid.uuid4().hex[:10]}"
        self.create_database(self.template)
        upgrade(self.url_of(self.template))

    def create(self, *, migrated: bool = True) -> str:
        """A new database (a clone of the migrated template, or empty); returns its name."""
        name = f"cmrd_{uuid.uuid4().hex[:12]}"
        self.create_database(name, template=self.template if migrated else None)
        return name

    def drop(self, name: str) -> None:
        self.drop_database(name)

    def close(self) -> None:
        self.drop(self.template)
        super().close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The PostgreSQL test server; skips (fails under CI=true) when it cannot be reached."""
    server = PostgresServer(pg.require_admin_url("daemon"))
    yield server
    server.close()


@pytest.fixture
def pg_database(postgres: PostgresServer) -> Iterator[str]:
    """Name of a fresh PostgreSQL database migrated to head (dropped after the test)."""
    name = postgres.create()
    yield name
    postgres.drop(name)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh database migrated to head."""
    if backend == "sqlite":
        path = tmp_path / "monitor.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    postgres: PostgresServer = request.getfixturevalue("postgres")
    return postgres.url_of(request.getfixturevalue("pg_database"))
