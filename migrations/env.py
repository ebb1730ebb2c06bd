"""Alembic environment of the cmr-monitor results database.

Run through the module API (``monitor.store.migrate``, ``cmr-monitor db ...``), which hands a connection
over in ``config.attributes["connection"]``, or with the ``alembic`` command from the repository root
(``alembic -x db=URL upgrade head``; without ``-x db`` the URL comes from ``CMR_MONITOR_DATABASE_URL`` or
the default). Batch mode (``render_as_batch``) lets ALTER-style operations run on SQLite.
"""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

import sqlalchemy as sa
from alembic import context

from monitor.store.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata

if config.config_file_name is not None and config.file_config.has_section("loggers"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _database_url() -> str:
    """URL from ``-x db=URL``, then ``sqlalchemy.url`` in the ini file, then the settings."""
    from_x = context.get_x_argument(as_dictionary=True).get("db")
    if from_x:
        return from_x
    from_ini = config.get_main_option("sqlalchemy.url")
    if from_ini:
        return from_ini
    from monitor.config import get_settings

    return get_settings().database_url


def render_item(type_: str, obj: object, autogen_context: Any) -> str | bool:
    """Render our column types as plain SQLAlchemy types, so revisions never import the models."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    from monitor.store.engine import normalise_url

    context.configure(
        url=normalise_url(_database_url()),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run against the connection handed over by the API, or one opened here."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from monitor.store.migrate import migration_connection

    with migration_connection(_database_url()) as opened:
        _run(opened)


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
