"""Seeding helper: a fresh PostgreSQL database, its schema, the registry and the keys.

    .venv/bin/python -m loadtests.seed --database-url postgresql://postgres@127.0.0.1:5432/settlement_lt \
        --persons 100000 --hospitals 20 --out loadtests/reports/seed.json

Persons are written with COPY (about 1 s for 100,000) by default, or through
the service's CSV import (``POST /v1/persons/import``, ``loadtests/run.sh
--seed-via api``): that took ~6.6 ms per person when it registered persons one
ORM unit at a time (11 minutes for 100,000), ~0.07 ms since the registry's
set-based import (20,000 in 1.4 s). Either way the rows are the registry's own
tables, and the keys are made with the service's ``create_key`` (stored
hashed), exactly like ``settlement keys create``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from .common import build_persons, hospital_ids, hospital_level

VALID_FROM = dt.date(2018, 1, 1)


def libpq_url(url: str) -> str:
    """postgresql+psycopg://… → postgresql://… (psycopg's own form)."""
    scheme, rest = url.split("://", 1)
    return "postgresql://" + rest if scheme.startswith("postgres") else url


def recreate_database(url: str) -> None:
    """DROP (if present) and CREATE the database named in url, from the server's maintenance db."""
    parts = urlsplit(libpq_url(url))
    name = parts.path.lstrip("/")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"refusing an unusual database name {name!r}")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(url: str) -> None:
    parts = urlsplit(libpq_url(url))
    name = parts.path.lstrip("/")
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def upgrade(url: str) -> None:
    from settlement.service.config import Settings
    from settlement.service.migrate import upgrade as run_upgrade

    run_upgrade(Settings(database_url=url))


def registry_csv(persons: list) -> str:
    out = io.StringIO()
    out.write("person_id,scheme,category,valid_from,valid_to\n")
    for p in persons:
        out.write(f"{p.person_id},{p.scheme},{p.category},{VALID_FROM.isoformat()},\n")
    return out.getvalue()


def seed_persons_copy(url: str, persons: list) -> None:
    now = dt.datetime.now(dt.UTC)
    with psycopg.connect(libpq_url(url)) as conn, conn.cursor() as cur:
        with cur.copy("COPY persons (person_id, scheme, created_at, updated_at) FROM STDIN") as copy:
            for p in persons:
                copy.write_row((p.person_id, p.scheme, now, now))
        with cur.copy("COPY person_categories (person_id, category, valid_from) FROM STDIN") as copy:
            for p in persons:
                copy.write_row((p.person_id, p.category, VALID_FROM))
        cur.execute("ANALYZE persons")
        cur.execute("ANALYZE person_categories")


def seed_persons_api(base_url: str, admin_key: str, persons: list, chunk: int = 5000) -> None:
    """Through the service's CSV import, in chunks (each chunk is all-or-nothing)."""
    for start in range(0, len(persons), chunk):
        body = registry_csv(persons[start : start + chunk]).encode()
        request = urllib.request.Request(
            f"{base_url}/v1/persons/import",
            data=body,
            method="POST",
            headers={"Authorization": f"Bearer {admin_key}", "Content-Type": "text/csv"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            if response.status != 200:
                raise RuntimeError(f"import answered {response.status}: {response.read()[:500]!r}")


def create_keys(url: str, hospitals: list[str]) -> tuple[str, dict[str, str]]:
    """The hospitals registered (their levels: common.hospital_level), one admin key and one key per
    hospital, made by the service's own put_hospital and create_key."""
    from settlement.service.auth.service import create_key
    from settlement.service.config import Settings
    from settlement.service.db import make_database, run_transaction
    from settlement.service.hospitals.schemas import HospitalIn
    from settlement.service.hospitals.service import put_hospital

    db = make_database(Settings(database_url=url))
    try:

        def work(session):  # type: ignore[no-untyped-def]
            now = dt.datetime.now(dt.UTC)
            for h in hospitals:  # the counter settles only registered hospitals, at their registered level
                entry = HospitalIn(name=f"loadtest {h}", level=hospital_level(h), district="230102")
                put_hospital(session, h, entry, "loadtest", now)
            admin = create_key(session, "admin", label="loadtest")
            return admin, {h: create_key(session, "hospital", hospital_id=h, label="loadtest") for h in hospitals}

        return run_transaction(db.write, work)
    finally:
        db.dispose()


def seed(
    url: str,
    *,
    persons: int,
    hospitals: int,
    population_seed: int,
    hot_persons: int,
    out: Path,
    fresh: bool = True,
    via: str = "copy",
    base_url: str | None = None,
) -> dict:
    """Database, schema, keys, persons (unless via == 'api': then the caller imports later)."""
    if fresh:
        recreate_database(url)
    upgrade(url)
    admin_key, keys = create_keys(url, hospital_ids(hospitals))
    people = build_persons(persons, population_seed)
    if via == "copy":
        seed_persons_copy(url, people)
    config = {
        "database_url": url,
        "persons": persons,
        "population_seed": population_seed,
        "hot_persons": hot_persons,
        "admin_key": admin_key,
        "hospital_keys": keys,
        "seeded_via": via,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=1))
    if via == "api":
        if base_url is None:
            raise ValueError("seeding through the API needs the service's base url")
        seed_persons_api(base_url, admin_key, people)
    return config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--hospitals", type=int, default=20)
    parser.add_argument("--population-seed", type=int, default=1)
    parser.add_argument("--hot-persons", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("loadtests/reports/seed.json"))
    parser.add_argument("--keep", action="store_true", help="do not drop and recreate the database")
    args = parser.parse_args()
    seed(
        args.database_url,
        persons=args.persons,
        hospitals=args.hospitals,
        population_seed=args.population_seed,
        hot_persons=args.hot_persons,
        out=args.out,
        fresh=not args.keep,
    )
    print(f"seeded {args.persons:,} persons and {args.hospitals} hospital keys; {args.out}")


if __name__ == "__main__":
    main()
