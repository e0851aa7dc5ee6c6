"""The queue's block totals (settlements.rollup): summarize with the stored blocks equals summarize from the
rows alone, on random settlements, reversals, seq gaps and date filters (PostgreSQL and SQLite); a
settlement that commits below a seq mark is in its block when the mark is a margin old."""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
import uuid
from dataclasses import replace
from typing import Any

import pytest
from service_helpers import requires_postgres
from sqlalchemy import delete, func, insert, select, update

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.reviews import flags
from settlement.service.reviews.models import SeqMark
from settlement.service.reviews.rules import rules_at
from settlement.service.settlements import query, rollup
from settlement.service.settlements.models import AMOUNTS, Settlement

from test_flags_refresh import EX01, MARGIN, Clock, close, open_insert  # isort: skip
from test_reviews import settle, settle_ex01  # isort: skip

PAYERS = ("basic", "critical_illness", "medical_assistance", "charity", "emergency_relief", "backstop",
          "patient_pays", "hospital_bears")
REVIEWER = Principal(key_id="k", role=Role.REVIEWER)


def add_settlements(app: Any, rng: random.Random, seqs: list[int], start: dt.datetime, hours: float) -> None:
    """Copies of seq 1 at these seqs, settled ``hours`` apart from ``start`` give or take 3 hours (so blocks
    straddle days), with random amounts; a tenth reversed."""
    table = Settlement.__table__
    with app.state.ctx.db.write() as session:
        base = dict(session.execute(select(table).where(table.c.seq == 1)).mappings().one())
        rows = []
        for i, seq in enumerate(seqs):
            row = {**base, "seq": seq, "settlement_id": str(uuid.uuid4()), "claim_id": f"C-{seq}"}
            row["settled_at"] = start + dt.timedelta(hours=i * hours + rng.uniform(-3, 3))
            for name in AMOUNTS:  # the payers add up to the total (CHECK amounts_add_up)
                row[f"{name}_fen"] = rng.randrange(0, 1_000_000)
            row["total_fen"] = sum(row[f"{name}_fen"] for name in PAYERS)
            if rng.random() < 0.1:
                row["status"], row["reversed_at"] = "reversed", row["settled_at"] + dt.timedelta(hours=1)
            rows.append(row)
        session.execute(insert(table), rows)
        session.commit()


def add_daily_marks(app: Any, first: dt.date, last: dt.date) -> None:
    """A seq mark at each midnight (the service's zone): the highest seq settled before it."""
    ctx = app.state.ctx
    with ctx.db.write() as session:
        day = first
        while day <= last:
            at = dt.datetime.combine(day, dt.time(), tzinfo=ctx.tz)
            seq = session.scalar(select(func.coalesce(func.max(Settlement.seq), 0)).where(Settlement.settled_at < at))
            session.add(SeqMark(at_lo=at, at_hi=at, seq=int(seq or 0)))
            day += dt.timedelta(days=1)
        session.commit()


def summaries(app: Any, filters: list[query.SettlementFilter]) -> list[dict[str, Any]]:
    ctx = app.state.ctx
    with ctx.db.read() as session:
        return [query.summarize(session, ctx, REVIEWER, f) for f in filters]


def random_filters(rng: random.Random, first: dt.date, days: int, n: int) -> list[query.SettlementFilter]:
    out = [query.SettlementFilter()]
    for _ in range(n):
        a = first + dt.timedelta(days=rng.randrange(-2, days + 2))
        b = a + dt.timedelta(days=rng.randrange(0, 12))
        f = query.SettlementFilter(settled_from=rng.choice([a, a, None]), settled_to=rng.choice([b, b, None]))
        if rng.random() < 0.15:  # conditions the blocks cannot answer: the rows' path, also compared
            f = replace(f, **rng.choice([{"status": "reversed"}, {"review_status": "pending"},
                                         {"total_min": 5_000_000}]))
        out.append(f)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_block_totals_equal_the_rows_totals(client, auth, app, monkeypatch, seed):
    rng = random.Random(seed)
    monkeypatch.setattr(rollup, "BLOCK", 8)
    settle_ex01(client, auth)  # seq 1: the template of the copies
    ctx = app.state.ctx
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=40)
    seqs, seq = [], 1
    for _ in range(420):  # seq gaps as rolled-back settles leave them, some longer than a block
        seq += rng.choice([1, 1, 1, 1, 2, 3]) if rng.random() > 0.02 else rng.randrange(9, 30)
        seqs.append(seq)
    add_settlements(app, rng, seqs, start, hours=1.8)  # ~31 days
    first_day = start.astimezone(ctx.tz).date()
    add_daily_marks(app, first_day, first_day + dt.timedelta(days=33))
    rollup.refresh(ctx.db, margin=MARGIN)
    with ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(rollup.seq_blocks)) > 400 // 8
    # settled after the refresh, above the last mark: the tail the rows add to the blocks
    add_settlements(app, rng, [seq + 1 + i for i in range(40)], now - dt.timedelta(days=6), hours=3)
    with ctx.db.write() as session:  # reversals after the blocks were summed: the totals do not move
        session.execute(update(Settlement).where(Settlement.seq % 7 == 0).values(status="reversed", reversed_at=now))
        session.commit()

    filters = random_filters(rng, first_day, 38, 80)
    with_blocks = summaries(app, filters)
    with ctx.db.write() as session:  # each block's total off by one: the filters the blocks answer now differ
        session.execute(update(rollup.seq_blocks).values(total_fen=rollup.seq_blocks.c.total_fen + 1))
        session.commit()
    answered = [a != b for a, b in zip(with_blocks, summaries(app, filters), strict=True)]
    with ctx.db.write() as session:
        session.execute(delete(rollup.seq_blocks))
        session.commit()
    from_rows = summaries(app, filters)

    assert with_blocks == from_rows
    assert answered[0] and sum(answered) > len(filters) // 3  # the unfiltered totals and many others read blocks
    assert with_blocks[0]["count"] == 1 + 420 + 40 and with_blocks[0]["totals"]["total"] > 0


