"""Fixtures for the store tests: a fresh, migrated database per test on SQLite and on PostgreSQL.

PostgreSQL: the test server of ``tests/pg.py``. One database ``cmrtest_<random>`` is created per session
and dropped at its end (see ``_Postgres``). When the server cannot be reached the PostgreSQL cases are
skipped, except under ``CI=true``, where they fail.
SQLite: a migrated template file per session, copied for each test.
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.qc.labels import STRUCTURES, Structure
from monitor.qc.levels import FlagLevel
from monitor.qc.reasons import ReasonCode
from monitor.qc.records import StructureScore, VolumeScore
from monitor.store import (
    ARTIFACT_INCONSISTENCY,
    ARTIFACT_PGT,
    add_review,
    claim_batch,
    enqueue_file,
    make_engine,
    make_session_factory,
    record_rejection,
    record_scores,
    register_model,
    upgrade,
)
from monitor.store.models import Base
from tests import pg
from tests.pg import backend_fixture, sqlite_template  # noqa: F401  (fixtures)


class _Postgres(pg.Server):
    """One database on the test server for the whole session, dropped at the end.

    Its ``public`` schema is migrated once and emptied before each test that uses it (rows deleted and
    sequences restarted, so ids start at 1 as in a new database); tests that need an empty database get a
    schema of their own, selected with ``search_path`` in the URL. Both are much cheaper than creating
    and dropping a database per test (PostgreSQL checkpoints on every DROP DATABASE).
    """

    def __init__(self, admin_url: sa.URL) -> None:
        super().__init__(admin_url)
        self.name = f"cmrtest_{uuid.uuid4().hex[:12]}"
        self.create_database(self.name)
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
                if "id" in table.c:  # tables keyed by another table's id have no sequence
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
        self.drop_database(self.name)
        super().close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[_Postgres]:
    """The PostgreSQL test database; skips (fails under CI=true) when the server cannot be reached."""
    server = _Postgres(pg.require_admin_url("store"))
    yield server
    server.close()


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


#: The reason codes ``make_score`` gives a structure of each level.
_REASONS = {
    FlagLevel.OK: (),
    FlagLevel.SUSPICIOUS: (ReasonCode.PHD_HIGH,),
    FlagLevel.ERRONEOUS: (ReasonCode.MISSING,),
}


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
                reasons=_REASONS[flag],
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


D1 = datetime(2026, 3, 2, tzinfo=UTC)
D2 = datetime(2026, 3, 3, tzinfo=UTC)
_OK, _SUS, _ERR = FlagLevel.OK, FlagLevel.SUSPICIOUS, FlagLevel.ERRONEOUS
_NAN = math.nan
#: Scored files of the ``populated`` database: key, segmenter, version, scored_at, LV/RV/MYO (pdsc, phd_mm, flag).
SCORED_FILES: tuple[tuple[str, str, str, datetime, dict[Structure, tuple[float, float, FlagLevel]]], ...] = (
    ("f1", "unet", "1.0", D1 + timedelta(hours=8, minutes=10),
     {Structure.LV: (0.90, 4.0, _OK), Structure.RV: (0.85, 6.0, _OK), Structure.MYO: (0.80, 5.0, _OK)}),
    ("f2", "unet", "1.0", D1 + timedelta(hours=8, minutes=40),
     {Structure.LV: (0.88, 5.0, _OK), Structure.RV: (0.40, 30.0, _SUS), Structure.MYO: (0.78, 6.0, _OK)}),
    ("f3", "unet", "1.0", D1 + timedelta(hours=9, minutes=15),
     {Structure.LV: (0.0, _NAN, _ERR), Structure.RV: (0.86, 7.0, _OK), Structure.MYO: (0.75, 8.0, _OK)}),
    ("f4", "unet", "1.0", D2 + timedelta(hours=10),
     {Structure.LV: (0.92, 3.0, _OK), Structure.RV: (0.83, 9.0, _OK), Structure.MYO: (0.81, 4.0, _OK)}),
    ("f5", "unet", "2.0", D2 + timedelta(hours=10, minutes=30),
     {Structure.LV: (0.93, 3.5, _OK), Structure.RV: (0.87, 5.5, _OK), Structure.MYO: (0.45, 20.0, _SUS)}),
    ("f6", "nnunet", "1", D2 + timedelta(hours=11),
     {Structure.LV: (0.95, 2.0, _OK), Structure.RV: (_NAN, _NAN, _ERR), Structure.MYO: (0.84, 3.0, _OK)}),
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Populated:
    """What the ``populated`` fixture put in the database."""

    url: str  #: the database
    ids: dict[str, int]  #: key -> file id: f1..f6 scored, "rejected", "scoring", "pending"
    scored: tuple = SCORED_FILES  #: the scored files' definitions


@pytest.fixture
def populated(db_url: str, session: Session, make_score: Callable[..., VolumeScore]) -> Populated:
    """Nine files: six scored (above), one rejected (unet 1.0, D1 09:30), one scoring (unet 2.0), one
    pending (nnunet 1); f2 reviewed twice (false_alarm on D2 12:00, then confirmed on D2 13:00)."""
    ids: dict[str, int] = {}
    model_id = register_model(session, "9f" * 32, {"epochs": 200, "train": "ACDC"})

    def enqueue(key: str, name: str, version: str, received_at: datetime) -> int:
        ids[key], _ = enqueue_file(
            session,
            path=f"/watch/{name}/{version}/{key}_ED.nii.gz",
            content_hash=f"{key:0>64}",
            case_key=key,
            phase="ED",
            segmenter_name=name,
            segmenter_version=version,
            site="site-A",
            received_at=received_at,
        )
        return ids[key]

    for key, name, version, scored_at, values in SCORED_FILES:
        file_id = enqueue(key, name, version, scored_at - timedelta(minutes=1))
        artifacts = {ARTIFACT_PGT: f"/art/{key}_pgt.nii.gz", ARTIFACT_INCONSISTENCY: f"/art/{key}_xor.nii.gz"}
        record_scores(
            session, file_id, make_score(values), model_id=model_id, artifacts=artifacts, scored_at=scored_at
        )
    rejected = enqueue("rejected", "unet", "1.0", D1 + timedelta(hours=9, minutes=29))
    record_rejection(
        session, rejected, "corrupt", "not a gzip file", rejected_at=D1 + timedelta(hours=9, minutes=30)
    )
    enqueue("scoring", "unet", "2.0", D2 + timedelta(hours=12))
    (claimed,) = claim_batch(session, worker_id="w", limit=5, lease_s=600, now=D2 + timedelta(hours=12))
    assert claimed.file_id == ids["scoring"]
    enqueue("pending", "nnunet", "1", D2 + timedelta(hours=13))
    add_review(
        session, ids["f2"], verdict="false_alarm", reviewer="dr.a", reviewed_at=D2 + timedelta(hours=12)
    )
    add_review(session, ids["f2"], verdict="confirmed", reviewer="dr.b", reviewed_at=D2 + timedelta(hours=13))
    return Populated(url=db_url, ids=ids)
