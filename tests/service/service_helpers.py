"""Helpers of the service tests: the worked examples, registering persons, valid person ids."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from settlement.claims.person_id import CHECK, WEIGHTS, PersonIdError, check_person_id

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"

PG_ADMIN = os.environ.get("SETTLEMENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reason() -> str | None:
    """None when PostgreSQL can be used, else why not."""
    if os.environ.get("SETTLEMENT_TEST_DB", "").lower() == "sqlite":
        return "SETTLEMENT_TEST_DB=sqlite"
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return None
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN}: {type(exc).__name__}"


POSTGRES_SKIP_REASON = _postgres_reason()
requires_postgres = pytest.mark.skipif(
    POSTGRES_SKIP_REASON is not None,
    reason=f"needs PostgreSQL ({POSTGRES_SKIP_REASON})",
)


class PostgresDatabase:
    """A throw-away database created through the admin database."""

    def __init__(self) -> None:
        import psycopg

        self.name = f"settlement_test_{secrets.token_hex(6)}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')  # type: ignore[arg-type]
        base = PG_ADMIN.rsplit("/", 1)[0]
        self.url = f"{base}/{self.name}"

    def drop(self) -> None:
        import psycopg

        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')  # type: ignore[arg-type]


def fresh_database_url(tmp_path: Path, postgres: bool) -> tuple[str, Any]:
    """(url, cleanup) of an empty database."""
    if postgres:
        db = PostgresDatabase()
        return db.url, db.drop
    return f"sqlite:///{tmp_path / 'settlement.db'}", lambda: None


def example_lines() -> list[str]:
    return [line for line in (EXAMPLES / "claims.jsonl").read_text().splitlines() if line.strip()]


def example_claims() -> list[dict[str, Any]]:
    return [json.loads(line) for line in example_lines()]


def example(claim_id: str) -> dict[str, Any]:
    return next(c for c in example_claims() if c["claim_id"] == claim_id)


def register(
    client: Any,
    headers: dict[str, str],
    person_id: str,
    scheme: str = "resident",
    category: str = "registered_poor",
    valid_from: str = "2018-01-01",
    valid_to: str | None = None,
) -> None:
    body = {"scheme": scheme, "categories": [{"category": category, "valid_from": valid_from, "valid_to": valid_to}]}
    response = client.put(f"/v1/persons/{person_id}", json=body, headers=headers)
    assert response.status_code in (200, 201), response.text


def register_examples(client: Any, headers: dict[str, str]) -> None:
    """The persons of the worked examples, as their claims state them (valid ids only)."""
    seen = set()
    for claim in example_claims():
        patient = claim["patient"]
        if "person_id" not in patient or patient.get("unidentified"):
            continue  # an unidentified patient needs no registry entry
        pid = patient["person_id"].upper()
        if pid in seen:
            continue
        try:
            check_person_id(pid, dt.date.max)
        except PersonIdError:
            continue
        seen.add(pid)
        register(client, headers, pid, patient["scheme"], patient.get("category", "none"))


def person_id(n: int, birth: str = "19700101") -> str:
    """A valid resident id (GB 11643) numbered n, born on birth (YYYYMMDD)."""
    body = f"230102{birth}{n:03d}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]
