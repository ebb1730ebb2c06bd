"""Tests of ``monitor.cli.db`` (``db``, ``status``, ``export``) through the application, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from monitor.cli import app as cli_app
from monitor.config import get_settings
from monitor.store import current, head_revision

if TYPE_CHECKING:
    from tests.store.conftest import Populated


@pytest.fixture
def app() -> typer.Typer:
    """The ``cmr-monitor`` application."""
    return cli_app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Reload settings around a test that changes the environment."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_db_upgrade_current_downgrade(app: typer.Typer, runner: CliRunner, empty_url: str) -> None:
    head = head_revision()
    result = runner.invoke(app, ["db", "current", "--db", empty_url])
    assert result.exit_code == 0, result.output
    assert f"<empty> (this version needs {head})" in result.output

    result = runner.invoke(app, ["db", "upgrade", "--db", empty_url])
    assert result.exit_code == 0, result.output
    assert f"schema <empty> -> {head}" in result.output
    assert current(empty_url) == head

    result = runner.invoke(app, ["db", "current", "--db", empty_url])
    assert f"{head} (up to date)" in result.output

    result = runner.invoke(app, ["db", "downgrade", "base", "--db", empty_url])
    assert result.exit_code == 0, result.output
    assert f"schema {head} -> <empty>" in result.output
    assert current(empty_url) is None


def test_db_url_falls_back_to_settings(
    app: typer.Typer, runner: CliRunner, empty_url: str, monkeypatch: pytest.MonkeyPatch, fresh_settings: None
) -> None:
    monkeypatch.setenv("CMR_MONITOR_DATABASE_URL", empty_url)
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert current(empty_url) == head_revision()


def test_help_names_the_environment_variable(app: typer.Typer, runner: CliRunner) -> None:
    for command in (["status"], ["export"], ["db", "upgrade"], ["db", "downgrade"], ["db", "current"]):
        result = runner.invoke(app, [*command, "--help"], terminal_width=200)
        assert result.exit_code == 0
        assert "CMR_MONITOR_DATABASE_URL" in result.output, command


def test_status_json(app: typer.Typer, runner: CliRunner, populated: Populated) -> None:
    result = runner.invoke(app, ["status", "--db", populated.url, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["total"] == 9
    assert data["by_status"] == {"pending": 1, "scoring": 1, "scored": 6, "rejected": 1}
    assert data["by_flag"] == {"ok": 2, "suspicious": 2, "erroneous": 2}
    assert data["last_scored_at"] == "2026-03-03T11:00:00+00:00"
    per = {(s["segmenter_name"], s["segmenter_version"]): s for s in data["segmenters"]}
    assert per[("unet", "1.0")]["by_status"]["scored"] == 4
    assert per[("unet", "1.0")]["by_status"]["rejected"] == 1
    assert per[("unet", "1.0")]["last_scored_at"] == "2026-03-03T10:00:00+00:00"
    assert per[("nnunet", "1")]["by_flag"]["erroneous"] == 1


def test_status_table(app: typer.Typer, runner: CliRunner, populated: Populated) -> None:
    result = runner.invoke(app, ["status", "--db", populated.url], terminal_width=120)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    unet1 = [line.split() for line in lines if line.split()[:2] == ["unet", "1.0"]]
    # queue table: pending scoring scored rejected, last score; flag table: ok suspicious erroneous, rate
    assert unet1[0][:6] == ["unet", "1.0", "0", "0", "4", "1"]
    assert unet1[0][6:] == ["2026-03-03", "10:00"]
    assert unet1[1] == ["unet", "1.0", "2", "1", "1", "50.0%"]
    total = [line.split() for line in lines if line.split()[:1] == ["all"]]
    assert total[0][1:5] == ["1", "1", "6", "1"]
    assert total[1][1:] == ["2", "2", "2", "66.7%"]


def test_status_refuses_unmigrated_database(app: typer.Typer, runner: CliRunner, empty_url: str) -> None:
    result = runner.invoke(app, ["status", "--db", empty_url])
    assert result.exit_code == 1
    assert "this version needs" in result.output
    assert "cmr-monitor db upgrade --db" in result.output


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export(
    app: typer.Typer, runner: CliRunner, populated: Populated, tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"export{suffix}"
    result = runner.invoke(app, ["export", "--db", populated.url, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote 21 rows to {out}" in result.output
    frame = pd.read_csv(out) if suffix == ".csv" else pd.read_parquet(out)
    assert len(frame) == 21
    assert frame["file_id"].nunique() == 9
    assert (frame["status"] == "scored").sum() == 18
    assert (frame["structure_flag"] == "erroneous").sum() == 2
    assert frame["pdsc"].count() == 17  # 18 scored structures, f6's RV pdsc undefined
    assert frame.loc[frame["case_key"] == "f4", "pdsc"].tolist() == [0.92, 0.83, 0.81]

    only = tmp_path / f"rejected{suffix}"
    result = runner.invoke(app, ["export", "--db", populated.url, "--out", str(only), "--status", "rejected"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 rows" in result.output


@pytest.mark.parametrize("backend", ["sqlite"])
def test_export_usage_errors(app: typer.Typer, runner: CliRunner, db_url: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "--db", db_url, "--out", str(tmp_path / "x.xlsx")])
    assert result.exit_code == 2
    result = runner.invoke(
        app, ["export", "--db", db_url, "--out", str(tmp_path / "x.csv"), "--status", "done"]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize("backend", ["sqlite"])
def test_db_downgrade_to_unknown_revision(app: typer.Typer, runner: CliRunner, db_url: str) -> None:
    result = runner.invoke(app, ["db", "downgrade", "nonsense", "--db", db_url])
    assert result.exit_code == 1
    assert "cannot migrate to revision 'nonsense'" in result.output
    assert current(db_url) == head_revision()
