"""Tests of ``cmr-monitor dashboard`` through the application (the server process is faked)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from tests.dashboard.conftest import FakePopen


def test_dashboard_command(popen: list[FakePopen], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CMR_MONITOR_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'none.db'}"
    result = CliRunner().invoke(
        app, ["dashboard", "--db", url, "--port", "8555", "--artifacts", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert "dashboard on http://127.0.0.1:8555" in result.output
    assert "cmr-monitor db upgrade" in result.output  # an empty database is reported, the page says so too
    assert popen[0].kwargs["env"]["CMR_MONITOR_DATABASE_URL"] == url
    help_text = CliRunner().invoke(app, ["dashboard", "--help"]).output
    assert "--db" in help_text and "--port" in help_text and "--host" in help_text
