"""16 threads settling 400 claims of 20 persons against PostgreSQL, with duplicates, conflicting
claims and reversals mixed in; the end state must equal a sequential replay in commit order.

The schedules are the shipped ones with small charity pools and per-person caps, so that
pools run dry and caps bind while the threads race. About one claim in six is an emergency
of an unidentified patient or of one unable to pay, on a small emergency relief pool with a
small case cap (疾病应急救助, SPEC §5.5): that pool runs dry too, and never below zero.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import queue
import random
import shutil
import threading
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from service_helpers import ROOT, fresh_database_url, person_id, requires_postgres
from sqlalchemy import func, select

from settlement.claims import validate_claim
from settlement.engine import Tables, compile_tables
from settlement.engine.state import PersonYearTotals
from settlement.schedules import load_region
from settlement.service.accumulators.models import PersonCharity, PersonYear
from settlement.service.auth.service import create_key
from settlement.service.config import Settings
from settlement.service.funds.models import FundPool
from settlement.service.funds.repository import POOL_SHARDS
from settlement.service.hospitals.schemas import HospitalIn
from settlement.service.hospitals.service import put_hospital
from settlement.service.migrate import upgrade
from settlement.service.settlements.counter import compute, prepare
from settlement.service.settlements.models import LedgerEntry, Settlement, SettlementEvent

pytestmark = requires_postgres

THREADS = 16
CLAIMS = 400
PERSONS = 20
HOSPITALS = ("H0101", "H0102", "H0103", "H0104")
LEVELS = {"H0101": 1, "H0102": 2, "H0103": 3, "H0104": 3}
"""Each hospital's registered level (the counter settles at it; a claim stating another is refused)."""
POOL_FEN = {"poverty_relief": 800_000, "children_major_illness": 200_000,  # 8000.00 and 2000.00 yuan
            "emergency_relief": 500_000}  # 5000.00 yuan
EMERGENCY_CASE_CAP_FEN = 150_000
PERSON_CAP_FEN = 80_000  # 800.00 yuan per person and fund


def tight_schedules(tmp: Path) -> Path:
    region = tmp / "heilongjiang"
    shutil.copytree(ROOT / "fee_schedules" / "heilongjiang", region)
    path = region / "2018" / "schedule.yaml"
    text = path.read_text()
    for old, new in (
        ("annual_pool: 2000000.00", "annual_pool: 8000.00"),
        ("annual_pool: 500000.00", "annual_pool: 2000.00"),
        ("annual_cap_per_person: 10000.00", "annual_cap_per_person: 800.00"),
        ("annual_cap_per_person: 30000.00", "annual_cap_per_person: 800.00"),
        ("case_cap: 20000.00 ", "case_cap: 1500.00 "),
        ("annual_pool: 1000000.00", "annual_pool: 5000.00"),
    ):
        assert old in text
        text = text.replace(old, new)
    path.write_text(text)
    return region


CATEGORIES = ("registered_poor", "extreme_poverty", "subsistence_allowance", "low_income", "illness_impoverished",
              "none")


def population() -> list[tuple[str, str, str, bool]]:
    """(person id, scheme, category, is a child)."""
    people = []
    for n in range(PERSONS):
        child = n % 7 == 3
        birth = "20120505" if child else f"19{50 + n}0101"
        scheme = "employee" if n % 9 == 8 else "resident"
        category = "subsistence_allowance" if child else CATEGORIES[n % len(CATEGORIES)]
        people.append((person_id(n, birth), scheme, category, child))
    return people


