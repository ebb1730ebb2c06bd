"""Fixtures for the dashboard tests: seeded databases on SQLite and PostgreSQL, and AppTest runners.

Each backend gets one database per session, migrated and seeded with ``monitor.sim.seed_history``
(two weeks of simulated scores with reviews, and a few files with NIfTI artifacts). Tests that write (a
review) take a private copy on SQLite and, on PostgreSQL, work on files no other test checks exactly.

PostgreSQL: the test server of ``tests/pg.py``; a database ``cmrdash_<random>`` is created and dropped at
the end. When the server cannot be reached the PostgreSQL cases are skipped, except under ``CI=true``,
where they fail.
"""

from __future__ import annotations

import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from monitor.sim import HistorySummary, seed_history
from monitor.store import upgrade
from tests import pg

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
#: End of the seeded history (fixed, so the numbers do not depend on the day the tests run).
HISTORY_END = datetime(2026, 3, 2, tzinfo=UTC)
HISTORY = {"weeks": 2, "volumes_per_day": 12, "seed": 3, "artifact_files": 3, "end": HISTORY_END}
_ENV = (
    "CMR_MONITOR_DATABASE_URL",
    "CMR_MONITOR_ARTIFACTS_DIR",
    "CMR_MONITOR_DASHBOARD_PASSWORD",
    "CMR_MONITOR_DASHBOARD_DATA_DIRS",
    "CMR_MONITOR_DASHBOARD_REFRESH_S",
    "CMR_MONITOR_LABEL_MAP",
    "CMR_MONITOR_CONFIG",
    "CMR_MONITOR_DASHBOARD_WARM_CACHE_S",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Seeded:
    """A seeded database and what was written into it."""

    backend: str  #: "sqlite" or "postgresql"
    url: str  #: database URL (with password, if any)
    artifacts_dir: Path  #: artifacts (and the rendered masks and images)
    summary: HistorySummary  #: counts and ids written by ``seed_history``


def _seed(url: str, artifacts_dir: Path) -> HistorySummary:
    upgrade(url)
    return seed_history(url, artifacts_dir=artifacts_dir, **HISTORY)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def seeded_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    """A SQLite file seeded once per session (copy it before writing: ``sqlite_copy``)."""
    folder = tmp_path_factory.mktemp("dash-sqlite")
    url = f"sqlite:///{folder / 'seeded.db'}"
    summary = _seed(url, folder / "artifacts")
    return Seeded(backend="sqlite", url=url, artifacts_dir=folder / "artifacts", summary=summary)


@pytest.fixture(scope="session")
def seeded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """A fresh PostgreSQL database, seeded once per session and dropped at the end."""
    server = pg.Server(pg.require_admin_url("dashboard"))
    name = f"cmrdash_{uuid.uuid4().hex[:12]}"
    server.create_database(name)
    url = server.url_of(name)
    folder = tmp_path_factory.mktemp("dash-postgres")
    try:
        summary = _seed(url, folder / "artifacts")
        yield Seeded(backend="postgresql", url=url, artifacts_dir=folder / "artifacts", summary=summary)
    finally:
        _dispose_streamlit_engines()
        server.drop_database(name)
        server.close()


@pytest.fixture(params=pg.BACKENDS)
def seeded(request: pytest.FixtureRequest) -> Seeded:
    """The seeded database of each backend (read-only use)."""
    return request.getfixturevalue("seeded_sqlite" if request.param == "sqlite" else "seeded_postgres")


@pytest.fixture
def writable(seeded: Seeded, tmp_path: Path) -> Seeded:
    """A database a test may write to: a private copy on SQLite, the shared one on PostgreSQL."""
    if seeded.backend != "sqlite":
        return seeded
    source = sa.make_url(seeded.url).database
    target = tmp_path / "copy.db"
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return Seeded(
        backend="sqlite",
        url=f"sqlite:///{target}",
        artifacts_dir=seeded.artifacts_dir,
        summary=seeded.summary,
    )


@pytest.fixture
def dashboard_env(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Set the dashboard's environment (other ``CMR_MONITOR_*`` dashboard variables are removed)."""
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)

    def apply(url: str, artifacts_dir: Path | None = None, **extra: str) -> None:
        monkeypatch.setenv("CMR_MONITOR_DATABASE_URL", url)
        monkeypatch.setenv("CMR_MONITOR_DASHBOARD_WARM_CACHE_S", "0")  # no background thread in AppTest
        if artifacts_dir is not None:
            monkeypatch.setenv("CMR_MONITOR_ARTIFACTS_DIR", str(artifacts_dir))
        for key, value in extra.items():
            monkeypatch.setenv(f"CMR_MONITOR_{key.upper()}", value)

    return apply


@pytest.fixture
def app_test(dashboard_env: Callable[..., None]) -> Callable[..., object]:
    """Build an ``AppTest`` of the dashboard on a database, with empty Streamlit caches."""
    from streamlit.testing.v1 import AppTest

    def build(db: Seeded | str, **extra: str) -> AppTest:
        if isinstance(db, Seeded):
            dashboard_env(db.url, db.artifacts_dir, **extra)
        else:
            dashboard_env(db, **extra)
        _clear_streamlit_caches()
        return AppTest.from_file(APP, default_timeout=60)

    return build


def _clear_streamlit_caches() -> None:
    import streamlit as st

    st.cache_data.clear()


def _dispose_streamlit_engines() -> None:
    """Close the pooled connections the app's cached engines hold (so the test database can go)."""
    import streamlit as st

    from dashboard import data

    try:
        data.session_factory.clear()
    finally:
        st.cache_resource.clear()


class FakePopen:
    """Stands for ``subprocess.Popen``: records the command and its keyword arguments."""

    returncode = 0

    def __init__(self, command: list[str], **kwargs: Any) -> None:
        self.command = command
        self.kwargs = kwargs

    def wait(self, timeout: float | None = None) -> int:
        return 0

    def poll(self) -> int:
        return 0


@pytest.fixture
def popen(monkeypatch: pytest.MonkeyPatch) -> list[FakePopen]:
    made: list[FakePopen] = []

    def fake(command: list[str], **kwargs: Any) -> FakePopen:
        made.append(FakePopen(command, **kwargs))
        return made[-1]

    monkeypatch.setattr(subprocess, "Popen", fake)
    return made
