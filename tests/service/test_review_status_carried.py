"""A filter of review status (and settled dates) is answered from the review status rows, which carry their
settlement's dates and amounts (migration 0014): the same count, totals and pages as the settlements give;
the rows carry their settlement's values whichever way a decision wrote them (one, or a bulk approval)."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from sqlalchemy import select, update

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.reviews import service as reviews
from settlement.service.reviews.models import REVIEWED_CARRIED, ReviewStatus
from settlement.service.settlements import query
from settlement.service.settlements.models import AMOUNTS, Settlement

from test_review_totals_rollup import add_daily_marks, add_settlements  # isort: skip
from test_reviews import settle_ex01  # isort: skip

REVIEWER = Principal(key_id="k", role=Role.REVIEWER)
SORTS = ("seq", "-seq", "-total", "total", "settled_at", "-discharged", "backstop", "-hospital_bears")


def expected(ctx: Any, rows: list[Any], statuses: dict[int, str], flt: query.SettlementFilter) -> list[Any]:
    """The settlements of a review status and settled-date filter, from the settlements' own columns."""
    def day(d: dt.date) -> dt.datetime:
        return dt.datetime.combine(d, dt.time(), tzinfo=ctx.tz)

    return [
        r for r in rows
        if statuses.get(r.seq) == flt.review_status
        and (flt.settled_from is None or r.settled_at >= day(flt.settled_from))
        and (flt.settled_to is None or r.settled_at < day(flt.settled_to + dt.timedelta(days=1)))
    ]


def all_pages(ctx: Any, flt: query.SettlementFilter, sort: str) -> list[int]:
    seqs: list[int] = []
    cursor = None
    while True:
        with ctx.db.read() as session:
            rows, cursor = query.page(session, ctx, REVIEWER, flt, sort=sort, cursor=cursor, limit=7)
        seqs.extend(r.seq for r in rows)
        if cursor is None:
            return seqs


def test_review_status_filters_read_the_carried_dates_and_amounts(client, auth, app):
    rng = random.Random(5)
    settle_ex01(client, auth)  # seq 1: the template of the copies
    ctx = app.state.ctx
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=40)
    add_settlements(app, rng, list(range(2, 302)), start, hours=3)  # ~37 days, random amounts
    first_day = start.astimezone(ctx.tz).date()
    add_daily_marks(app, first_day, first_day + dt.timedelta(days=40))
    with ctx.db.write() as session:
        sids = list(session.scalars(select(Settlement.settlement_id).order_by(Settlement.seq)))
        for sid in rng.sample(sids, 150):  # one decision at a time, some superseded by a later one
            for _ in range(rng.choice([1, 1, 2])):
                reviews.add_review(session, ctx, REVIEWER, sid, rng.choice(["approve", "query", "recover"]), "请说明")
        pending_week = query.SettlementFilter(
            review_status="pending", settled_from=first_day + dt.timedelta(days=10),
            settled_to=first_day + dt.timedelta(days=16),
        )
        shown = query.summarize(session, ctx, REVIEWER, pending_week)
        approved = reviews.bulk_approve(session, ctx, REVIEWER, pending_week, expected_count=shown["count"],
                                        expected_total=shown["totals"]["total"])
        session.commit()
    assert approved["approved"] > 10

    with ctx.db.read() as session:
        rows = list(session.scalars(select(Settlement).order_by(Settlement.seq)))
        carried = {r.settlement_seq: r for r in session.scalars(select(ReviewStatus))}
    statuses = {seq: r.status for seq, r in carried.items()}
    by_seq = {r.seq: r for r in rows}
    for seq, status_row in carried.items():  # every status row carries its settlement's values
        assert {c: getattr(status_row, c) for c in REVIEWED_CARRIED} == {
            c: getattr(by_seq[seq], c) for c in REVIEWED_CARRIED
        }
    assert {"approved", "queried", "recovery"} <= set(statuses.values())

    filters = [query.SettlementFilter(review_status=s) for s in ("approved", "queried", "recovery")]
    for _ in range(12):
        a = first_day + dt.timedelta(days=rng.randrange(-2, 40))
        b = a + dt.timedelta(days=rng.randrange(0, 15))
        filters.append(query.SettlementFilter(
            review_status=rng.choice(["approved", "queried", "recovery"]),
            settled_from=rng.choice([a, a, None]), settled_to=rng.choice([b, b, None]),
        ))
    with ctx.db.read() as session:
        got = [query.summarize(session, ctx, REVIEWER, f) for f in filters]
    for flt, summary in zip(filters, got, strict=True):
        matching = expected(ctx, rows, statuses, flt)
        assert summary["count"] == len(matching)
        assert summary["totals"] == {
            name: sum(getattr(r, f"{name}_fen") for r in matching) for name in query.SHOWN
        }
        for sort in SORTS:  # every page, by keyset cursor: the settlements' order
            order = query.Sort.parse(sort)
            column = query.SORTS[order.key].key
            want = sorted(matching, key=lambda r, c=column: (getattr(r, c), r.seq), reverse=order.descending)
            assert all_pages(ctx, flt, sort) == [r.seq for r in want], (flt, sort)
    assert sum(s["count"] for s in got[:3]) == len(carried) and all(s["count"] for s in got[:3])

    # the carried amounts are what these filters read: off by one, their totals move; with a condition
    # they cannot answer (a hospital), the settlements' own amounts are summed as before
    with ctx.db.write() as session:
        session.execute(update(ReviewStatus).values(total_fen=ReviewStatus.total_fen + 1))
        session.commit()
    hospital = query.SettlementFilter(review_status="approved", hospital_id=rows[0].hospital_id)
    with ctx.db.read() as session:
        moved = [query.summarize(session, ctx, REVIEWER, f) for f in filters[:3]]
        by_rows = query.summarize(session, ctx, REVIEWER, hospital)
    for before, after in zip(got[:3], moved, strict=True):
        assert after["totals"]["total"] == before["totals"]["total"] + before["count"]
    approved_rows = expected(ctx, rows, statuses, filters[0])
    assert by_rows["totals"]["total"] == sum(r.total_fen for r in approved_rows)
    # and the settlements' path pages by settled_at too (its cursor's timestamp read back as one)
    want = sorted(approved_rows, key=lambda r: (r.settled_at, r.seq))
    assert all_pages(ctx, hospital, "settled_at") == [r.seq for r in want]
    assert set(AMOUNTS) == set(query.SHOWN)
