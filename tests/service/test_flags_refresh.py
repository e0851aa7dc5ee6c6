"""The flags refresher: incremental, never skipping a settlement that commits late, re-checking all
on new rules, one at a time; the `settlement flags` command; concurrent reviews on PostgreSQL."""

from __future__ import annotations

import copy
import datetime as dt
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from service_helpers import example, register, requires_postgres
from sqlalchemy import func, select, text

from settlement.service.db import make_engine
from settlement.service.reviews.flags import refresh
from settlement.service.reviews.models import FlagCheck, Review, ReviewStatus, SettlementFlag
from settlement.service.reviews.rules import BUNDLED, load_rules, rules_at
from settlement.service.settlements.models import Settlement

from test_reviews import review, settle, settle_ex01  # isort: skip

EX01 = example("EX-01")
PERSON = EX01["patient"]["person_id"]
MARGIN = dt.timedelta(seconds=60)


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def checked(app: Any) -> set[int]:
    with app.state.ctx.db.read() as session:
        return set(session.scalars(select(FlagCheck.settlement_seq)))


def flags_of(app: Any) -> set[tuple[int, str]]:
    with app.state.ctx.db.read() as session:
        return {(a, b) for a, b in session.execute(select(SettlementFlag.settlement_seq, SettlementFlag.rule))}


def open_insert(app: Any, settings: Any) -> tuple[Any, int]:
    """A settlement inserted (a copy of seq 1 under a new claim id) in a transaction left open: (connection, seq)."""
    engine = make_engine(settings, pooled=False)
    conn = engine.connect()
    conn.begin()
    columns = [str(c.name) for c in Settlement.__table__.columns if c.name != "seq"]
    copied = ", ".join(
        ":sid" if c == "settlement_id" else ":cid" if c == "claim_id" else c for c in columns
    )
    seq = conn.execute(
        text(f"INSERT INTO settlements ({', '.join(columns)}) SELECT {copied} FROM settlements"
             " ORDER BY seq LIMIT 1 RETURNING seq"),
        {"sid": str(uuid.uuid4()), "cid": f"LATE-{uuid.uuid4().hex[:8]}"},
    ).scalar_one()
    conn.info["engine"] = engine
    return conn, int(seq)


def close(conn: Any) -> None:
    engine = conn.info["engine"]
    conn.commit()
    conn.close()
    engine.dispose()


@requires_postgres
@pytest.mark.parametrize("margin", [MARGIN, dt.timedelta(0)])
def test_a_settlement_committed_after_a_later_seq_is_never_skipped(client, auth, app, settings, margin):
    """A settle whose transaction commits after settlements with higher seqs (the counter's concurrent writes)
    is still checked: the watermark stays ``margin`` behind. Without the margin it would be skipped."""
    settle_ex01(client, auth)
    db, rules, clock = app.state.ctx.db, rules_at(None), Clock()
    conn, late = open_insert(app, settings)  # seq 2, not committed
    try:
        again = copy.deepcopy(EX01)
        again["claim_id"] = "R-after"
        settle(client, auth, again)  # seq 3, committed
        for _ in range(3):  # runs while seq 2 is in flight, each a little later
            refresh(db, rules, margin=margin, clock=clock)
            clock.advance(10)
        assert late not in checked(app) and {1, 3} <= checked(app)
    finally:
        close(conn)
    refresh(db, rules, margin=margin, clock=clock)
    if margin:
        assert late in checked(app) and (late, "backstop_paid") in flags_of(app)
    else:  # what the margin is for
        assert late not in checked(app)


def test_the_watermark_moves_only_past_marks_older_than_the_margin(client, auth, app):
    settle_ex01(client, auth, 2)
    db, rules, clock = app.state.ctx.db, rules_at(None), Clock()
    from settlement.service.reviews.models import FlagRefreshState

    def watermark() -> int:
        with db.read() as session:
            return int(session.scalar(select(FlagRefreshState.settlement_wm)) or 0)

    refresh(db, rules, margin=MARGIN, clock=clock)
    assert checked(app) == {1, 2} and watermark() == 0
    clock.advance(61)
    refresh(db, rules, margin=MARGIN, clock=clock)  # the first mark (taken at the start) is ripe: mark 0 -> wm 0
    clock.advance(61)
    refresh(db, rules, margin=MARGIN, clock=clock)
    assert watermark() == 2


