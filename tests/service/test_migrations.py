"""Alembic from an empty database, on SQLite and on PostgreSQL; the models and the migration agree."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from service_helpers import fresh_database_url, requires_postgres
from sqlalchemy import inspect, text

from settlement.service.config import Settings
from settlement.service.db import make_engine
from settlement.service.migrate import alembic_config, current, upgrade
from settlement.service.models import metadata
from settlement.service.settlements import pgfunctions
from settlement.service.settlements.pgfunctions import counter_reverse_body, counter_settle_body


def _counter_functions(engine: Any) -> int:
    """How many counter_settle functions (migration 0002, PostgreSQL only) the database has."""
    if engine.dialect.name != "postgresql":
        return 0
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM pg_proc WHERE proname = 'counter_settle'")).scalar_one())


def _stored_bodies(engine: Any) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT proname, prosrc FROM pg_proc WHERE proname IN ('counter_settle', 'counter_reverse')")
        ).all()
    return {name: body for name, body in rows}


def _generated_bodies() -> dict[str, str]:
    return {"counter_settle": counter_settle_body(), "counter_reverse": counter_reverse_body()}


def _check(url: str) -> None:
    settings = Settings(database_url=url)
    upgrade(settings)
    upgrade(settings)  # idempotent
    assert current(settings) == "0014"
    engine = make_engine(settings, pooled=False)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "target_metadata": metadata})
            assert compare_metadata(context, metadata) == []  # autogenerate would find nothing
            tables = set(inspect(conn).get_table_names())
        assert set(metadata.tables) <= tables
        assert _counter_functions(engine) == (1 if engine.dialect.name == "postgresql" else 0)
        if engine.dialect.name == "postgresql":
            assert _stored_bodies(engine) == _generated_bodies()
        # and back down to nothing, and up again
        config = alembic_config(settings.sqlalchemy_url)
        command.downgrade(config, "base")
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) <= {"alembic_version"}
        assert _counter_functions(engine) == 0
        upgrade(settings)
        assert current(settings) == "0014"
    finally:
        engine.dispose()


def test_migration_from_empty_on_sqlite(tmp_path):
    url, cleanup = fresh_database_url(tmp_path, postgres=False)
    try:
        _check(url)
    finally:
        cleanup()


@requires_postgres
def test_migration_from_empty_on_postgres(tmp_path):
    url, cleanup = fresh_database_url(tmp_path, postgres=True)
    try:
        _check(url)
    finally:
        cleanup()


def test_upgrade_works_from_the_installed_package_path():
    from settlement.service.migrate import MIGRATIONS

    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    names = sorted(p.name for p in (MIGRATIONS / "versions").glob("*.py"))
    assert [name[:5] for name in names] == [f"{i:04d}_" for i in range(1, len(names) + 1)]
    assert names[:3] == ["0001_initial_schema.py", "0002_counter_settle_function.py", "0003_listing_index_partial.py"]


@pytest.mark.parametrize("url", ["postgresql://u@h/db", "postgres://u@h/db"])
def test_postgres_urls_use_psycopg3(url):
    assert Settings(database_url=url).sqlalchemy_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize("postgres", [False, pytest.param(True, marks=requires_postgres)])
def test_pool_rows_of_0001_survive_the_shards_and_back(tmp_path, postgres):
    # a database settled under 0001 (one pool row per fund-year) upgraded to the shards keeps its use
    # as shard 0 (no allowance: the locked way spreads one), and going back sums the shards again
    url, cleanup = fresh_database_url(tmp_path, postgres=postgres)
    settings = Settings(database_url=url)
    engine = make_engine(settings, pooled=False)
    try:
        upgrade(settings, "0001")
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO fund_pools (fund_id, policy_year, used) VALUES ('f', 2019, 700)"))
        upgrade(settings)
        with engine.begin() as conn:
            rows = conn.execute(text("SELECT shard, used, allowance, pool FROM fund_pools")).all()
            assert [tuple(r) for r in rows] == [(0, 700, None, None)]
            conn.execute(
                text("INSERT INTO fund_pools (fund_id, policy_year, shard, used, allowance, pool)"
                     " VALUES ('f', 2019, 1, 300, 500, 1000)")
            )
        command.downgrade(alembic_config(settings.sqlalchemy_url), "0001")
        with engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text("SELECT fund_id, policy_year, used FROM fund_pools"))] == [
                ("f", 2019, 1000)
            ]
    finally:
        engine.dispose()
        cleanup()


@requires_postgres
def test_the_counter_functions_are_regenerated_from_the_declared_totals(tmp_path):
    # the functions are repeatable: an upgrade that ends at head re-creates each one whose text in
    # the database is not the one generated from engine.totals now (a new total: its column lists)
    url, cleanup = fresh_database_url(tmp_path, postgres=True)
    settings = Settings(database_url=url)
    engine = make_engine(settings, pooled=False)
    try:
        upgrade(settings)
        assert _stored_bodies(engine) == _generated_bodies()
        # a stale text (as a database migrated by an older release would have) is replaced
        with engine.begin() as conn:
            conn.execute(text(pgfunctions.statements()["counter_reverse"].replace("'already'", "'done'")))
        assert _stored_bodies(engine)["counter_reverse"] != counter_reverse_body()
        upgrade(settings)
        assert _stored_bodies(engine) == _generated_bodies()
    finally:
        engine.dispose()
        cleanup()


def test_a_declared_total_reaches_the_counter_functions():
    from settlement.engine.totals import TOTALS, Total

    declared = (*TOTALS, Total("extra_paid", "extra", None, "basic"), Total("other_x", "other", "x", "basic"))
    settle, reverse = counter_settle_body(declared), counter_reverse_body(declared)
    n = len(TOTALS)
    assert f"extra_paid = extra_paid + p_delta_totals[{n + 1}]" in settle
    assert f"other_x = other_x + p_delta_totals[{n + 2}]" in settle
    assert "a.extra_paid,\n        a.other_x] INTO v_totals" in settle
    assert f"VALUES (p_person_id, p_year, {', '.join(['0'] * (n + 2))})" in settle
    assert "extra_paid = extra_paid - coalesce((v_py ->> 'extra')::bigint, 0)" in reverse
    assert "other_x = other_x - coalesce((v_py -> 'other' ->> 'x')::bigint, 0)" in reverse
    assert counter_settle_body() != settle and "extra_paid" not in counter_settle_body()
