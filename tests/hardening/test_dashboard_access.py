"""Dashboard access: what ``tests/dashboard`` does not already cover.

Covered there: login required when a password is set (``test_pages.py::test_login_required_when_password_set``,
``..._from_streamlit_secrets``), paths from the database resolved inside the configured folders only
(``test_viewer.py::test_resolve_inside_refuses``: absolute outside, ``..``, symlink out, NUL), and the
case page refusing artifacts outside them (``test_pages.py::test_case_refuses_files_outside_configured_folders``).

Added here: hostile ``file_id`` values in the URL, and database paths that try prefix tricks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboard.viewer import resolve_inside
from tests.dashboard.conftest import app_test, dashboard_env, seeded_sqlite  # noqa: F401  (fixtures)

_HOSTILE_IDS = [
    "../../etc/passwd",
    "1 OR 1=1",
    "1;DROP TABLE mask_files",
    "-1",
    "0",
    "99999999999999999999999999",
    "1e3",
    "0x10",
    "%2e%2e%2f",
    "\u0663",  # ARABIC-INDIC DIGIT THREE: isdigit() and int() agree
]


@pytest.mark.parametrize("raw", _HOSTILE_IDS)
def test_hostile_file_id_in_the_url(seeded_sqlite, app_test, raw: str) -> None:  # noqa: F811
    at = app_test(seeded_sqlite).run()
    at.query_params["file_id"] = raw
    at.switch_page("views/case.py").run()
    assert not at.exception, at.exception


def test_superscript_digit_file_id_in_the_url(seeded_sqlite, app_test) -> None:  # noqa: F811
    at = app_test(seeded_sqlite).run()
    at.query_params["file_id"] = "\u00b2"
    at.switch_page("views/case.py").run()
    assert not at.exception


def test_database_paths_cannot_escape_by_prefix_or_link(tmp_path: Path) -> None:
    root = tmp_path / "artifacts"
    (root / "000000").mkdir(parents=True)
    (root / "000000" / "1_pgt.nii.gz").write_bytes(b"x")
    sibling = tmp_path / "artifacts-evil"  # shares the root's name as a string prefix
    sibling.mkdir()
    (sibling / "secret.nii.gz").write_bytes(b"x")
    outside_dir = tmp_path / "elsewhere"
    outside_dir.mkdir()
    (outside_dir / "secret.nii.gz").write_bytes(b"x")
    (root / "linked").symlink_to(outside_dir, target_is_directory=True)
    assert resolve_inside(root / "000000" / "1_pgt.nii.gz", [root]) is not None
    for raw in (
        str(sibling / "secret.nii.gz"),
        "../artifacts-evil/secret.nii.gz",
        str(root / "linked" / "secret.nii.gz"),
        "linked/secret.nii.gz",
        "/etc/passwd",
        "000000/../../elsewhere/secret.nii.gz",
    ):
        assert resolve_inside(raw, [root]) is None, raw