def test_new_rules_re_check_every_settlement(client, auth, app, tmp_path: Path):
    settle_ex01(client, auth, 3)  # EX-01's total is 2,367.99
    db = app.state.ctx.db
    refresh(db, rules_at(None), margin=MARGIN)
    assert not any(rule == "high_total" for _s, rule in flags_of(app))
    lower = tmp_path / "rules.yaml"
    lower.write_text(BUNDLED.read_text(encoding="utf-8").replace('amount: "100000.00"', 'amount: "2000.00"'))
    stats = refresh(db, load_rules(lower), margin=MARGIN)
    assert stats.checked == 3
    assert {s for s, rule in flags_of(app) if rule == "high_total"} == {1, 2, 3}
    with db.read() as session:
        threshold = session.scalar(select(SettlementFlag.threshold).where(SettlementFlag.rule == "high_total"))
    assert threshold == {"amount": "2000.00"}
    stats = refresh(db, rules_at(None), margin=MARGIN)  # and back
    assert stats.checked == 3 and stats.removed >= 3
    assert not any(rule == "high_total" for _s, rule in flags_of(app))


def test_emergency_flags_carry_the_stored_results_relief(client, auth, app):
    """The emergency rules' figure is the stored result's payments.emergency_relief, read from the database
    (PostgreSQL's and SQLite's JSON path), for the unidentified patient and the patient who cannot pay."""
    register(client, auth["reviewer"], example("EX-17")["patient"]["person_id"], "employee", "none",
             valid_from="2019-01-01")
    paid = {}
    for claim_id, rule in (("EX-15", "emergency_unidentified"), ("EX-17", "emergency_unable_to_pay")):
        claim = example(claim_id)
        claim["claim_id"] = f"{claim_id}-FLAGS"
        body = settle(client, auth, claim, hospital=claim["hospital"]["id"])
        assert body["payments"]["emergency_relief"] != "0.00"
        paid[body["settlement_id"]] = (rule, body["payments"]["emergency_relief"])
    refresh(app.state.ctx.db, rules_at(None), margin=MARGIN)
    with app.state.ctx.db.read() as session:
        for sid, (rule, relief) in paid.items():
            seq = session.scalar(select(Settlement.seq).where(Settlement.settlement_id == sid))
            figures = session.scalar(
                select(SettlementFlag.figures).where(SettlementFlag.settlement_seq == seq, SettlementFlag.rule == rule)
            )
            assert figures is not None and figures["emergency_relief"] == relief


@requires_postgres
def test_one_refresher_at_a_time(client, auth, app, settings):
    settle_ex01(client, auth)
    refresh(app.state.ctx.db, rules_at(None), margin=MARGIN)  # the state row exists
    engine = make_engine(settings, pooled=False)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1 FROM flag_refresh_state FOR UPDATE")).all()
            stats = refresh(app.state.ctx.db, rules_at(None), margin=MARGIN)
            assert stats.busy and stats.checked == 0
            conn.rollback()
    finally:
        engine.dispose()
    assert not refresh(app.state.ctx.db, rules_at(None), margin=MARGIN).busy


