"""Fixtures for the daemon tests: a fresh database per test (SQLite and PostgreSQL), a checkpoint,
small phantom masks.

PostgreSQL: the server at 127.0.0.1:5432 (trust auth, user ``postgres`` or ``root``, maintenance
database ``test``), or the admin URL in ``CMR_MONITOR_TEST_POSTGRES_URL``. A template database migrated
to head is made once per session; each test gets ``CREATE DATABASE ... TEMPLATE`` of it and drops it
afterwards. When the server cannot be reached the PostgreSQL cases are skipped, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.store import upgrade

_PG_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


class PostgresServer:
    """The test server: a migrated template database, cloned per test."""

    def __init__(self, admin_url: sa.URL) -> None:
        self.admin_url = admin_url
        self._admin = sa.create_engine(admin_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
        self.template = f"cmrd_tpl_{uuid.uuid4().hex[:10]}"
        self._execute(f'CREATE DATABASE "{self.template}"')
        upgrade(self.url_of(self.template))

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as connection:
            connection.exec_driver_sql(sql)

    def url_of(self, name: str, *, port: int | None = None) -> str:
        """URL of database ``name`` (optionally through another port, e.g. a proxy)."""
        url = self.admin_url.set(database=name)
        if port is not None:
            url = url.set(host="127.0.0.1", port=port)
        return url.render_as_string(hide_password=False)

    def create(self, *, migrated: bool = True) -> str:
        """A new database (a clone of the migrated template, or empty); returns its name."""
        name = f"cmrd_{uuid.uuid4().hex[:12]}"
        self._execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{self.template}"' if migrated else ""))
        return name

    def drop(self, name: str) -> None:
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        self.drop(self.template)
        self._admin.dispose()


def _probe_postgres() -> tuple[sa.URL | None, str]:
    override = os.environ.get("CMR_MONITOR_TEST_POSTGRES_URL")
    errors = []
    for candidate in (override,) if override else _PG_CANDIDATES:
        url = sa.make_url(candidate).set(drivername="postgresql+psycopg")
        engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return url, ""
        except sa.exc.SQLAlchemyError as exc:
            errors.append(f"{url.render_as_string(hide_password=True)}: {getattr(exc, 'orig', exc)}")
        finally:
            engine.dispose()
    return None, "; ".join(errors)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """The PostgreSQL test server; skips (fails under CI=true) when it cannot be reached."""
    admin_url, why = _probe_postgres()
    if admin_url is None:
        message = f"PostgreSQL unreachable, PostgreSQL daemon tests not run ({why})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires them", pytrace=False)
        pytest.skip(message)
    server = PostgresServer(admin_url)
    yield server
    server.close()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return request.param


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


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A snapshot of the shipped checkpoint (it may be rewritten by training while tests run), or an
    untrained autoencoder when none is shipped: the daemon tests need a model, not a good one."""
    from monitor.model import CheckpointMeta, ConvAutoencoder, default_checkpoint_path, save_checkpoint

    target = tmp_path_factory.mktemp("checkpoint") / "ca.pt"
    shipped = default_checkpoint_path()
    if shipped.is_file():
        shutil.copyfile(shipped, target)
    else:
        save_checkpoint(target, ConvAutoencoder(dropout=0.0), CheckpointMeta(dropout=0.0))
    return target