def make_claim(rng: random.Random, n: int, person: tuple[str, str, str, bool], codes: list[str]) -> dict[str, Any]:
    pid, _, _, child = person
    month = rng.randint(1, 12)
    day = rng.randint(1, 20)
    admitted = dt.date(2018, month, day)
    discharged = admitted + dt.timedelta(days=rng.randint(0, 8))
    kind = rng.random()
    claim: dict[str, Any] = {
        "claim_id": f"C-{n:04d}",
        "hospital": {"id": (hospital := rng.choice(HOSPITALS)), "level": LEVELS[hospital]},
        "patient": {"person_id": pid},
        "visit": {"type": "inpatient", "admitted": admitted.isoformat(), "discharged": discharged.isoformat()},
        "diagnosis": {"primary": "J18.9"},
        "items": [
            {"code": rng.choice(codes), "quantity": rng.randint(1, 6), "unit_price": f"{rng.randint(50, 4000)}.00"}
            for _ in range(rng.randint(3, 12))
        ],
    }
    if child and kind < 0.6:
        claim["diagnosis"] = {"primary": "Q21.0"}
        claim["treatment"] = "vsd_repair"
        claim["hospital"] = {"id": rng.choice(("H0103", "H0104")), "level": 3}
    elif kind < 0.15:
        claim["diagnosis"] = {"primary": "C16.0"}
        claim["treatment"] = "surgery"
        claim["hospital"] = {"id": rng.choice(("H0103", "H0104")), "level": 3}
    elif kind < 0.25:
        claim["visit"]["type"] = "outpatient"
        claim["visit"]["discharged"] = claim["visit"]["admitted"]
        claim["diagnosis"] = {"primary": "I10"}
    elif kind < 0.35:
        claim["visit"]["type"] = "chronic_outpatient"
        claim["diagnosis"] = {"primary": "N18.5"}
        claim["treatment"] = "hemodialysis"
        claim["sessions"] = rng.randint(4, 12)
    emergency = rng.random()
    if emergency < 0.17:  # emergency care at a level the fund serves: unidentified, or unable to pay
        claim["visit"]["emergency"] = True
        hospital = rng.choice(("H0102", "H0103", "H0104"))  # levels 2 and 3: the fund's levels
        claim["hospital"] = {"id": hospital, "level": LEVELS[hospital]}
        if emergency < 0.08:
            claim["patient"] = {"unidentified": True, "temporary_id": f"T-{n:04d}"}
        else:
            claim["patient"]["unable_to_pay"] = True
    return claim


@dataclasses.dataclass
class Op:
    kind: str  # settle | settle_reverse | settle_twice_reverse
    claim: dict[str, Any]


def operations(rng: random.Random, people: list[tuple[str, str, str, bool]], codes: list[str]) -> list[Op]:
    ops: list[Op] = []
    for n in range(CLAIMS):
        claim = make_claim(rng, n, people[n % PERSONS], codes)
        roll = rng.random()
        kind = "settle_reverse" if roll < 0.08 else "settle_twice_reverse" if roll < 0.11 else "settle"
        ops.append(Op(kind, claim))
    # duplicates of the same claim, and different claims under an existing claim_id
    for op in rng.sample(ops, 50):
        ops.append(Op("settle", op.claim))
    for op in rng.sample(ops[:CLAIMS], 20):
        other = dict(op.claim)
        other["items"] = [*op.claim["items"], {"code": codes[0], "quantity": 1, "unit_price": "1.00"}]
        ops.append(Op("settle", other))
    rng.shuffle(ops)
    return ops