def test_flags_refresh_command(client, auth, app, settings, monkeypatch, capsys):
    from settlement.cli import main

    settle_ex01(client, auth, 2)
    monkeypatch.setenv("SETTLEMENT_DATABASE_URL", settings.database_url)
    assert main(["flags", "refresh"]) == 0
    out = capsys.readouterr().out
    assert '"checked": 2' in out
    assert main(["flags", "status"]) == 0
    assert '"unchecked": 0' in capsys.readouterr().out
    assert main(["flags", "refresh", "--all"]) == 0
    assert '"checked": 2' in capsys.readouterr().out
    bad = Path(settings.database_url.replace("sqlite:///", "")).parent / "bad-rules.yaml" \
        if settings.database_url.startswith("sqlite") else Path("/tmp") / f"bad-rules-{uuid.uuid4().hex}.yaml"
    bad.write_text("readmission: {enabled: true}\n")
    monkeypatch.setenv("SETTLEMENT_REVIEW_RULES", str(bad))
    assert main(["flags", "refresh"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: readmission.days: missing key" in err
    bad.unlink()


@requires_postgres
def test_concurrent_decisions_end_with_the_last_records_status(client, auth, app):
    """Reviewers deciding at once on one settlement: every record kept, the status the highest record's."""
    (s,) = settle_ex01(client, auth)
    sid = s["settlement_id"]
    decisions = [("approve", None), ("query", "请说明"), ("recover", "追回"), ("comment", "备注")] * 6
    barrier = threading.Barrier(len(decisions))
    codes: list[int] = []

    def decide(decision: str, note: str | None) -> None:
        barrier.wait()
        codes.append(review(client, auth["reviewer"], sid, decision, note).status_code)

    threads = [threading.Thread(target=decide, args=d) for d in decisions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [201] * len(decisions)
    history = client.get(f"/v1/settlements/{sid}/reviews", headers=auth["reviewer"]).json()
    assert len(history) == len(decisions)
    last = [r for r in history if r["decision"] != "comment"][-1]
    status = {"approve": "approved", "query": "queried", "recover": "recovery"}[last["decision"]]
    assert client.get(f"/v1/settlements/{sid}", headers=auth["reviewer"]).json()["review_status"] == status
    with app.state.ctx.db.read() as session:
        row = session.get(ReviewStatus, 1)
        assert row is not None and row.review_id == last["id"]


@requires_postgres
def test_bulk_approvals_and_decisions_at_once(client, auth, app):
    """Two bulk approvals of the same filter at once and single decisions during them: each settlement ends
    with its highest record's status; records are never lost."""
    settled = settle_ex01(client, auth, 30)
    listing = client.get("/v1/settlements", headers=auth["reviewer"]).json()
    body = {"filter": {}, "count": 30, "total": listing["totals"]["total"]}
    barrier = threading.Barrier(4)
    answers: list[int] = []

    def bulk() -> None:
        barrier.wait()
        answers.append(client.post("/v1/settlements/approvals", json=body, headers=auth["reviewer"]).status_code)

    def single(i: int) -> None:
        barrier.wait()
        for s in settled[i::2]:
            answers.append(review(client, auth["admin"], s["settlement_id"], "query", "并发").status_code)

    threads = [threading.Thread(target=bulk), threading.Thread(target=bulk),
               threading.Thread(target=single, args=(0,)), threading.Thread(target=single, args=(1,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count(201) == len(answers)
    with app.state.ctx.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Review)) == 30 * 2 + 30
        per_settlement = select(Review.settlement_seq, func.max(Review.id)).group_by(Review.settlement_seq)
        latest = dict(session.execute(per_settlement).all())
        decisions = dict(session.execute(select(Review.id, Review.decision)).all())
        for row in session.scalars(select(ReviewStatus)):
            assert row.review_id == latest[row.settlement_seq]
            assert row.status == {"approve": "approved", "query": "queried"}[decisions[row.review_id]]


def test_seq_marks_turn_a_settled_range_into_a_seq_range(client, auth, app):
    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.reviews.models import SeqMark
    from settlement.service.settlements import query

    settle_ex01(client, auth, 3)
    ctx = app.state.ctx
    refresh(ctx.db, rules_at(None), margin=MARGIN)
    with ctx.db.read() as session:
        (mark,) = session.scalars(select(SeqMark))
        assert mark.seq == 3 and mark.at_lo <= mark.at_hi
    refresh(ctx.db, rules_at(None), margin=MARGIN)  # within the minute: no second mark
    today = dt.datetime.now(ctx.tz).date()
    midnight = dt.datetime.combine(today, dt.time(), tzinfo=ctx.tz)
    with ctx.db.write() as session:
        session.add_all([
            SeqMark(at_lo=midnight - dt.timedelta(days=1), at_hi=midnight - dt.timedelta(days=1), seq=0),
            SeqMark(at_lo=midnight + dt.timedelta(days=2), at_hi=midnight + dt.timedelta(days=2), seq=7),
        ])
        session.commit()
    reviewer = Principal(key_id="k", role=Role.REVIEWER)
    with ctx.db.read() as session:
        day = query.SettlementFilter(settled_from=today, settled_to=today)
        assert query.seq_bounds(session, ctx, day) == (0, 7)
        assert query.summarize(session, ctx, reviewer, day)["count"] == 3
        later = query.SettlementFilter(settled_from=today + dt.timedelta(days=1))
        assert query.seq_bounds(session, ctx, later) == (3, None)  # the refresher's mark, before tomorrow
        assert query.summarize(session, ctx, reviewer, later)["count"] == 0
        earlier = query.SettlementFilter(settled_to=today - dt.timedelta(days=1))
        margin = dt.timedelta(seconds=ctx.settings.flags_refresh_margin_seconds)
        first_after = 3 if mark.at_lo >= midnight + margin else 7  # the earliest mark a margin after midnight
        assert query.seq_bounds(session, ctx, earlier) == (None, first_after)
        assert query.summarize(session, ctx, reviewer, earlier)["count"] == 0
