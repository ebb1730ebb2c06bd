"""Tests of monitor/store/migrate.py and migrations/: one head, up/down/up, models == migrated schema."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import monitor
from monitor.errors import StoreError
from monitor.store import check_at_head, current, downgrade, head_revision, make_engine, upgrade
from monitor.store.migrate import alembic_config, migrations_dir
from monitor.store.models import Base

REPO_ROOT = Path(monitor.__file__).resolve().parent.parent
TABLES = set(Base.metadata.tables)


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_migrations_have_a_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1
    assert head_revision() == heads[0]


def test_migrations_found_from_any_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert migrations_dir() == REPO_ROOT / "migrations"
    assert (migrations_dir() / "env.py").is_file()


def test_upgrade_downgrade_upgrade(empty_url: str) -> None:
    assert current(empty_url) is None
    upgrade(empty_url)
    assert current(empty_url) == head_revision()
    assert _tables(empty_url) == TABLES
    check_at_head(empty_url)

    downgrade(empty_url, "base")
    assert current(empty_url) is None
    assert _tables(empty_url) == set()

    upgrade(empty_url, "head")
    assert current(empty_url) == head_revision()
    assert _tables(empty_url) == TABLES


def test_models_match_migrated_schema(db_url: str) -> None:
    assert _schema_diff(db_url) == []


def test_check_at_head_on_empty_database_says_how_to_fix(empty_url: str) -> None:
    with pytest.raises(StoreError) as caught:
        check_at_head(empty_url)
    message = str(caught.value)
    assert f"this version needs {head_revision()}" in message
    assert "database schema is at nothing" in message
    assert "run `cmr-monitor db upgrade --db " in message


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_check_at_head_hides_password(empty_url: str) -> None:
    url = sa.make_url(empty_url)
    with_password = url.set(password="s3cret-pw").render_as_string(hide_password=False)
    with pytest.raises(StoreError) as caught:
        check_at_head(with_password)  # trust auth ignores the password
    assert "s3cret-pw" not in str(caught.value)
    assert "***" in str(caught.value)


def test_check_at_head_on_unknown_revision(empty_url: str) -> None:
    upgrade(empty_url)
    engine = make_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    engine.dispose()
    with pytest.raises(StoreError, match="database schema is at ffffffffffff, which this version"):
        check_at_head(empty_url)


def test_unreachable_database_is_a_store_error() -> None:
    with pytest.raises(StoreError, match="cannot connect to database"):
        current("postgresql://postgres:pw@127.0.0.1:1/nothing")


def test_alembic_command_line_check(db_url: str) -> None:
    """Developers' path: `alembic check` from the repository root with alembic.ini (no drift)."""
    result = subprocess.run(
        [sys.executable, "-m", "alembic", "-x", f"db={db_url}", "check"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert "No new upgrade operations detected" in result.stdout + result.stderr


def test_current_does_not_create_a_missing_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    assert current(f"sqlite:///{missing}") is None
    with pytest.raises(StoreError, match="database schema is at nothing"):
        check_at_head(f"sqlite:///{missing}")
    assert not missing.exists()