def _pool_path(path: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("settlement_pool_paths_total", {"path": path}) or 0.0


def _retries() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("settlement_transaction_retries_total") or 0.0


def fen(value: str) -> int:
    whole, _, frac = value.partition(".")
    return int(whole) * 100 + int(frac)


@pytest.fixture
def tight_app(tmp_path: Path) -> Any:
    from settlement.service.app import create_app

    url, cleanup = fresh_database_url(tmp_path, postgres=True)
    settings = Settings(database_url=url, schedules=tight_schedules(tmp_path), db_pool_size=THREADS + 4)
    upgrade(settings)
    tables = compile_tables(load_region(settings.schedules))
    app = create_app(settings, tables=tables)
    yield app
    app.state.ctx.db.dispose()
    cleanup()


def test_sixteen_threads_equal_a_sequential_replay(tight_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from settlement.service.settlements import pgcounter

    app = tight_app
    real_settle = pgcounter.settle

    def some_the_locked_way(ctx: Any, header: Any, raw: bytes, known: Any) -> Any:
        # every third claim goes the locked way (as after ATTEMPTS moved snapshots), so both ways
        # race each other on the same persons and pools
        if int(hashlib.sha256(raw).hexdigest(), 16) % 3 == 0:
            raise pgcounter.UseLockedPath
        return real_settle(ctx, header, raw, known)

    monkeypatch.setattr(pgcounter, "settle", some_the_locked_way)
    tables: Tables = app.state.ctx.tables
    db = app.state.ctx.db
    rng = random.Random(20180101)
    people = population()
    version = tables.schedules.versions[0]
    codes = sorted(version.catalog)
    with db.write() as session:
        admin = create_key(session, "admin")
        keys = {h: create_key(session, "hospital", hospital_id=h) for h in HOSPITALS}
        for h, level in LEVELS.items():
            entry = HospitalIn(name=h, level=level, district="230102")
            put_hospital(session, h, entry, "test", dt.datetime.now(dt.UTC))
        session.commit()
    setup = TestClient(app)
    for pid, scheme, category, _ in people:
        # from 2000, or from birth for the children (a period before birth is refused)
        since = max("2000-01-01", f"{pid[6:10]}-{pid[10:12]}-{pid[12:14]}")
        body = {"scheme": scheme, "categories": [{"category": category, "valid_from": since}]}
        response = setup.put(f"/v1/persons/{pid}", json=body, headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 201, response.text
    ops = operations(rng, people, codes)
    work: queue.Queue[Op] = queue.Queue()
    for op in ops:
        work.put(op)
    results: list[tuple[str, dict[str, Any], int, dict[str, Any], dict[str, str]]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker() -> None:
        client = TestClient(app, raise_server_exceptions=True)
        start.wait()
        try:
            while True:
                try:
                    op = work.get_nowait()
                except queue.Empty:
                    return
                headers = {"Authorization": f"Bearer {keys[op.claim['hospital']['id']]}"}
                response = client.post("/v1/settlements", json=op.claim, headers=headers)
                out = [("settle", op.claim, response.status_code, response.json(), dict(response.headers))]
                if op.kind != "settle" and response.status_code == 201:
                    sid = response.json()["settlement_id"]
                    for _ in range(2 if op.kind == "settle_twice_reverse" else 1):
                        reversal = client.post(f"/v1/settlements/{sid}/reversal", headers=headers)
                        out.append(("reverse", op.claim, reversal.status_code, reversal.json(), {}))
                with lock:
                    results.extend(out)
        except BaseException as exc:  # pragma: no cover - reported below
            with lock:
                errors.append(exc)

    paths_before = {path: _pool_path(path) for path in ("late", "shared", "last", "locked")}
    retries_before = _retries()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert all(not t.is_alive() for t in threads)

    # -- the answers ------------------------------------------------------------------------
    statuses = Counter(status for kind, _, status, _, _ in results if kind == "settle")
    assert set(statuses) <= {200, 201, 409, 422}, statuses
    assert statuses[200] >= 1 and statuses[409] >= 1, statuses
    created: dict[tuple[str, str], dict[str, Any]] = {}
    for kind, claim, status, body, _ in results:
        key = (claim["hospital"]["id"], claim["claim_id"])
        if kind == "settle" and status == 201:
            assert key not in created, f"{key} settled twice"
            created[key] = body
    for kind, claim, status, body, headers in results:
        key = (claim["hospital"]["id"], claim["claim_id"])
        if kind == "settle" and status == 200:
            assert headers["idempotent-replayed"] == "true"
            assert body["settlement_id"] == created[key]["settlement_id"]
            for field in ("amounts", "payments", "charity_by_fund", "patient_pays", "trace"):
                assert body[field] == created[key][field]
        if kind == "settle" and status == 409:
            assert body["code"] == "claim_conflict" and key in created
        if kind == "reverse":
            assert status == 200 and body["status"] == "reversed"
    assert statuses[422] == 0, [b for k, _, s, b, _ in results if s == 422][:3]

    # -- the database -----------------------------------------------------------------------
    with db.read() as session:
        rows = session.scalars(select(Settlement)).all()
        by_seq = {row.seq: row for row in rows}
        assert len(rows) == len(created)
        per_key = Counter((row.hospital_id, row.claim_id) for row in rows)
        assert max(per_key.values()) == 1  # exactly one settlement per (hospital, claim_id)
        assert {(r.hospital_id, r.claim_id) for r in rows} == set(created)
        ledger: dict[tuple[int, str], int] = defaultdict(int)
        for seq, kind, amount in session.execute(
            select(LedgerEntry.settlement_seq, LedgerEntry.kind, LedgerEntry.amount_fen)
        ):
            ledger[(seq, kind)] += amount
        for row in rows:
            assert ledger[(row.seq, "settled")] == row.total_fen  # every ledger sums to its total
            assert ledger[(row.seq, "reversed")] == (-row.total_fen if row.status == "reversed" else 0)
        events = session.execute(
            select(SettlementEvent.settlement_seq, SettlementEvent.kind).order_by(SettlementEvent.seq)
        ).all()
        db_person = {
            (r.person_id, r.policy_year): (
                r.basic_paid_inpatient, r.basic_paid_outpatient, r.basic_paid_chronic_outpatient,
                r.critical_base, r.critical_paid, r.assistance_base, r.assistance_paid,
            )
            for r in session.scalars(select(PersonYear))
        }
        db_charity = {(r.person_id, r.policy_year, r.fund_id): r.paid for r in session.scalars(select(PersonCharity))}
        shards = session.scalars(select(FundPool)).all()
        db_pools: dict[tuple[str, int], int] = defaultdict(int)
        allowances: dict[tuple[str, int], list[int | None]] = defaultdict(list)
        for r in shards:  # a fund-year's use is the sum of its shards
            db_pools[(r.fund_id, r.policy_year)] += r.used
            allowances[(r.fund_id, r.policy_year)].append(r.allowance)
        n_reversed = session.scalar(select(func.count()).where(Settlement.status == "reversed"))
    assert n_reversed and n_reversed == sum(1 for _, kind in events if kind == "reversed")

    # -- a sequential replay in commit order (event seq), through the same engine ----------
    totals: dict[tuple[str, int], PersonYearTotals] = defaultdict(PersonYearTotals)
    pools: dict[int, dict[str, int]] = defaultdict(dict)
    for seq, kind in events:
        row = by_seq[seq]
        year_key = (row.person_id, row.policy_year)
        if kind == "settled":
            claim = validate_claim(json.loads(row.request_body))
            cc = prepare(claim, tables, row.scheme, row.category)
            before = totals[year_key]
            comp = compute(cc, before, dict(pools[row.policy_year]))
            assert comp.fen == {name: getattr(row, f"{name}_fen") for name in comp.fen}, row.claim_id
            assert comp.contribution_json() == row.contribution
            totals[year_key] = comp.after
            pools[row.policy_year].update(comp.pools_after)
        else:
            delta = PersonYearTotals(**row.contribution["person_year"])
            current = totals[year_key]
            totals[year_key] = current.minus(delta)
            for fund, amount in row.contribution["pool_used"].items():
                pools[row.policy_year][fund] -= amount

    for key, t in totals.items():
        want = (t.basic_paid["inpatient"], t.basic_paid["outpatient"], t.basic_paid["chronic_outpatient"],
                t.critical_base, t.critical_paid, t.assistance_base, t.assistance_paid)
        assert db_person.get(key, (0,) * 7) == want, key
        for fund, paid in t.charity_paid.items():
            assert db_charity.get((*key, fund), 0) == paid, (key, fund)
    for year, used in pools.items():
        for fund, amount in used.items():
            assert db_pools.get((fund, year), 0) == amount, (fund, year)

    # -- no cap or pool exceeded, and they did bind -------------------------------------------
    for (fund, year), used in db_pools.items():
        assert 0 <= used <= POOL_FEN[fund], (fund, used)
        # every shard has an allowance, each ≥ its use (CHECK), and they add up to the pool
        assert len(allowances[(fund, year)]) == POOL_SHARDS, (fund, allowances)
        assert sum(a or 0 for a in allowances[(fund, year)]) == POOL_FEN[fund], (fund, allowances)
    dry = [body for body in created.values() for step in body["trace"] if "pool remaining 0.00" in step["text"]]
    assert dry, "no pool ran dry: the test would prove nothing"
    emergency_dry = [
        body for body in created.values() for step in body["trace"]
        if step["layer"] == "emergency_relief" and "pool remaining 0.00" in step["text"]
    ]
    assert emergency_dry, "the emergency relief pool did not run dry: the test would prove nothing"
    relief = [fen(body["payments"]["emergency_relief"]) for body in created.values()]
    assert EMERGENCY_CASE_CAP_FEN in relief and max(relief) <= EMERGENCY_CASE_CAP_FEN  # the case cap bound
    unidentified = [row for row in rows if row.temporary_id is not None]
    assert unidentified and all(r.person_id is None and r.patient_pays_fen == 0 for r in unidentified)
    assert all(0 <= paid <= PERSON_CAP_FEN for paid in db_charity.values())
    assert PERSON_CAP_FEN in db_charity.values(), "no person reached a charity cap"
    basic = version.basic.sections
    for (pid, _year), values in db_person.items():
        scheme = next(s for p, s, _, _ in people if p == pid)
        for vt, paid in zip(("inpatient", "outpatient", "chronic_outpatient"), values[:3], strict=True):
            cap = basic[(scheme, vt)].annual_cap_fen
            assert cap is None or paid <= cap, (pid, vt, paid)
    assert all(min(values) >= 0 for values in db_person.values())

    # -- every way a settle can take was taken ------------------------------------------------
    # pgcounter's two statements (late), a spent pool held FOR SHARE (shared), the locked way (locked)
    # (`last` and a moved snapshot depend on the interleaving: tests/service/test_counter.py and
    # test_errors.py take those paths on purpose; here they are only counted)
    taken = {path: _pool_path(path) - n for path, n in paths_before.items()}
    assert taken["late"] and taken["shared"] and taken["locked"], taken
    print(f"paths taken: {taken}, snapshots read again: {_retries() - retries_before}")
