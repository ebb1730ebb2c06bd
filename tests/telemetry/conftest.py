"""Fixtures of the telemetry and deployment tests.

The databases (a fresh SQLite file or PostgreSQL database per test, migrated to head) are the daemon
tests' fixtures, re-exported here so that both suites make them the same way; the checkpoint snapshot is
the session's (``tests/conftest.py``).
``prometheus`` and ``promtool`` are the Debian binaries (scripts/test.sh installs them): tests that need
them are skipped when they are missing, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.daemon.conftest import (  # noqa: F401  (fixtures, re-exported)
    backend_fixture,
    db_url,
    pg_database,
    postgres,
    sqlite_template,
)
from tests.requirements import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def require_binary(name: str) -> str:
    """Path of an executable on PATH; skips the test without it (fails under CI=true)."""
    found = shutil.which(name)
    if found is None:
        skip_or_fail(f"{name} not found on PATH (Debian package prometheus; scripts/test.sh installs it)")
    return found


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path of ``promtool``."""
    return require_binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    """Path of the ``prometheus`` server."""
    return require_binary("prometheus")
