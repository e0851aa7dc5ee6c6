"""Service test fixtures: a fresh database per test session, the app in-process, keys per role.

PostgreSQL is used when reachable (SETTLEMENT_TEST_POSTGRES, default
postgresql://postgres@127.0.0.1:5432/test): a database named
settlement_test_<random> is created through it, migrated, and dropped at the
end. Otherwise the tests run on a SQLite file and the PostgreSQL-only ones
skip, saying why. SETTLEMENT_TEST_DB=sqlite forces SQLite.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import text

from settlement.engine import Tables
from settlement.service.app import create_app, load_tables
from settlement.service.auth.service import create_key
from settlement.service.config import Settings
from settlement.service.db import make_engine
from settlement.service.hospitals.schemas import HospitalIn
from settlement.service.hospitals.service import put_hospital
from settlement.service.migrate import upgrade
from settlement.service.models import metadata

from service_helpers import POSTGRES_SKIP_REASON, fresh_database_url  # isort: skip

with warnings.catch_warnings():
    # starlette asks for httpx2 (not installed); the TestClient works with httpx
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

@pytest.fixture(scope="session")
def using_postgres() -> bool:
    return POSTGRES_SKIP_REASON is None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, using_postgres: bool) -> Iterator[str]:
    url, cleanup = fresh_database_url(tmp_path_factory.mktemp("db"), using_postgres)
    yield url
    cleanup()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    s = Settings(database_url=database_url, db_pool_size=20, db_max_overflow=10)
    upgrade(s)
    return s


@pytest.fixture(scope="session")
def service_tables(settings: Settings) -> Tables:
    return load_tables(settings)


@pytest.fixture(scope="session")
def app(settings: Settings, service_tables: Tables) -> Iterator[FastAPI]:
    application = create_app(settings, tables=service_tables)
    yield application
    application.state.ctx.db.dispose()


def truncate_all(settings: Settings) -> None:
    engine = make_engine(settings, pooled=False)
    try:
        with engine.begin() as conn:
            names = [t.name for t in reversed(metadata.sorted_tables)]
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
            else:
                for name in names:
                    conn.execute(text(f"DELETE FROM {name}"))
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> None:
    """Every test that uses the shared database starts from empty tables."""
    if "app" in request.fixturenames or "settings" in request.fixturenames:
        truncate_all(request.getfixturevalue("settings"))


@pytest.fixture(scope="session")
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


HOSPITALS = ("H0002", "H0007", "H0031", "H9999")
HOSPITAL_LEVELS = {"H0002": 2, "H0007": 1, "H0031": 3, "H9999": 2}
"""The registry's level of each (the worked examples' claims state these)."""


@pytest.fixture
def keys(app: FastAPI) -> dict[str, str]:
    """A key per role, and a hospital key per hospital: 'hospital' is H0002's, 'H0031' H0031's…"""
    db = app.state.ctx.db
    with db.write() as session:
        out = {role: create_key(session, role) for role in ("reviewer", "insurer", "admin")}
        for hospital in HOSPITALS:
            out[hospital] = create_key(session, "hospital", hospital_id=hospital)
            data = HospitalIn(name=f"医院 {hospital}", level=HOSPITAL_LEVELS[hospital], district="230102")
            put_hospital(session, hospital, data, "test", dt.datetime.now(dt.UTC))
        out["hospital"] = out["H0002"]
        session.commit()
    return out


@pytest.fixture
def auth(keys: dict[str, str]) -> dict[str, dict[str, str]]:
    """Authorization headers by role or hospital id."""
    return {name: {"Authorization": f"Bearer {key}"} for name, key in keys.items()}


