"""`settlement serve --demo`, the workspace's part: a demo reviewer and settled demo claims.

The claims are synthetic (settlement.synth) for demo persons of their own,
discharged in 2019, and go through the real settle path
(settlements.service.settle, the same call the API's transaction makes), so
every page has something to show. One is reversed (with a reason) and settled
again under a new claim id. The worked examples' persons are not used: their
2018 totals stay empty for the README's walk-through.
"""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

import orjson

from settlement.service.accounts.service import create_user
from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.config import Settings
from settlement.service.context import ServiceContext
from settlement.service.db import make_database, run_transaction
from settlement.service.errors import ServiceError
from settlement.service.persons.schemas import CategoryPeriod, PersonIn
from settlement.service.persons.service import put_person
from settlement.service.settlements import service as settlements

DEMO_YEAR = 2019
DEMO_PERSONS = 24
DEMO_CLAIMS = 60
DEMO_HOSPITALS = 8
DEMO_USER = "reviewer"
DEMO_NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周丽", "吴刚", "徐燕", "孙涛")


def _settle_one(ctx: ServiceContext, principal: Principal, raw: bytes) -> Any:
    return lambda session: settlements.settle(session, ctx, principal, raw)


def setup(settings: Settings, tables: Any) -> tuple[str, str, int] | None:
    """Creates the demo reviewer and settles the demo claims: (username, password, settled); None when the
    database has them already (a second start of the same demo database)."""
    from zoneinfo import ZoneInfo

    from settlement import synth

    db = make_database(settings)
    ctx = ServiceContext(settings=settings, db=db, tables=tables, tz=ZoneInfo(settings.timezone))
    password = secrets.token_urlsafe(9)
    try:
        try:
            run_transaction(db.write, lambda s: create_user(s, DEMO_USER, "reviewer", password))
        except ServiceError as exc:
            if exc.code == "user_exists":
                return None
            raise
        people = synth.population(DEMO_PERSONS, seed=7)
        start = dt.date(DEMO_YEAR, 1, 1)

        registrar = Principal(key_id="demo", role=Role.ADMIN, user="demo")

        def register(session: Any) -> None:
            for i, p in enumerate(people):
                data = PersonIn(scheme=p.scheme, name=DEMO_NAMES[i % len(DEMO_NAMES)], district=p.person_id[:6],
                                categories=[CategoryPeriod(category=p.category, valid_from=start)])
                put_person(session, registrar, p.person_id, data, ctx.now())

        run_transaction(db.write, register)
        settled: list[dict[str, Any]] = []
        for claim in synth.claim_dicts(DEMO_CLAIMS, people, tables, seed=11, year=DEMO_YEAR,
                                       hospitals=DEMO_HOSPITALS, with_identity=False):
            claim["claim_id"] = "DEMO-" + claim["claim_id"].rsplit("-", 1)[-1][-4:]
            principal = Principal(key_id="demo", role=Role.HOSPITAL, hospital_id=claim["hospital"]["id"])
            raw = orjson.dumps(claim)
            try:
                out = run_transaction(db.write, _settle_one(ctx, principal, raw))
            except ServiceError:
                continue  # a synthetic claim no rule fits (no_standard …): not part of the demo
            settled.append({"claim": claim, "id": out.body["settlement_id"]})
        if settled:  # one claim reversed (a wrong bill) and settled again under a new claim id
            first = settled[0]
            admin = Principal(key_id="demo", role=Role.ADMIN)
            reason = "账单录入错误，重新结算"
            run_transaction(db.write, lambda s: settlements.reverse(s, ctx, admin, first["id"], reason))
            again = {**first["claim"], "claim_id": first["claim"]["claim_id"] + "-R"}
            principal = Principal(key_id="demo", role=Role.HOSPITAL, hospital_id=again["hospital"]["id"])
            run_transaction(db.write, lambda s: settlements.settle(s, ctx, principal, orjson.dumps(again)))
        # the review flags of the demo claims now, not at the background refresher's next run
        from settlement.service.reviews.flags import refresh
        from settlement.service.reviews.rules import rules_at

        refresh(db, rules_at(str(settings.review_rules) if settings.review_rules else None), margin=dt.timedelta(0))
        return DEMO_USER, password, len(settled) + (1 if settled else 0)
    finally:
        db.dispose()
