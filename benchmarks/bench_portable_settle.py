"""The portable writer on SQLite: settlements.service.settle and reverse in a loop, in process.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_portable_settle.py --n 1500 --reverse 300

The compiled kernels are loaded first (as the service's warm-up does). A fresh SQLite
file is migrated, synthetic persons and hospitals are registered, then ``--n`` synthetic
claims are settled one transaction each (db.run_transaction, as the route does) and the
first ``--reverse`` of them reversed. Prints settles/s and reversals/s and the
CPU per call of this process. Runs with whichever ``settlement`` is on PYTHONPATH, so two
commits can be compared by alternating invocations (docs/PERFORMANCE.md §5.5).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1500)
    p.add_argument("--reverse", type=int, default=300)
    p.add_argument("--persons", type=int, default=300)
    args = p.parse_args()

    from settlement import jit, synth
    from settlement.engine import compile_tables
    from settlement.schedules import load_region
    from settlement.service.auth.keys import Role
    from settlement.service.auth.service import Principal
    from settlement.service.config import Settings, bundled_schedules
    from settlement.service.context import ServiceContext
    from settlement.service.db import make_database, run_transaction
    from settlement.service.errors import ServiceError
    from settlement.service.hospitals.schemas import HospitalIn
    from settlement.service.hospitals.service import put_hospital
    from settlement.service.migrate import upgrade
    from settlement.service.persons.schemas import CategoryPeriod, PersonIn
    from settlement.service.persons.service import put_person
    from settlement.service.settlements import service

    jit.load()  # the compiled kernels, as `settlement serve` has them after its warm-up
    year = 2019
    hospitals = 4
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(settings)
        tables = compile_tables(load_region(bundled_schedules()))
        db = make_database(settings)
        ctx = ServiceContext(settings=settings, db=db, tables=tables, tz=ZoneInfo(settings.timezone))
        people = synth.population(args.persons, seed=7)
        admin = Principal(key_id="bench", role=Role.ADMIN, user="bench")

        def register(session: Any) -> None:
            for h in range(1, hospitals + 1):
                entry = HospitalIn(name=f"H{h}", level=h % 3 + 1, district="230102")
                put_hospital(session, f"H{h:04d}", entry, "bench", ctx.now())
            for person in people:
                data = PersonIn(scheme=person.scheme, name="测试", district=person.person_id[:6],
                                categories=[CategoryPeriod(category=person.category, valid_from=dt.date(year, 1, 1))])
                put_person(session, admin, person.person_id, data, ctx.now())

        run_transaction(db.write, register)
        work: list[tuple[Principal, bytes]] = []
        for claim in synth.claim_dicts(args.n + 50, people, tables, seed=11, year=year, hospitals=hospitals,
                                       with_identity=False):
            claim["hospital"]["level"] = int(claim["hospital"]["id"][1:]) % 3 + 1
            principal = Principal(key_id="bench", role=Role.HOSPITAL, hospital_id=claim["hospital"]["id"])
            work.append((principal, orjson.dumps(claim)))

        def settle(principal: Principal, raw: bytes) -> str | None:
            try:
                out = run_transaction(db.write, lambda s: service.settle(s, ctx, principal, raw))
            except ServiceError:
                return None  # a synthetic claim no rule fits (no_standard)
            return str(out.body["settlement_id"])

        for principal, raw in work[:50]:  # warm: the kernels, statement caches
            settle(principal, raw)
        ids: list[str] = []
        cpu0, t0 = time.process_time(), time.perf_counter()
        for principal, raw in work[50:]:
            sid = settle(principal, raw)
            if sid is not None:
                ids.append(sid)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        n = len(work) - 50
        print(f"settle: {n} calls ({len(ids)} settled), {n / wall:,.0f}/s; wall {wall / n * 1000:.3f} ms,"
              f" CPU {cpu / n * 1000:.3f} ms per call")

        chosen = ids[: args.reverse]
        cpu0, t0 = time.process_time(), time.perf_counter()
        for sid in chosen:
            run_transaction(db.write, lambda s, sid=sid: service.reverse(s, ctx, admin, sid, "bench"))
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        if chosen:
            k = len(chosen)
            print(f"reverse: {k} calls, {k / wall:,.0f}/s; wall {wall / k * 1000:.3f} ms,"
                  f" CPU {cpu / k * 1000:.3f} ms per call")
        db.dispose()


if __name__ == "__main__":
    main()
