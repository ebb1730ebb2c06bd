"""Fixtures of the command-line tests: the store suite's databases on SQLite and PostgreSQL, and the
dashboard suite's fake server process."""

from tests.dashboard.conftest import popen  # noqa: F401  (fixture)
from tests.pg import backend_fixture, sqlite_template  # noqa: F401  (fixtures)
from tests.store.conftest import (  # noqa: F401  (fixtures)
    db_url,
    empty_url,
    engine,
    make_score,
    populated,
    postgres,
    session,
)
