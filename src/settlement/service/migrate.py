"""Upgrading the database to the latest migration, from code (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from .config import Settings
from .db import make_engine
from .settlements import pgfunctions

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
ADVISORY_LOCK = 7_720_180_101  # serializes concurrent `settlement serve` starts on PostgreSQL


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Brings the database of these settings to ``revision``, in one transaction.

    At head on PostgreSQL it then re-creates the counter's functions whose text is not the one
    generated from the current declaration of the totals (settlements.pgfunctions): they are
    repeatable, so a new total needs no migration of its own for them."""
    engine = make_engine(settings, pooled=False)
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            config = alembic_config(settings.sqlalchemy_url)
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
            if conn.dialect.name == "postgresql" and _at_head(config, conn):
                pgfunctions.refresh(conn)  # the counter's functions, from the totals declared now
    finally:
        engine.dispose()


def _at_head(config: Config, conn: Connection) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(config).get_current_head()
    return MigrationContext.configure(conn).get_current_revision() == head


def current(settings: Settings) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = make_engine(settings, pooled=False)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
