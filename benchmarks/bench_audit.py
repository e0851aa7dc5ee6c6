"""`settlement audit` over N stored settlements on the PostgreSQL of 127.0.0.1:5432.

    .venv/bin/python benchmarks/bench_audit.py --settlements 1000000 --fill-only   # prints the kept URL
    .venv/bin/python benchmarks/bench_audit.py --database URL [--workers 2]
    .venv/bin/python benchmarks/bench_audit.py --database URL --engine dask --workers 2

The fill: --distinct realistic claims (synth.claim_dicts) repeated under new
claim ids to --settlements, settled once in order by the batch engine; then
the distinct bodies and the narrow per-settlement columns (amounts, version,
pathway) go in by COPY, and the wide settlement rows (request bodies as the
service stores them) are built by PostgreSQL in one INSERT … SELECT; events,
person-year totals and pool use follow (foreign keys off:
session_replication_role = replica). No reversals (the reversal path is
tested, not timed here). --keep / --fill-only keep the database for later
--database runs. The timed part is ``settlement.audit.audit`` (the command's
work) or, with --engine dask, ``distributed.audit.audit_on_cluster`` on a
LocalCluster of --workers single-threaded processes (its start not timed);
both report the differences found (0 expected) and the peak RSS.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import psycopg

from settlement.audit import AMOUNTS, audit
from settlement.batchrun import StreamSettler, prepare_block
from settlement.engine import compile_tables
from settlement.engine.batch import PERSON_COLUMNS
from settlement.schedules import load_region
from settlement.service.config import Settings
from settlement.service.db import make_engine
from settlement.service.migrate import upgrade
from settlement.synth import claim_dicts, population

ADMIN = os.environ.get("SETTLEMENT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--settlements", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=50_000)
    parser.add_argument("--schedules", default="fee_schedules/heilongjiang")
    parser.add_argument("--keep", action="store_true", help="keep the database (its URL is printed)")
    parser.add_argument("--database", help="audit this database, filled by an earlier --keep run (no fill)")
    parser.add_argument("--fill-only", action="store_true", help="fill (and keep) the database, do not audit")
    parser.add_argument("--engine", choices=["local", "dask"], default="local")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="reading processes / Dask workers")
    parser.add_argument("--partitions", type=int, help="dask: person partitions (default: 2 per worker)")
    args = parser.parse_args()

    if args.database:
        audit_run(args.database, args)
        return
    name = f"settlement_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    keep = args.keep or args.fill_only
    try:
        fill(url, args)
        if not args.fill_only:
            audit_run(url, args)
    finally:
        if keep:
            print(f"kept {url}")
        else:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def fill(url: str, args: argparse.Namespace) -> None:
    """Settles the claims once in order, then writes them in a few server-side statements: the distinct
    bodies and the narrow per-settlement columns by COPY, the wide rows by one INSERT … SELECT."""
    settings = Settings(database_url=url, schedules=Path(args.schedules))
    upgrade(settings)
    tables = compile_tables(load_region(args.schedules))
    t0 = time.perf_counter()
    people = population(max(1000, args.distinct // 5))
    claims = list(claim_dicts(args.distinct, people, tables, year=2018))
    texts = [orjson.dumps(c) for c in claims]
    settler = StreamSettler(tables)
    versions = [v.id for v in tables.schedules.versions]
    copies = -(-args.settlements // args.distinct)
    rows: list[bytes] = []
    seq = 0
    for r in range(copies):
        n = min(args.distinct, args.settlements - r * args.distinct)
        block = b"\n".join(texts[:n]).replace(b'"claim_id":"S2018-2-', b'"claim_id":"R%04d-' % r) + b"\n"
        chunk = prepare_block(block, tables)
        assert not chunk.errors and chunk.batch is not None
        version = chunk.batch.version.tolist()
        result = settler.settle_chunk(chunk)
        assert result is not None and not result.error.any()
        columns = [getattr(result, a).tolist() for a in AMOUNTS]
        fixed = result.pathway_fixed.astype(int).tolist()
        for i, row in enumerate(zip(version, fixed, *columns, strict=True)):
            seq += 1
            rows.append(b"%d\t%d\t%d\t" % (seq, r, i) + "\t".join(map(str, row)).encode())
    print(f"settled {seq:,} claims in {time.perf_counter() - t0:.1f} s")
    at = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    pg = psycopg.connect(url)
    pg.execute("SET session_replication_role = replica")
    amounts = ", ".join(f"{a}_fen" for a in AMOUNTS)
    with pg.cursor() as cur:
        cur.execute(
            "CREATE UNLOGGED TABLE bench_claims (i integer PRIMARY KEY, body text, hospital_id text, person_id text,"
            " scheme text, category text, visit_type text, admitted date, discharged date)"
        )
        cur.execute(
            "CREATE UNLOGGED TABLE bench_rows (seq bigint, r integer, i integer, version integer, fixed integer, "
            + ", ".join(f"{a}_fen bigint" for a in AMOUNTS)
            + ")"
        )
        with cur.copy("COPY bench_claims FROM STDIN") as copy:
            for i, c in enumerate(claims):
                visit = c["visit"]
                copy.write_row(
                    (
                        i,
                        texts[i].decode(),
                        c["hospital"]["id"],
                        c["patient"]["person_id"],
                        c["patient"]["scheme"],
                        c["patient"]["category"],
                        visit["type"],
                        visit["admitted"],
                        visit["discharged"],
                    )
                )
        with cur.copy("COPY bench_rows FROM STDIN") as copy:
            for k in range(0, len(rows), 100_000):
                copy.write(b"\n".join(rows[k : k + 100_000]) + b"\n")
        t1 = time.perf_counter()
        cur.execute(
            "INSERT INTO settlements (seq, settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id,"
            " status, settled_at, person_id, scheme, category, visit_type, admitted, discharged, policy_year,"
            f" schedule_version, pathway, disease_group, {amounts}, result, trace, accumulators_after, contribution)"
            " SELECT r.seq, lpad(to_hex(r.seq), 32, '0')::uuid::text, c.hospital_id,"
            " 'R' || lpad(r.r::text, 4, '0') || '-' || lpad(r.i::text, 8, '0'), repeat('0', 64),"
            " replace(c.body, '\"claim_id\":\"S2018-2-', '\"claim_id\":\"R' || lpad(r.r::text, 4, '0') || '-'),"
            " 'bench', 'settled', %(at)s, c.person_id, c.scheme, c.category, c.visit_type, c.admitted, c.discharged,"
            " 2018, (%(versions)s::text[])[r.version + 1],"
            f" CASE WHEN r.fixed = 1 THEN 'single_disease' ELSE 'standard' END, NULL, {amounts},"
            " '{}', '[]', '{}', '{}'"
            " FROM bench_rows r JOIN bench_claims c ON c.i = r.i ORDER BY r.seq",
            {"at": at, "versions": versions},
        )
        cur.execute(
            "INSERT INTO settlement_events (seq, settlement_seq, kind, at, key_id)"
            " SELECT s, s, 'settled', %(at)s, 'bench' FROM generate_series(1, %(n)s) s",
            {"at": at, "n": seq},
        )
        cur.execute("DROP TABLE bench_rows, bench_claims")
        print(f"wide rows inserted in {time.perf_counter() - t1:.1f} s")
        acc = settler.accumulators
        assert acc.person is not None
        funds = list(tables.schedules.fund_ids)
        with cur.copy(
            "COPY person_year_accumulators (person_id, policy_year, basic_paid_inpatient, basic_paid_outpatient,"
            " basic_paid_chronic_outpatient, critical_base, critical_paid, assistance_base, assistance_paid)"
            " FROM STDIN"
        ) as copy:
            for (person, year), row in settler.person_rows.items():
                copy.write_row((person, year, *acc.person[row, :PERSON_COLUMNS].tolist()))
        with cur.copy("COPY person_year_charity (person_id, policy_year, fund_id, paid) FROM STDIN") as copy:
            for (person, year), row in settler.person_rows.items():
                for j, fund in enumerate(funds):
                    paid = int(acc.charity_paid[row, j])
                    if paid:
                        copy.write_row((person, year, fund, paid))
        with cur.copy("COPY fund_pools (fund_id, policy_year, shard, used) FROM STDIN") as copy:
            for year, row in settler.year_rows.items():
                for j, fund in enumerate(funds):
                    copy.write_row((fund, year, 0, int(acc.pool_used[row, j])))
                copy.write_row(("emergency_relief", year, 0, int(acc.pool_used[row, -1])))
    pg.commit()
    pg.execute("RESET session_replication_role")
    pg.commit()
    pg.autocommit = True
    pg.execute("VACUUM ANALYZE")
    pg.close()
    print(f"stored {seq:,} settlements in {time.perf_counter() - t0:.1f} s")


def audit_run(url: str, args: argparse.Namespace) -> None:
    settings = Settings(database_url=url, schedules=Path(args.schedules))
    tables = compile_tables(load_region(args.schedules))
    engine = make_engine(settings, pooled=False)
    tz = ZoneInfo("Asia/Shanghai")
    if args.engine == "dask":
        audit_dask(engine, tables, tz, args)
        return
    start, cpu = time.perf_counter(), time.process_time()
    state = audit(engine, tables, tz, None, None, args.workers)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"audit ({args.workers} reading processes): {state.settled:,} settlements in {elapsed:.1f} s wall"
        f" ({cpu:.1f} s CPU in this process, {children.ru_utime + children.ru_stime:.1f} s in its workers)"
        f" → {state.settled / elapsed:,.0f}/s; differences: {len(state.differences)}; peak RSS {peak:.0f} MB"
        f" (workers' {children.ru_maxrss / 1024:.0f} MB)"
    )
    for text in state.differences[:5]:
        print("  ", text)


def _peak_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def audit_dask(engine: Any, tables: Any, tz: ZoneInfo, args: argparse.Namespace) -> None:
    import logging

    from distributed import Client, LocalCluster
    from settlement.distributed.audit import audit_on_cluster

    with (
        LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            silence_logs=logging.ERROR,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(lambda: __import__("settlement.distributed.audit"))
        start = time.perf_counter()
        result = audit_on_cluster(client, engine, tables, tz, None, None, args.partitions or 2 * args.workers)
        elapsed = time.perf_counter() - start
        peaks = client.run(_peak_rss)
    engine.dispose()
    print(
        f"audit --engine dask ({args.workers} workers): {result.settled:,} settlements in {elapsed:.1f} s wall"
        f" ({', '.join(f'{k} {v:.1f} s' for k, v in result.seconds.items())}; {result.rounds} rounds)"
        f" → {result.settled / elapsed:,.0f}/s; differences: {len(result.differences)};"
        f" peak RSS: client {_peak_rss():.0f} MB, workers {', '.join(f'{v:.0f}' for v in peaks.values())} MB"
    )
    for text in result.differences[:5]:
        print("  ", text)


if __name__ == "__main__":
    main()
