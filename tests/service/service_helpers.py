"""Helpers of the service tests: the worked examples, registering persons, valid person ids."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from settlement.claims.person_id import CHECK, WEIGHTS, PersonIdError, check_person_id

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


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
