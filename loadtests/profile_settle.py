"""In-process cost of one settle / preview, without HTTP: the service functions in a loop.

    .venv/bin/python -m loadtests.profile_settle --n 2000            # timings
    .venv/bin/python -m loadtests.profile_settle --n 500 --profile   # pyinstrument tree

Seeds a fresh database (``--database-url``), builds the service context the
app builds, and calls ``settlements.service.settle`` through
``db.run_transaction`` exactly as the route does, one claim after another on
one thread: wall time per call is CPU plus database round trips, with no
contention. Also counts the SQL statements each call sends.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import orjson
from sqlalchemy import event

from .common import hospital_level, load_world
from .seed import drop_database, seed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--persons", type=int, default=20_000)
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/settlement_profile")
    p.add_argument("--profile", action="store_true", help="print a pyinstrument profile of the settle loop")
    p.add_argument("--kind", choices=["settle", "preview"], default="settle")
    args = p.parse_args()

    from settlement.engine import compile_tables
    from settlement.schedules import load_region
    from settlement.service.app import create_app
    from settlement.service.auth.service import authenticate
    from settlement.service.config import Settings, bundled_schedules
    from settlement.service.db import run_transaction
    from settlement.service.settlements import service
    from settlement.synth import claim_dicts

    out = Path("/tmp/settlement-profile-seed.json")
    seed(args.database_url, persons=args.persons, hospitals=1, population_seed=1, hot_persons=5, out=out)
    world = load_world(out)
    tables = compile_tables(load_region(bundled_schedules()))
    app = create_app(Settings(database_url=args.database_url), tables=tables)
    ctx = app.state.ctx
    hospital, key = next(iter(world.hospitals.items()))
    with ctx.db.read() as session:
        principal = authenticate(session, key)
    bodies = []
    for k, claim in enumerate(claim_dicts(args.n, world.persons, tables, seed=5, year=2019, with_identity=False)):
        claim["claim_id"] = f"P-{k}"
        claim["hospital"] = {"id": hospital, "level": hospital_level(hospital)}
        bodies.append(orjson.dumps(claim))
    random.Random(1).shuffle(bodies)

    statements = [0]

    @event.listens_for(ctx.db.engine, "before_cursor_execute")
    def _count(*_a: object) -> None:
        statements[0] += 1

    def one(raw: bytes) -> None:
        if args.kind == "settle":
            run_transaction(ctx.db.write, lambda s: service.settle(s, ctx, principal, raw))
        else:
            with ctx.db.read() as s:
                service.preview(s, ctx, principal, raw)
                s.rollback()

    for raw in bodies[:50]:  # warm caches (statement cache, prepared statements)
        one(raw)
    statements[0] = 0
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.0005)
        profiler.start()
    walls = []
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    for raw in bodies[50:]:
        s = time.perf_counter()
        one(raw)
        walls.append(time.perf_counter() - s)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    if profiler is not None:
        profiler.stop()
        print(profiler.output_text(unicode=True, color=False, show_all=False))
    n = len(walls)
    walls.sort()
    print(
        f"{args.kind}: {n} calls, {n / wall:,.0f}/s on one thread; wall per call mean {wall / n * 1000:.2f} ms,"
        f" p50 {statistics.median(walls) * 1000:.2f} ms, p99 {walls[int(n * 0.99)] * 1000:.2f} ms;"
        f" CPU of this process per call {cpu / n * 1000:.2f} ms; SQL statements per call {statements[0] / n:.1f}"
    )
    ctx.db.dispose()
    drop_database(args.database_url)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