def test_blocks_are_written_once_in_order_up_to_the_closed_seq(client, auth, app, monkeypatch):
    monkeypatch.setattr(rollup, "BLOCK", 4)
    settle_ex01(client, auth, 9)  # seqs 1..9
    ctx = app.state.ctx
    clock = Clock()
    with ctx.db.write() as session:
        session.add(SeqMark(at_lo=clock.now, at_hi=clock.now, seq=9))
        session.commit()
    assert rollup.refresh(ctx.db, margin=MARGIN, clock=clock) == 0  # the mark is not a margin old yet
    clock.advance(MARGIN.total_seconds())
    assert rollup.refresh(ctx.db, margin=MARGIN, clock=clock) == 2  # blocks 0 (seqs 1-3) and 1 (4-7); 8-9 wait
    assert rollup.refresh(ctx.db, margin=MARGIN, clock=clock) == 0
    with ctx.db.read() as session:
        rows = session.execute(select(rollup.seq_blocks).order_by(rollup.seq_blocks.c.block)).mappings().all()
        total = session.scalar(select(func.sum(Settlement.total_fen)).where(Settlement.seq.between(4, 7)))
    assert [(r["block"], r["count"]) for r in rows] == [(0, 3), (1, 4)]
    assert rows[1]["total_fen"] == total and rows[0]["first_at"] <= rows[0]["last_at"] <= rows[1]["first_at"]


@requires_postgres
@pytest.mark.parametrize("margin", [MARGIN, dt.timedelta(0)])
def test_a_settlement_committed_below_a_mark_is_in_its_block(client, auth, app, settings, monkeypatch, margin):
    """A settle that commits after higher seqs did (the counter's concurrent writes) is in its block: the block
    is summed only once the seq mark above it is a margin old, and no settle transaction lives longer than that
    (statement and lock timeouts). Without the margin the block is summed without it."""
    monkeypatch.setattr(rollup, "BLOCK", 2)
    settle_ex01(client, auth)  # seq 1
    ctx, clock = app.state.ctx, Clock()
    conn, late = open_insert(app, settings)  # seq 2, not committed
    try:
        for i in range(3):  # seqs 3-5, committed
            claim = copy.deepcopy(EX01)
            claim["claim_id"] = f"R-after-{i}"
            settle(client, auth, claim)
        flags.refresh(ctx.db, rules_at(None), margin=margin, clock=clock)  # writes a seq mark: 5
        with ctx.db.read() as session:
            assert session.scalar(select(func.max(SeqMark.seq))) == 5
        rollup.refresh(ctx.db, margin=margin, clock=clock)
    finally:
        close(conn)
    clock.advance(margin.total_seconds() + 1)
    rollup.refresh(ctx.db, margin=margin, clock=clock)
    with ctx.db.read() as session:
        blocks = dict(session.execute(select(rollup.seq_blocks.c.block, rollup.seq_blocks.c.count)).all())
    everything = summaries(app, [query.SettlementFilter()])[0]
    assert late == 2 and blocks.keys() == {0, 1, 2}
    if margin:
        assert blocks[1] == 2 and everything["count"] == 5
    else:  # what the margin is for: block 1 was summed while seq 2 was in flight, and stays short
        assert blocks[1] == 1 and everything["count"] == 4


def test_the_flags_refresh_command_advances_the_block_totals(client, auth, app, settings, monkeypatch, capsys):
    """``settlement flags refresh`` sums the blocks its seq mark closes, not only the flags: the refresh every
    caller runs (the command, the demo's seeding, the service's background loop) advances both."""
    from settlement.cli import main

    monkeypatch.setattr(rollup, "BLOCK", 2)
    settle_ex01(client, auth, 5)  # seqs 1..5
    monkeypatch.setenv("SETTLEMENT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SETTLEMENT_FLAGS_REFRESH_MARGIN_SECONDS", "0")
    assert main(["flags", "refresh"]) == 0
    printed = json.loads(capsys.readouterr().out)
    with app.state.ctx.db.read() as session:
        blocks = dict(session.execute(select(rollup.seq_blocks.c.block, rollup.seq_blocks.c.count)).all())
    assert printed["checked"] == 5 and printed["blocks"] == 3
    assert blocks == {0: 1, 1: 2, 2: 2}  # seqs 1, 2-3, 4-5: closed by the mark this run took (margin 0)
    assert main(["flags", "refresh"]) == 0  # nothing new: no block written twice
    assert json.loads(capsys.readouterr().out)["blocks"] == 0
