"""``dashboard.launch`` (the launcher's environment and command line), the dashboard's settings and auth."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dashboard import launch
from dashboard.auth import configured_password, password_matches
from dashboard.config import DashboardSettings
from tests.dashboard.conftest import FakePopen


def test_launch_passes_settings_in_the_environment(popen: list[FakePopen], tmp_path: Path) -> None:
    url = "postgresql://cmr:hunter2@db.example/cmr"
    launch.launch_dashboard(
        url,
        port=8600,
        host="127.0.0.1",
        artifacts_dir=tmp_path,
        data_dirs=[tmp_path / "w"],
        password="pw",
        env={},
    )
    (proc,) = popen
    assert proc.command[:5] == [sys.executable, "-m", "streamlit", "run", str(launch.app_path())]
    assert proc.command[proc.command.index("--server.port") + 1] == "8600"
    assert proc.command[proc.command.index("--server.address") + 1] == "127.0.0.1"
    assert "hunter2" not in " ".join(proc.command)  # the URL is never on the command line
    env = proc.kwargs["env"]
    assert env["CMR_MONITOR_DATABASE_URL"] == url
    assert env["CMR_MONITOR_ARTIFACTS_DIR"] == str(tmp_path.resolve())
    assert env["CMR_MONITOR_DASHBOARD_DATA_DIRS"] == str((tmp_path / "w").resolve())
    assert env["CMR_MONITOR_DASHBOARD_PASSWORD"] == "pw"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(launch.app_path().parent.parent)


def test_launch_rejects_bad_port() -> None:
    with pytest.raises(ValueError, match="port"):
        launch.launch_dashboard("sqlite:///x.db", port=0)


def test_settings_split_data_dirs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CMR_MONITOR_DASHBOARD_DATA_DIRS", f"{tmp_path / 'a'}{os.pathsep}{tmp_path / 'b'}")
    monkeypatch.setenv("CMR_MONITOR_DASHBOARD_PASSWORD", "pw")
    monkeypatch.setenv("CMR_MONITOR_ARTIFACTS_DIR", str(tmp_path / "art"))
    settings = DashboardSettings()
    assert settings.allowed_roots == (tmp_path / "art", tmp_path / "a", tmp_path / "b")
    assert settings.dashboard_password is not None and settings.dashboard_password.get_secret_value() == "pw"
    assert "pw" not in repr(settings)


def test_password_helpers() -> None:
    assert password_matches("s3cret", "s3cret") and not password_matches("s3cre", "s3cret")
    assert password_matches("pässwörd", "pässwörd")
    assert configured_password({"dashboard_password": "a"}, "b") == "a"
    assert configured_password({}, "b") == "b"
    assert configured_password({}, None) is None and configured_password({}, "") is None

    class NoSecretsFile:
        def __getitem__(self, key: str) -> str:
            raise FileNotFoundError("no secrets.toml")

    assert configured_password(NoSecretsFile(), "env") == "env"
