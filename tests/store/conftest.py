"""Fixtures for the store tests: a fresh, migrated database per test on SQLite and on PostgreSQL.

PostgreSQL: the server at 127.0.0.1:5432 (trust auth, user ``postgres`` or ``root``, maintenance database
``test``), or the admin URL in ``CMR_MONITOR_TEST_POSTGRES_URL``. One database ``cmrtest_<random>`` is
created per session and dropped at its end (see ``_Postgres``). When the server cannot be reached the
PostgreSQL cases are skipped, except under ``CI=true``, where they fail.
SQLite: a migrated template file per session, copied for each test.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.labels import STRUCTURES, Structure
from monitor.records import FlagLevel, StructureScore, VolumeScore
from monitor.store import make_engine, make_session_factory, upgrade
from monitor.store.models import Base

_PG_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def _probe_postgres() -> tuple[sa.URL | None, str]:
    """The first admin URL that connects, or None and why none did."""
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


class _Postgres:
    """One database on the test server for the whole session, dropped at the end.

    Its ``public`` schema is migrated once and emptied before each test that uses it (rows deleted and
    sequences restarted, so ids start at 1 as in a new database); tests that need an empty database get a
    schema of their own, selected with ``search_path`` in the URL. Both are much cheaper than creating
    and dropping a database per test (PostgreSQL checkpoints on every DROP DATABASE).
    """

    def __init__(self, admin_url: sa.URL) -> None:
        self.admin_url = admin_url
        self.name = f"cmrtest_{uuid.uuid4().hex[:12]}"
        self._admin = sa.create_engine(admin_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
        self.url = admin_url.set(database=self.name)
        self._engine = sa.create_engine(self.url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")
        self._migrated = False

    def migrated_url(self) -> str:
        """URL of the migrated ``public`` schema, emptied."""
        if not self._migrated:
            upgrade(self.url)
            self._migrated = True
        with self._engine.connect() as connection:
            connection.exec_driver_sql("SET lock_timeout = '10s'")
            for table in reversed(Base.metadata.sorted_tables):
                connection.exec_driver_sql(f"DELETE FROM {table.name}")
                connection.exec_driver_sql(f"ALTER SEQUENCE {table.name}_id_seq RESTART")
        return self.url.render_as_string(hide_password=False)

    def create_schema(self) -> tuple[str, str]:
        """A new empty schema: (its name, a URL whose search_path is only that schema)."""
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with self._engine.connect() as connection:
            connection.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return schema, url.render_as_string(hide_password=False)

    def drop_schema(self, schema: str) -> None:
        with self._engine.connect() as connection:
            connection.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')

    def close(self) -> None:
        self._engine.dispose()
        with self._admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        self._admin.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[_Postgres]:
    """The PostgreSQL test database; skips (fails under CI=true) when the server cannot be reached."""
    admin_url, why = _probe_postgres()
    if admin_url is None:
        message = f"PostgreSQL unreachable, PostgreSQL store tests not run ({why})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires them", pytrace=False)
        pytest.skip(message)
    server = _Postgres(admin_url)
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
def empty_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database (never migrated)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    postgres: _Postgres = request.getfixturevalue("postgres")
    schema, url = postgres.create_schema()
    yield url
    postgres.drop_schema(schema)


@pytest.fixture
def db_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of an empty database migrated to head."""
    if backend == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    postgres: _Postgres = request.getfixturevalue("postgres")
    return postgres.migrated_url()


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    """Engine on the fresh migrated database."""
    created = make_engine(db_url)
    yield created
    created.dispose()


@pytest.fixture
def session(engine: sa.Engine) -> Iterator[Session]:
    """A session on the fresh migrated database."""
    with make_session_factory(engine)() as opened:
        yield opened


@pytest.fixture
def make_score() -> Callable[..., VolumeScore]:
    """Build a ``VolumeScore`` from per-structure (pdsc, phd_mm, flag) with the volume flag the worst."""

    def build(
        values: dict[Structure, tuple[float, float, FlagLevel]] | None = None,
        *,
        shape: tuple[int, int, int] = (10, 224, 256),
        spacing_mm: tuple[float, float, float] = (10.0, 1.5625, 1.5625),
    ) -> VolumeScore:
        values = values or {s: (0.9, 4.0, FlagLevel.OK) for s in STRUCTURES}
        voxel_ml = math.prod(spacing_mm) / 1000.0
        structures = tuple(
            StructureScore(
                structure=s,
                pdsc=pdsc,
                phd_mm=phd,
                flag=flag,
                reasons=() if flag == FlagLevel.OK else (f"{s} {flag}",),
                mask_voxels=1000 + i,
                pgt_voxels=1100 + i,
                mask_volume_ml=(1000 + i) * voxel_ml,
            )
            for i, (s, (pdsc, phd, flag)) in enumerate(values.items())
        )
        worst = max((s.flag for s in structures), key=lambda f: f.severity)
        return VolumeScore(
            structures=structures,
            flag=worst,
            shape=shape,
            spacing_mm=spacing_mm,
            slices_scored=shape[0] - 2,
            timings_s={"model_s": 0.05},
        )

    return build
