"""Alembic environment: migrates the database of the service's settings (or the URL or
connection the caller put in the Alembic config). Batch mode lets SQLite alter tables."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.db import make_engine, normalize_url
from service.models import SCHEDULER_JOBS_TABLE, Base
from service.settings import Settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return normalize_url(config.get_main_option("sqlalchemy.url") or Settings().database_url)


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate must not offer to drop the table APScheduler's job store owns."""
    return not (type_ == "table" and name == SCHEDULER_JOBS_TABLE)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=_include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
