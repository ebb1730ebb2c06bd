"""``cmr-monitor backfill`` through the installed console script: bad input fails before Ray starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The installed console script (next to the interpreter), else the module.
_SCRIPT = Path(sys.executable).with_name("cmr-monitor")
_CLI = [str(_SCRIPT)] if _SCRIPT.is_file() else [sys.executable, "-m", "monitor.cli"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*_CLI, *args], capture_output=True, text=True, timeout=180, cwd=cwd)


def test_a_manifest_without_a_path_column_exits_1_with_the_reason(tmp_path: Path) -> None:
    manifest = tmp_path / "list.csv"
    manifest.write_text("file,site\na.nii.gz,leeds\n")
    result = _run("backfill", str(manifest), "--db", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: SourceError: manifest") and "no 'path' column" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.db").exists()  # nothing was started or created


def test_a_missing_source_is_a_usage_error(tmp_path: Path) -> None:
    result = _run("backfill", str(tmp_path / "nope"), cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
