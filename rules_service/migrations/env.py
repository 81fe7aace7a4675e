"""Alembic environment: our metadata, the URL from the Config (or the settings)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from rules_service.adapters.database import make_engine
from rules_service.adapters.orm import Base
from rules_service.adapters.partitions import include_name, include_object
from rules_service.config import Settings

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        # Each migration commits on its own, so the locks one takes are released before the
        # next starts: instances still running on the old schema wait for one step, not for
        # the whole upgrade.
        transaction_per_migration=True,
        compare_type=True,
        include_name=include_name,
        include_object=include_object,
    )


def run_migrations_offline() -> None:
    """Emits SQL to stdout instead of running it."""
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"},
                      render_as_batch=_url().startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Runs the migrations on a connection (given by the caller, or made from the URL)."""
    given = config.attributes.get("connection")
    if given is not None:
        _configure(given)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(_url())
    try:
        with engine.connect() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
