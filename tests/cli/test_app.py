"""The console entry point (``cmr-monitor``, ``python -m monitor.cli``): exit codes and error output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monitor.io.nifti import save_labels
from monitor.qc.labels import Structure
from monitor.sim import remove_structure
from tests.phantoms import phantom_volume


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )


def test_usage_error_exits_2_without_a_traceback(tmp_path: Path) -> None:
    result = _run("score", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2
    assert "no such file or folder" in result.stderr and "Traceback" not in result.stderr
    assert _run("no-such-command", cwd=tmp_path).returncode == 2


def test_error_inside_a_command_exits_1_with_its_cause(tmp_path: Path) -> None:
    result = _run("db", "current", "--db", "postgresql://nobody@127.0.0.1:1/none", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: StoreError: cannot connect to database")
    assert "Traceback" not in result.stderr


def test_fail_on_exit_code_reaches_the_shell(tmp_path: Path) -> None:
    gt = phantom_volume(2)
    save_labels(tmp_path / "p2_ED.nii.gz", remove_structure(gt.labels, Structure.LV), gt.affine)
    result = _run(
        "score", str(tmp_path), "--device", "cpu", "--fail-on", "erroneous", "--format", "json", cwd=tmp_path
    )
    assert result.returncode == 3, result.stderr
    assert '"flag": "erroneous"' in result.stdout
