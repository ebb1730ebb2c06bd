"""Run the installed ``cmr-monitor`` console script in a subprocess, the way a shell or a CI pipeline does.

The script is the one next to the running interpreter (``.venv/bin/cmr-monitor`` after ``pip install -e
.``); ``stderr_tty=True`` gives the command a pseudo-terminal as stderr (to see what a person at a
terminal sees) and returns what was written to it.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Ran", "console_script", "run_cli"]


@dataclass(frozen=True, slots=True)
class Ran:
    """A finished command: exit status, stdout and stderr (text)."""

    returncode: int
    stdout: str
    stderr: str


def console_script() -> Path:
    """The installed ``cmr-monitor`` script of this environment."""
    script = Path(sys.executable).parent / "cmr-monitor"
    if not script.is_file():
        raise FileNotFoundError(f"{script} is missing: install the package (pip install -e .)")
    return script


def cli_env(**extra: str) -> dict[str, str]:
    """This environment without ``CMR_MONITOR_*`` settings, with a wide terminal and ``extra`` added."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CMR_MONITOR_")}
    env.update({"COLUMNS": "120", "PYTHONUNBUFFERED": "1"}, **extra)
    return env


def run_cli(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 240.0,
    stderr_tty: bool = False,
) -> Ran:
    """Run ``cmr-monitor ARGS`` in ``cwd`` and wait for it."""
    command = [str(console_script()), *args]
    env = env if env is not None else cli_env()
    if not stderr_tty:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=cwd, env=env)
        return Ran(done.returncode, done.stdout, done.stderr)
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=secondary, cwd=cwd, env=env
    )
    os.close(secondary)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([primary], [], [], timeout_s)
            if not ready:
                process.kill()
                raise TimeoutError(f"cmr-monitor {' '.join(args)} wrote nothing for {timeout_s} s")
            try:
                data = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        stdout = process.stdout.read() if process.stdout is not None else b""
        returncode = process.wait(timeout=timeout_s)
    finally:
        os.close(primary)
        if process.stdout is not None:
            process.stdout.close()
    return Ran(returncode, stdout.decode(), b"".join(chunks).decode(errors="replace"))
