"""The test databases shared by the suites' conftests: the PostgreSQL server and the backend pair.

PostgreSQL: the server at 127.0.0.1:5432 (trust auth, user ``postgres`` or ``root``, maintenance database
``test``), or the admin URL in ``CMR_MONITOR_TEST_POSTGRES_URL``. ``require_admin_url`` skips the calling
fixture's tests when the server cannot be reached, except under ``CI=true``, where they fail. ``Server``
creates and drops the suites' scratch databases; how a suite isolates its tests (a database per session,
a template cloned per test, ...) stays in its conftest.

Fixtures (import them into a conftest to use them there): ``backend`` (``"sqlite"`` or ``"postgresql"``,
the latter marked ``postgres``; test ids ``[sqlite]`` and ``[postgresql]``; the function is
``backend_fixture``, so that parameters named ``backend`` do not shadow the import) and
``sqlite_template``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa

from monitor.store import upgrade
from tests.requirements import skip_or_fail

__all__ = [
    "BACKENDS",
    "URL_VARIABLE",
    "Server",
    "backend_fixture",
    "probe_admin_url",
    "require_admin_url",
    "sqlite_template",
]

#: The environment variable holding the admin URL of the test server (instead of the candidates).
URL_VARIABLE = "CMR_MONITOR_TEST_POSTGRES_URL"
_CANDIDATES = (
    "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "postgresql+psycopg://root@127.0.0.1:5432/test",
)
#: The ``backend`` parameters: PostgreSQL cases carry the ``postgres`` marker.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


def probe_admin_url() -> tuple[sa.URL | None, str]:
    """Find the admin URL of the test server.

    Returns: the first candidate URL (or the one in ``CMR_MONITOR_TEST_POSTGRES_URL``) that connects,
    with the ``psycopg`` driver, and ``""``; or None and why no URL connected."""
    override = os.environ.get(URL_VARIABLE)
    errors = []
    for candidate in (override,) if override else _CANDIDATES:
        url = sa.make_url(candidate).set(drivername="postgresql+psycopg")
        engine = sa.create_engine(url, poolclass=sa.NullPool, connect_args={"connect_timeout": 3})
        try:
            with engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return url, ""
        except sa.exc.SQLAlchemyError as exc:
            errors.append(f"{url.render_as_string(hide_password=True)}: {getattr(exc, 'orig', exc)}")
        finally:
            engine.dispose()
    return None, "; ".join(errors)


def require_admin_url(suite: str) -> sa.URL:
    """Return the admin URL of the test server, or skip the tests that need it (fail under CI=true).

    Args:
        suite: which tests are not run, for the message ("store" gives "PostgreSQL store tests")."""
    admin_url, why = probe_admin_url()
    if admin_url is None:
        skip_or_fail(f"PostgreSQL unreachable, PostgreSQL {suite} tests not run ({why})")
    return admin_url


class Server:
    """An autocommit admin connection to the test server that creates and drops databases."""

    def __init__(self, admin_url: sa.URL) -> None:
        self.admin_url = admin_url
        self._admin = sa.create_engine(admin_url, poolclass=sa.NullPool, isolation_level="AUTOCOMMIT")

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as connection:
            connection.exec_driver_sql(sql)

    def url_of(self, name: str, *, port: int | None = None) -> str:
        """URL of database ``name`` (optionally through another port, e.g. a proxy)."""
        url = self.admin_url.set(database=name)
        if port is not None:
            url = url.set(host="127.0.0.1", port=port)
        return url.render_as_string(hide_password=False)

    def create_database(self, name: str, *, template: str | None = None) -> None:
        """Create database ``name``, empty or as a copy of database ``template``."""
        self._execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing its connections."""
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        """Close the admin connection (the databases stay)."""
        self._admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=BACKENDS, name="backend")
def backend_fixture(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``."""
    return request.param
