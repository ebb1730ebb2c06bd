"""``cmr-monitor dashboard`` as a real process: the installed console script starts a real Streamlit
server, and SIGTERM or SIGINT to the command stop the server too (no orphan keeps the port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from dashboard.launch import wait_for_dashboard
from monitor.telemetry.server import free_port
from tests.cli.console import cli_env, console_script, run_cli

pytestmark = pytest.mark.slow


def _children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(x) for x in text.split()]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_stops_the_streamlit_child(tmp_path: Path, stop_with: signal.Signals) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrated = stop_with == signal.SIGTERM  # SIGINT: on an empty database, which is reported
    if migrated:
        assert run_cli("db", "upgrade", "--db", url, cwd=tmp_path).returncode == 0
    port = free_port()
    out, err = (tmp_path / "out.txt").open("w"), (tmp_path / "err.txt").open("w")
    process = subprocess.Popen(
        [str(console_script()), "dashboard", "--db", url, "--port", str(port), "--artifacts", str(tmp_path)],
        stdout=out,
        stderr=err,
        cwd=tmp_path,
        env=cli_env(),
        start_new_session=True,  # like a service manager: the signal goes to the command only
    )
    try:
        wait_for_dashboard(f"http://127.0.0.1:{port}", timeout_s=120)
        (server,) = _children(process.pid)
        process.send_signal(stop_with)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        out.close()
        err.close()
    deadline = time.monotonic() + 5
    while not _gone(server) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(server), "the Streamlit server outlived the command"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the port is free again
    printed = (tmp_path / "out.txt").read_text()
    assert f"dashboard on http://127.0.0.1:{port}" in printed
    warning = (tmp_path / "err.txt").read_text()
    assert ("cmr-monitor db upgrade" in warning) is not migrated
