"""Alembic environment of the settlement service.

Works from an installed package: :mod:`settlement.service.migrate` builds the
configuration in code (no alembic.ini needed) and hands over a connection.
The bundled ``settlement/alembic.ini`` serves the ``alembic`` command line
(``alembic -c src/settlement/alembic.ini upgrade head``); the URL is then
``SETTLEMENT_DATABASE_URL``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from settlement.service.config import Settings
from settlement.service.db import make_engine
from settlement.service.models import metadata

config = context.config


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url") or Settings().sqlalchemy_url
    context.configure(url=url, target_metadata=metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    settings = Settings(database_url=url) if url else Settings()
    engine = make_engine(settings, pooled=False)
    with engine.connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
