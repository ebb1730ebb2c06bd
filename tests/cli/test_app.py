"""The exit-status contract of the installed ``cmr-monitor`` console script (see ``monitor.cli.app``):
0 success, 1 runtime failure (one ``error:`` line), 2 bad invocation (one line), 3 ``score --fail-on``;
no traceback unless ``--verbose``. Everything runs the real script in a subprocess."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.io.nifti import save_labels
from monitor.qc.labels import Structure
from monitor.sim import remove_structure
from tests.cli.console import cli_env, run_cli
from tests.phantoms import phantom_volume, write_phantom


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["score", "nope"], "no such file or folder: nope"),
        (["score"], "Missing argument"),
        (["score", ".", "--bogus"], "No such option: --bogus"),
        (["score", ".", "--format", "xml"], "'xml' is not one of"),
        (["no-such-command"], "No such command 'no-such-command'"),
        (["export", "--out", "x.txt"], "must end in .csv or .parquet"),
        (["evaluate", "--gt", "nope", "--pred", "a=b", "--out", "r"], "'nope' does not exist"),
    ],
)
def test_a_bad_invocation_exits_2_with_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    ran = run_cli(*args, cwd=tmp_path)
    assert ran.returncode == 2, ran
    assert ran.stderr.count("\n") == 1 and ran.stderr.startswith("error: "), ran.stderr
    assert says in ran.stderr and "--help" in ran.stderr
    assert "Traceback" not in ran.stderr and ran.stdout == ""


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["export", "--out", "x.csv"]])
def test_status_and_export_of_an_empty_or_missing_database_exit_1(tmp_path: Path, command: list[str]) -> None:
    for name in ("missing.db", "empty.db"):
        if name == "empty.db":
            (tmp_path / name).write_bytes(b"")
        ran = run_cli(*command, "--db", f"sqlite:///{tmp_path / name}", cwd=tmp_path)
        assert ran.returncode == 1, ran
        assert re.fullmatch(r"error: StoreError: .*empty database.*cmr-monitor db upgrade.*\n", ran.stderr)
        assert "Traceback" not in ran.stderr
    assert not (tmp_path / "missing.db").exists() and not (tmp_path / "x.csv").exists()


def test_a_runtime_error_names_its_cause_and_verbose_adds_the_traceback(tmp_path: Path) -> None:
    url = "postgresql://nobody@127.0.0.1:1/none"
    ran = run_cli("db", "current", "--db", url, cwd=tmp_path)
    assert ran.returncode == 1
    assert ran.stderr.startswith("error: StoreError: cannot connect to database")
    assert "Traceback" not in ran.stderr
    loud = run_cli("--verbose", "db", "current", "--db", url, cwd=tmp_path)
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr


def test_success_exits_0_and_python_m_is_the_same_app(tmp_path: Path) -> None:
    ran = run_cli("--version", cwd=tmp_path)
    assert ran.returncode == 0 and ran.stdout.startswith("cmr-monitor ")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    assert run_cli("db", "upgrade", "--db", url, cwd=tmp_path).returncode == 0
    status = run_cli("status", "--json", "--db", url, cwd=tmp_path)
    assert status.returncode == 0 and '"by_status"' in status.stdout
    same = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "score", "nope"], capture_output=True, text=True, cwd=tmp_path
    )
    assert same.returncode == 2 and same.stderr.startswith("error: ")


def test_help_texts_are_rendered_whole(tmp_path: Path) -> None:
    """Square brackets in a help text are Rich markup and vanished, leaving a stray ' .'."""
    for command in ("score", "evaluate", "watch", "demo", "dashboard", "status", "export", "train"):
        ran = run_cli(command, "--help", cwd=tmp_path, env=cli_env(COLUMNS="250"))
        assert ran.returncode == 0, ran
        assert not re.search(r"\w \.(\s|$)", ran.stdout), (command, ran.stdout)
    score_help = run_cli("score", "--help", cwd=tmp_path, env=cli_env(COLUMNS="250")).stdout
    assert "(env CMR_MONITOR_CHECKPOINT; default: shipped)" in score_help


@pytest.mark.parametrize("layout", ["empty folder", "folder named like a mask", "only other files"])
def test_score_without_masks_says_so_and_exits_1(tmp_path: Path, layout: str) -> None:
    target = tmp_path / ("case_ED.nii.gz" if layout == "folder named like a mask" else "in")
    target.mkdir()
    if layout == "only other files":
        (target / "notes.txt").write_text("no masks here")
        (target / ".hidden_ED.nii.gz").write_bytes(b"x")
    ran = run_cli("score", str(target), cwd=tmp_path)
    assert ran.returncode == 1, ran
    assert ran.stderr.startswith(f"error: no masks found in {target} ")
    assert ran.stderr.count("\n") == 1 and ran.stdout == ""


@pytest.mark.slow
def test_fail_on_exits_3_and_a_terminal_sees_progress_and_short_paths(tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    gt = phantom_volume(2, n_slices=6)
    save_labels(masks / "site" / "p2_ED.nii.gz", remove_structure(gt.labels, Structure.LV), gt.affine)
    for level in ("erroneous", "suspicious"):
        ran = run_cli(
            "score", str(masks), "--device", "cpu", "--fail-on", level, cwd=tmp_path, stderr_tty=True
        )
        assert ran.returncode == 3, ran
        assert "erroneous: 1" in ran.stdout
        assert "scoring" in ran.stderr and "1/1" in ran.stderr  # the progress bar, on the terminal
        assert "site/p2_ED.nii.gz" in ran.stdout and str(tmp_path) not in ran.stdout  # relative to masks/
    piped = run_cli("score", str(masks), "--device", "cpu", "--format", "json", cwd=tmp_path)
    assert piped.returncode == 0 and "scoring" not in piped.stderr  # --fail-on never; no bar in a pipe
    assert f'"file": "{masks / "site" / "p2_ED.nii.gz"}"' in piped.stdout  # JSON keeps the full path


@pytest.mark.slow
def test_fail_on_passes_a_clean_batch(tmp_path: Path) -> None:
    write_phantom(tmp_path / "good_ED.nii.gz", seed=1)
    ran = run_cli("score", "good_ED.nii.gz", "--device", "cpu", "--fail-on", "suspicious", cwd=tmp_path)
    assert ran.returncode == 0, ran
    assert "ok: 1" in ran.stdout
