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
import contextlib
import os
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
        choices=["service", "asgi", "steps"],
        default="service",
        help="service: the settle function as the route calls it (the portable/locked way's"
        " transaction); asgi: whole requests through the ASGI app (middlewares, routing, the"
        " thread-pool hop, the PostgreSQL counter path), without a socket; steps: each step of the"
        " counter's PostgreSQL path (settlements.pgcounter) timed alone, with the CPU of its"
        " PostgreSQL backend",
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

    if args.via == "steps":
        steps(ctx, key, bodies)
        ctx.db.dispose()
        drop_database(args.database_url)
        return

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


def steps(ctx: Any, key: str, bodies: list[bytes]) -> None:
    """CPU per step of a settle on the counter's connection, this process and its PostgreSQL backend.

    Every claim is read, computed and previewed; every second one is also written
    (the others stay previews, so the pools and totals move as under load).
    """
    from settlement.service.settlements import pgcounter
    from settlement.service.settlements.counter import compute
    from settlement.service.settlements.hashing import claim_hash
    from settlement.service.settlements.service import computed_body, decode_claim

    client: dict[str, float] = {}
    backend: dict[str, float] = {}
    counts: dict[str, int] = {}

    def backend_cpu(pid: int) -> float:  # utime + stime of the backend process, in seconds
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def respond(snap: Any, comp: Any) -> bytes:
        after = comp.accumulators_json(snap.cc.person_id, snap.cc.policy_year)
        body = computed_body(
            snap.cc, comp, status="preview", settlement_id=None, settled_at=None, accumulators_after=after
        )
        return orjson.dumps(body)

    with ctx.db.counter() as conn:
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]

        def timed(name: str, f: Any, *a: Any) -> Any:
            b0, c0 = backend_cpu(pid), time.process_time()
            out = f(*a)
            client[name] = client.get(name, 0.0) + time.process_time() - c0
            backend[name] = backend.get(name, 0.0) + backend_cpu(pid) - b0
            counts[name] = counts.get(name, 0) + 1
            return out

        for i, raw in enumerate(bodies):
            if i == 100:  # the first ones warm caches and prepared statements
                client.clear(), backend.clear(), counts.clear()
            claim = timed("validate the claim", decode_claim, raw)
            timed("claim hash", claim_hash, claim)
            snap = timed("read statement and checks", pgcounter.read, conn, ctx, key, raw, claim)
            comp = timed("engine, result, trace", compute, snap.cc, snap.before, snap.pools)
            timed("response body", respond, snap, comp)
            if i % 2 == 0:
                with contextlib.suppress(pgcounter.UseLockedPath, pgcounter.Moved):
                    timed("write statement", pgcounter.write, conn, ctx, snap, comp, raw, claim_hash(claim))
    for name, seconds in client.items():
        n = counts[name]
        per_call = seconds / n * 1e6
        print(f"{name:28s} {per_call:7.0f} µs   PostgreSQL backend {backend[name] / n * 1e6:7.0f} µs   ({n} calls)")


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
