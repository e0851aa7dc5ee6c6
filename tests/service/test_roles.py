"""The role matrix: each role × each endpoint, no key, bad keys, and cross-hospital access."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from service_helpers import example, register

EX01 = example("EX-01")
PERSON = EX01["patient"]["person_id"]
ROLES = ("hospital", "reviewer", "insurer", "admin")
CSV = "person_id,scheme,category,valid_from,valid_to\n231202194807070129,resident,extreme_poverty,2018-01-01,\n"
counter = itertools.count()

# (method, path, body kind, roles allowed)
ENDPOINTS: list[tuple[str, str, str | None, set[str]]] = [
    ("POST", "/v1/settlements/preview", "claim", {"hospital"}),
    ("POST", "/v1/settlements", "claim", {"hospital"}),
    ("POST", "/v1/settlements/{sid}/reversal", None, {"hospital", "admin"}),
    ("GET", "/v1/settlements/{sid}", None, {"hospital", "reviewer", "insurer", "admin"}),
    ("GET", "/v1/settlements", None, {"hospital", "reviewer", "insurer", "admin"}),
    ("PUT", f"/v1/persons/{PERSON}", "person", {"reviewer", "admin"}),
    ("POST", "/v1/persons/import", "csv", {"reviewer", "admin"}),
    ("GET", f"/v1/persons/{PERSON}", None, {"reviewer", "admin", "insurer"}),
    ("GET", f"/v1/persons/{PERSON}/accumulators?year=2018", None, {"reviewer", "admin", "insurer"}),
    ("GET", "/v1/funds/poverty_relief/pools/2018", None, {"reviewer", "insurer", "admin"}),
    ("GET", "/v1/statements?fund=basic&from=2018-01-19&to=2018-01-19", None, {"insurer", "admin"}),
    ("GET", "/v1/schedules", None, set(ROLES)),
    ("GET", "/v1/schedules/heilongjiang-2018", None, set(ROLES)),
    ("GET", "/metrics", None, set(ROLES)),
]


def _call(client: Any, method: str, path: str, body: str | None, headers: dict[str, str]) -> Any:
    kwargs: dict[str, Any] = {"headers": dict(headers)}
    if body == "claim":
        claim = copy.deepcopy(EX01)
        claim["claim_id"] = f"R-{next(counter)}"
        kwargs["json"] = claim
    elif body == "person":
        period = {"category": "registered_poor", "valid_from": "2018-01-01"}
        kwargs["json"] = {"scheme": "resident", "categories": [period]}
    elif body == "csv":
        kwargs["content"] = CSV
        kwargs["headers"]["Content-Type"] = "text/csv"
    return client.request(method, path, **kwargs)


@pytest.fixture
def settled(client, auth) -> str:
    register(client, auth["reviewer"], PERSON)
    response = client.post("/v1/settlements", json=EX01, headers=auth["hospital"])
    assert response.status_code == 201
    return str(response.json()["settlement_id"])


@pytest.mark.parametrize(("method", "path", "body", "allowed"), ENDPOINTS, ids=[f"{m} {p}" for m, p, _, _ in ENDPOINTS])
def test_role_matrix(client, auth, keys, settled, method, path, body, allowed):
    path = path.format(sid=settled)
    for role in ROLES:
        response = _call(client, method, path, body, auth[role])
        if role in allowed:
            assert response.status_code < 400, (role, response.status_code, response.text)
        else:
            assert response.status_code == 403, (role, response.status_code, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["code"] == "forbidden"
    # without a key, with a malformed key, with an unknown key, with a wrong scheme: 401
    for headers in (
        {},
        {"Authorization": "Bearer nonsense"},
        {"Authorization": "Bearer stl_000000000000_" + "x" * 43},
        {"Authorization": f"Bearer {keys['admin']}x"},
        {"Authorization": f"Basic {keys['admin']}"},
    ):
        response = _call(client, method, path, body, headers)
        assert response.status_code == 401, (headers, response.status_code)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["code"] == "unauthorized"


def test_health_needs_no_key(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_revoked_key_is_refused(client, app):
    from settlement.service.auth.keys import key_id_of
    from settlement.service.auth.service import create_key, revoke_key

    db = app.state.ctx.db
    with db.write() as session:
        key = create_key(session, "admin")
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/v1/schedules", headers=headers).status_code == 200
    with db.write() as session:
        key_id = key_id_of(key)
        assert key_id is not None and revoke_key(session, key_id)
        session.commit()
    assert client.get("/v1/schedules", headers=headers).status_code == 401


def test_keys_are_stored_hashed(app, keys):
    from sqlalchemy import select

    from settlement.service.auth.models import ApiKey

    with app.state.ctx.db.read() as session:
        stored = [(row.key_hash, row.role, row.hospital_id) for row in session.scalars(select(ApiKey))]
    assert stored
    for key in keys.values():
        assert all(key not in h for h, _, _ in stored)
        assert key.split("_", 2)[2] not in "".join(h for h, _, _ in stored)
    assert ("hospital", "H0002") in {(role, hospital) for _, role, hospital in stored}


def test_another_hospitals_settlement_is_404(client, auth, settled):
    other = auth["H0031"]
    got = client.get(f"/v1/settlements/{settled}", headers=other)
    assert got.status_code == 404 and got.json()["code"] == "not_found"
    missing = client.get("/v1/settlements/00000000-0000-0000-0000-000000000000", headers=other)
    assert missing.status_code == 404 and missing.json()["detail"].startswith("no settlement")
    assert got.json()["detail"] == f"no settlement {settled}"  # the same answer as for a missing one
    reversal = client.post(f"/v1/settlements/{settled}/reversal", headers=other)
    assert reversal.status_code == 404
    assert client.get(f"/v1/settlements/{settled}", headers=auth["hospital"]).json()["status"] == "settled"
    listing = client.get("/v1/settlements", headers=other).json()
    assert listing["items"] == []
    listing = client.get("/v1/settlements", params={"hospital_id": "H0002"}, headers=other).json()
    assert listing["items"] == []
    # a hospital cannot settle, preview or replay a claim of another hospital
    for path in ("/v1/settlements", "/v1/settlements/preview"):
        response = client.post(path, json=EX01, headers=other)
        assert response.status_code == 403 and response.json()["code"] == "hospital_mismatch"
