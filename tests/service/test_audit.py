"""Audit replay: the stored settlements settled again agree; a corrupted row is found."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
from service_helpers import example_claims, register_examples
from sqlalchemy import text

from settlement.audit import audit
from settlement.cli import main
from settlement.service.errors import ServiceError


def settle_examples(client: Any, auth: Any) -> list[dict[str, Any]]:
    register_examples(client, auth["reviewer"])
    settled = []
    for round_ in range(2):  # twice each: the second round builds on the first's yearly totals
        for claim in example_claims():
            claim = copy.deepcopy(claim)
            claim["claim_id"] = f"{claim['claim_id']}-{round_}"
            hospital = claim["hospital"]["id"]
            response = client.post("/v1/settlements", json=claim, headers=auth[hospital])
            if response.status_code == 201:
                settled.append(response.json())
    return settled


def run(app: Any, workers: int | None = None, start: Any = None, end: Any = None) -> Any:
    ctx = app.state.ctx
    return audit(ctx.db.engine, ctx.tables, ZoneInfo("Asia/Shanghai"), start, end, workers)


def test_replay_agrees_then_finds_corruption(client, auth, app, settings, monkeypatch, capsys):
    settled = settle_examples(client, auth)
    assert len(settled) == 30  # the 15 examples that settle (EX-15…EX-18 among them), twice
    # reversals in the middle: later claims of those persons settled after them
    for s in (settled[0], settled[4]):
        hospital = s["hospital_id"]
        assert client.post(f"/v1/settlements/{s['settlement_id']}/reversal", headers=auth[hospital]).status_code == 200
    claim = copy.deepcopy(example_claims()[0])
    claim["claim_id"] = "after-reversal"
    assert client.post("/v1/settlements", json=claim, headers=auth[claim["hospital"]["id"]]).status_code == 201

    clean = run(app)
    assert clean.differences == [] and clean.settled == 31 and clean.reversals == 2

    victim = settled[6]
    with app.state.ctx.db.engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE settlements SET basic_fen = basic_fen + 1, patient_pays_fen = patient_pays_fen - 1"
                " WHERE settlement_id = :id"
            ),
            {"id": victim["settlement_id"]},
        )
        conn.execute(
            text(
                "UPDATE fund_pools SET used = used + 5"
                " WHERE fund_id = 'poverty_relief' AND policy_year = 2018 AND shard = 0"
            )
        )
    found = run(app)
    assert len(found.differences) == 2, found.differences
    alone = run(app, workers=1)  # read in this process, not by seq ranges in worker processes: the same
    assert (alone.differences, alone.settled, alone.reversals) == (found.differences, 31, 2)
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    assert run(app, start=today + dt.timedelta(days=1)).differences == found.differences[1:]  # totals only
    before = run(app, end=today - dt.timedelta(days=1))
    assert (before.settled, before.differences) == (0, [])
    assert found.differences[0].startswith(victim["settlement_id"])
    assert "basic stored" in found.differences[0] and "patient_pays stored" in found.differences[0]
    assert found.differences[1].startswith("pool poverty_relief 2018")

    monkeypatch.setenv("SETTLEMENT_DATABASE_URL", settings.database_url)
    assert main(["audit"]) == 1
    out = capsys.readouterr()
    assert victim["settlement_id"] in out.out and "2 difference(s)" in out.err


def test_the_portable_writer_settles_and_reverses_on_either_database(client, auth, app):
    """service.settle / service.reverse (SQLite's writer, PostgreSQL's fallback and the demo's) keep the
    person-year totals and pools the replay finds, on the database the suite runs on."""
    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.db import run_transaction
    from settlement.service.settlements import service as settlements

    register_examples(client, auth["reviewer"])
    ctx = app.state.ctx
    ids = []
    for claim in example_claims():
        principal = Principal(key_id="test", role=Role.HOSPITAL, hospital_id=claim["hospital"]["id"])
        raw = orjson.dumps(claim)
        try:
            out = run_transaction(ctx.db.write, lambda s, p=principal, r=raw: settlements.settle(s, ctx, p, r))
        except ServiceError:
            continue  # the examples that are refused (no_standard …)
        ids.append(out.body["settlement_id"])
    admin = Principal(key_id="test", role=Role.ADMIN)
    for settlement_id in ids[:3]:
        out = run_transaction(ctx.db.write, lambda s, i=settlement_id: settlements.reverse(s, ctx, admin, i, "test"))
        assert out.created and out.body["status"] == "reversed"
    found = run(app)
    assert found.differences == [] and found.settled == len(ids) and found.reversals == 3


def test_an_edited_person_year_is_found(client, auth, app):
    settle_examples(client, auth)
    with app.state.ctx.db.engine.begin() as conn:
        person = conn.execute(text("SELECT person_id FROM person_year_accumulators LIMIT 1")).scalar_one()
        conn.execute(
            text("UPDATE person_year_accumulators SET critical_base = critical_base + 100 WHERE person_id = :p"),
            {"p": person},
        )
    found = run(app)
    assert [d.split(":")[0] for d in found.differences] == [f"person {person} year 2018"]
    assert "critical_base stored" in found.differences[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2018-13-01"],
        ["--partitions", "2"],
        ["--scheduler", "tcp://x:8786"],
        ["--engine", "dask", "--partitions", "0"],
    ],
)
def test_bad_arguments_exit_2(args):
    assert main(["audit", *args]) == 2
