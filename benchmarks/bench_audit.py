"""`settlement audit` over N stored settlements on the PostgreSQL of 127.0.0.1:5432.

    .venv/bin/python benchmarks/bench_audit.py --settlements 1000000

Creates a throw-away database (dropped at the end), migrates it, and fills it
fast: --distinct realistic claims (synth.claim_dicts) repeated under new claim
ids to --settlements, settled once in order by the batch engine, and written
with COPY — settlements (amounts, request bodies, scheme and category as the
service stores them), their events, and the person-year totals and pool use
the run ends with (persons are not registered: the copy runs with
session_replication_role = replica, so foreign keys are not checked). No
reversals are generated (the audit's reversal path is tested, not timed here).
Then times ``settlement.audit.audit`` (the command's work) and reports the
settlements per second and the differences found (0 expected).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
import uuid
from pathlib import Path
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
    args = parser.parse_args()

    name = f"settlement_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    url = f"{ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        run(url, args)
    finally:
        if args.keep:
            print(f"kept {url}")
        else:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


def run(url: str, args: argparse.Namespace) -> None:
    settings = Settings(database_url=url, schedules=Path(args.schedules))
    upgrade(settings)
    tables = compile_tables(load_region(args.schedules))
    t0 = time.perf_counter()
    people = population(max(1000, args.distinct // 5))
    claims = list(claim_dicts(args.distinct, people, tables, year=2018))
    texts = [orjson.dumps(c) for c in claims]
    settler = StreamSettler(tables)
    versions = [v.id for v in tables.schedules.versions]
    at = dt.datetime(2026, 11, 1, 8, tzinfo=dt.UTC)
    seq = 0
    pg = psycopg.connect(url)
    pg.execute("SET session_replication_role = replica")
    copies = -(-args.settlements // args.distinct)
    with pg.cursor() as cur:
        with cur.copy(
            "COPY settlements (seq, settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id, status,"
            " settled_at, person_id, scheme, category, visit_type, admitted, discharged, policy_year,"
            " schedule_version, pathway, disease_group, "
            + ", ".join(f"{a}_fen" for a in AMOUNTS)
            + ", result, trace, accumulators_after, contribution) FROM STDIN"
        ) as copy:
            for r in range(copies):
                n = min(args.distinct, args.settlements - r * args.distinct)
                block = b"\n".join(texts[:n]).replace(b'"claim_id":"S2018-2-', b'"claim_id":"R%04d-' % r) + b"\n"
                chunk = prepare_block(block, tables)
                assert not chunk.errors and chunk.batch is not None
                batch_version = chunk.batch.version.copy()
                result = settler.settle_chunk(chunk)
                assert result is not None and not result.error.any()
                columns = [getattr(result, a).tolist() for a in AMOUNTS]
                fixed = result.pathway_fixed.tolist()
                version = batch_version.tolist()
                for i in range(n):
                    c = claims[i]
                    seq += 1
                    visit = c["visit"]
                    copy.write_row((
                        seq, str(uuid.UUID(int=seq)), c["hospital"]["id"], f"R{r:04d}-{i:08d}", "0" * 64,
                        block_line(block, i), "bench", "settled", at, c["patient"]["person_id"],
                        c["patient"]["scheme"], c["patient"]["category"], visit["type"], visit["admitted"],
                        visit["discharged"], 2018, versions[version[i]],
                        "single_disease" if fixed[i] else "standard", None,
                        *(col[i] for col in columns), "{}", "[]", "{}", "{}",
                    ))
        with cur.copy("COPY settlement_events (seq, settlement_seq, kind, at, key_id) FROM STDIN") as copy:
            for s in range(1, seq + 1):
                copy.write_row((s, s, "settled", at, "bench"))
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
    pg.commit()
    pg.execute("RESET session_replication_role")
    pg.execute("ANALYZE")
    pg.commit()
    pg.close()
    print(f"stored {seq:,} settlements in {time.perf_counter() - t0:.1f} s")

    engine = make_engine(settings, pooled=False)
    start, cpu = time.perf_counter(), time.process_time()
    state = audit(engine, tables, ZoneInfo("Asia/Shanghai"), None, None)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    engine.dispose()
    print(
        f"audit: {state.settled:,} settlements in {elapsed:.1f} s wall ({cpu:.1f} s CPU in this process)"
        f" → {state.settled / elapsed:,.0f}/s; differences: {len(state.differences)}"
    )
    for text in state.differences[:5]:
        print("  ", text)


def block_line(block: bytes, i: int, _cache: dict[int, list[bytes]] = {}) -> str:  # noqa: B006 - a per-block cache
    key = id(block)
    if key not in _cache:
        _cache.clear()
        _cache[key] = block.split(b"\n")
    return _cache[key][i].decode()


if __name__ == "__main__":
    main()
