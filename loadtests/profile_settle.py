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
import asyncio
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

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
    p.add_argument(
        "--via",
        choices=["service", "asgi"],
        default="service",
        help="service: the settle function as the route calls it (the portable/locked way's"
        " transaction); asgi: whole requests through the ASGI app (middlewares, routing, the"
        " thread-pool hop, the PostgreSQL counter path), without a socket",
    )
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

    if args.via == "asgi":
        import asyncio

        loop = asyncio.new_event_loop()
        path = "/v1/settlements" if args.kind == "settle" else "/v1/settlements/preview"
        expected = 201 if args.kind == "settle" else 200

        def one(raw: bytes) -> None:
            status = loop.run_until_complete(asgi_post(app, path, raw, key))
            assert status == expected, status

        return run(args, bodies, one, statements, ctx)

    def one(raw: bytes) -> None:  # type: ignore[misc]
        if args.kind == "settle":
            run_transaction(ctx.db.write, lambda s: service.settle(s, ctx, principal, raw))
        else:
            with ctx.db.read() as s:
                service.preview(s, ctx, principal, raw)
                s.rollback()

    run(args, bodies, one, statements, ctx)


def run(args: argparse.Namespace, bodies: list[bytes], one: Any, statements: list[int], ctx: Any) -> None:
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


async def asgi_post(app: Any, path: str, raw: bytes, key: str) -> int:
    """One POST through the ASGI app, as uvicorn would call it; the response status."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"authorization", f"Bearer {key}".encode()),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(raw)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    messages = [{"type": "http.request", "body": raw, "more_body": False}]
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await asyncio.Event().wait()  # the client never disconnects
        return {}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


if __name__ == "__main__":
    main()
