"""The review queue and its export on 1,000,000 stored settlements (PostgreSQL), through a real server.

    .venv/bin/python benchmarks/bench_review_queue.py --settlements 1000000 [--keep]

1. creates a database of its own (``settlement_bench_review_<hex>`` on SETTLEMENT_BENCH_POSTGRES,
   default postgresql://postgres@127.0.0.1:5432/postgres) and migrates it;
2. fills it in SQL (INSERT … SELECT generate_series, not through the API): persons with districts,
   settlements settled over a year (amounts that add up, a result JSON per row), reviews and review
   statuses for a third of them, the flags their amounts imply, and the charity ledger entries;
3. sums the block totals (settlements.rollup.refresh, as the service's refresher would; ``--blocks off``
   empties them instead: every total from the rows, for the A/B of docs/PERFORMANCE.md §9.1c);
4. starts ``settlement serve`` (one worker, the flags refresher off) and times the queue's common
   filters (first page of 50 with the count and totals of the whole filter): p50/p95 of N requests
   each, after 2 warm-ups, once the server is idle after its start (its kernels' compile thread done;
   the first two requests are printed apart: docs/PERFORMANCE.md §9.1e);
5. exports ~100,000 rows as .xlsx and as CSV, timing each and sampling the server's RSS every 20 ms.

The machine is shared (8 people, 2 cores): the figures are what one run saw, not a capacity.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from settlement.service.settlements.models import AMOUNTS

ADMIN = os.environ.get("SETTLEMENT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
ROOT = Path(__file__).resolve().parents[1]
YEAR_START = "2025-01-01 00:00:00+08"
HOSPITALS = 60
PERSONS_PER = 4  # settlements per person on average
DISTRICTS = ["230102", "230103", "230104", "230108", "230109", "230110", "230111", "230112", "230183", "230184",
             "230202", "230203", "230204", "230205", "230206", "230207", "230208", "230221", "230223", "230224"]

YUAN = "to_char(({x})::numeric / 100, 'FM9999999990.00')"


def yuan(column: str) -> str:
    return YUAN.format(x=column)


def fill(url: str, n: int) -> None:
    persons = max(1, n // PERSONS_PER)
    with psycopg.connect(url, autocommit=True) as conn:
        has_district = conn.execute(
            "SELECT 1 FROM information_schema.columns WHERE table_name = 'persons' AND column_name = 'district'"
        ).fetchone() is not None
        t = time.perf_counter()
        district_col = ", district" if has_district else ""
        district_val = (
            f", (ARRAY{DISTRICTS!r})[1 + (g % {len(DISTRICTS)})]" if has_district else ""
        )
        conn.execute(
            f"INSERT INTO persons (person_id, scheme, created_at, updated_at{district_col})"
            f" SELECT lpad(g::text, 18, '0'), 'resident', now(), now(){district_val}"
            f" FROM generate_series(1, {persons}) g"
        )
        conn.execute(
            "INSERT INTO person_categories (person_id, category, valid_from, valid_to)"
            " SELECT lpad(g::text, 18, '0'), (ARRAY['none','extreme_poverty','subsistence_allowance',"
            "'registered_poor','low_income','illness_impoverished'])[1 + g % 6], '2018-01-01', NULL"
            f" FROM generate_series(1, {persons}) g"
        )
        print(f"persons: {persons} in {time.perf_counter() - t:.1f} s (district column: {has_district})", flush=True)
        # the secondary indexes are built once after the fill (as the migrations define them; faster than
        # 1,000,000 inserts into each), the primary key and unique constraints stay
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'settlements'"
            " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        ).fetchall()
        for index_name, _definition in indexes:
            conn.execute(f'DROP INDEX "{index_name}"')  # type: ignore[arg-type]
        step = 100_000
        for start in range(1, n + 1, step):
            stop = min(n, start + step - 1)
            t = time.perf_counter()
            conn.execute(SETTLEMENTS.format(start=start, stop=stop, n=n, persons=persons, hospitals=HOSPITALS,
                                            year_start=YEAR_START, **RESULT))
            print(f"settlements {start}-{stop}: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        for _index_name, definition in indexes:
            conn.execute(definition)
        print(f"indexes {', '.join(name for name, _d in indexes)}: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        carried = ("settled_at", "admitted", "discharged", *(f"{name}_fen" for name in AMOUNTS))
        for sql in AFTER:
            sql = sql.replace("{carried}", ", ".join(carried))
            sql = sql.replace("{carried_s}", ", ".join(f"s.{c}" for c in carried))
            conn.execute(sql)  # type: ignore[arg-type]
        print(f"events, ledger, reviews, flags: {time.perf_counter() - t:.1f} s", flush=True)
        t = time.perf_counter()
        conn.execute("VACUUM ANALYZE")
        print(f"vacuum analyze: {time.perf_counter() - t:.1f} s", flush=True)


RESULT = {
    "result": (
        "json_build_object('claim_id', 'B' || g, 'schedule', 'heilongjiang-2019', 'policy_year', 2025,"
        " 'pathway', pathway, 'disease_group', NULL,"
        f" 'amounts', json_build_object('total', {yuan('total')}, 'fully_self_paid', {yuan('fsp')},"
        f" 'over_limit', {yuan('ol')}, 'pre_self_paid', {yuan('psp')}, 'in_scope', {yuan('total - fsp - ol - psp')},"
        f" 'deductible', {yuan('ded')}),"
        f" 'payments', json_build_object('basic', {yuan('basic')}, 'critical_illness', {yuan('ci')},"
        f" 'medical_assistance', {yuan('ma')}, 'charity', {yuan('ch')}, 'emergency_relief', '0.00',"
        f" 'backstop', {yuan('bs')}),"
        f" 'charity_by_fund', CASE WHEN ch > 0 THEN json_build_object('poverty_relief', {yuan('ch')})"
        " ELSE json_build_object() END,"
        f" 'patient_pays', {yuan('total - basic - ci - ma - ch - bs - hb')}, 'hospital_bears', {yuan('hb')})"
    ),
}

SETTLEMENTS = """
INSERT INTO settlements (settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id, status, settled_at,
    reversed_at, person_id, scheme, category, visit_type, admitted, discharged, policy_year, schedule_version, pathway,
    disease_group, total_fen, fully_self_paid_fen, over_limit_fen, pre_self_paid_fen, in_scope_fen, deductible_fen,
    basic_fen, critical_illness_fen, medical_assistance_fen, charity_fen, backstop_fen, patient_pays_fen,
    hospital_bears_fen, result, trace, accumulators_after, contribution)
SELECT md5(g::text)::uuid::text, 'H' || lpad((1 + g % {hospitals})::text, 4, '0'), 'B' || g, md5('c' || g),
    '{{"claim_id": "B' || g || '"}}', 'benchkey0000', CASE WHEN g % 97 = 0 THEN 'reversed' ELSE 'settled' END,
    settled, CASE WHEN g % 97 = 0 THEN settled + interval '1 day' END,
    lpad((1 + (g::bigint * 7919) % {persons})::text, 18, '0'), 'resident',
    (ARRAY['none','extreme_poverty','subsistence_allowance','registered_poor','low_income','illness_impoverished'])
        [1 + g % 6],
    (ARRAY['inpatient','inpatient','outpatient','chronic_outpatient'])[1 + g % 4],
    (settled - interval '5 days')::date, (settled - interval '1 day')::date, 2025, 'heilongjiang-2019', pathway, NULL,
    total, fsp, ol, psp, total - fsp - ol - psp, ded, basic, ci, ma, ch, bs, total - basic - ci - ma - ch - bs - hb, hb,
    {result}, '[]', '{{}}', '{{}}'
FROM (
    SELECT g, settled, pathway, total, fsp, ol, psp, ded, basic, ci, ma, ch, bs, hb
    FROM (
        SELECT g, timestamptz '{year_start}' + (g::float8 / {n}) * interval '365 days' AS settled,
            CASE WHEN g % 10 = 0 THEN 'single_disease' ELSE 'standard' END AS pathway,
            t AS total, t / 20 AS fsp, CASE WHEN g % 7 = 0 THEN t / 50 ELSE 0 END AS ol, t / 25 AS psp,
            least(t / 10, 80000) AS ded, t / 2 AS basic, CASE WHEN t > 2000000 THEN t / 20 ELSE 0 END AS ci,
            t / 10 AS ma, CASE WHEN g % 5 = 0 THEN t / 20 ELSE 0 END AS ch,
            CASE WHEN g % 9 = 0 THEN t / 25 ELSE 0 END AS bs, CASE WHEN g % 50 = 0 THEN t / 100 ELSE 0 END AS hb
        FROM (SELECT g, 10000 + ((g::bigint * 2654435761) % 30000000) AS t
              FROM generate_series({start}, {stop}) g) s
    ) a
) b
"""

AFTER = [
    # a settled event for the rows a charity fund paid, and its ledger entry (the fund filter reads these)
    "INSERT INTO settlement_events (settlement_seq, kind, at, key_id)"
    " SELECT seq, 'settled', settled_at, key_id FROM settlements WHERE charity_fen > 0",
    "INSERT INTO ledger_entries"
    " (settlement_seq, event_seq, kind, hospital_id, layer, fund, amount_fen, business_date, at)"
    " SELECT s.seq, e.seq, 'settled', s.hospital_id, 'charity', 'poverty_relief', s.charity_fen,"
    " (s.settled_at AT TIME ZONE 'Asia/Shanghai')::date, s.settled_at"
    " FROM settlements s JOIN settlement_events e ON e.settlement_seq = s.seq",
    # a third reviewed: mostly approved, some queried or to recover
    "INSERT INTO settlement_reviews (settlement_seq, decision, note, actor, at)"
    " SELECT seq, CASE WHEN seq % 30 = 0 THEN 'query' WHEN seq % 31 = 0 THEN 'recover' ELSE 'approve' END,"
    " CASE WHEN seq % 30 = 0 OR seq % 31 = 0 THEN '请说明' END, 'bench', settled_at + interval '2 days'"
    " FROM settlements WHERE seq % 3 = 0",
    # the status rows carry their settlement's dates and amounts (migration 0014), as the service writes them
    "INSERT INTO settlement_review_status (settlement_seq, status, review_id, at, {carried})"
    " SELECT r.settlement_seq, CASE r.decision WHEN 'approve' THEN 'approved' WHEN 'query' THEN 'queried'"
    " ELSE 'recovery' END, r.id, r.at, {carried_s}"
    " FROM settlement_reviews r JOIN settlements s ON s.seq = r.settlement_seq",
    # the flags the amounts imply, as the refresher would write them
    "INSERT INTO settlement_flags (settlement_seq, rule, figures, threshold, at)"
    " SELECT seq, 'backstop_paid', json_build_object('backstop', backstop_fen), '{}'::json, now()"
    " FROM settlements WHERE backstop_fen > 0",
    "INSERT INTO settlement_flags (settlement_seq, rule, figures, threshold, at)"
    " SELECT seq, 'high_total', json_build_object('total', total_fen), '{\"amount\": \"100000.00\"}'::json, now()"
    " FROM settlements WHERE total_fen > 10000000",
    "INSERT INTO settlement_flags (settlement_seq, rule, figures, threshold, at)"
    " SELECT seq, 'over_price_cap', json_build_object('over_limit', over_limit_fen), '{}'::json, now()"
    " FROM settlements WHERE over_limit_fen > 0",
    # the seq marks the refresher takes once a minute (here: hourly, settled_at being exact)
    "INSERT INTO settlement_seq_marks (at_hi, at_lo, seq)"
    " SELECT h, h, max(m) OVER (ORDER BY h) FROM (SELECT date_trunc('hour', settled_at) + interval '1 hour' AS h,"
    " max(seq) AS m FROM settlements GROUP BY 1) x",
    "INSERT INTO settlement_flags (settlement_seq, rule, figures, threshold, at)"
    " SELECT seq, 'readmission', '{}'::json, '{\"days\": 15}'::json, now() FROM settlements WHERE seq % 53 = 0",
]


INSERT_COLUMNS = (
    "settlement_id, hospital_id, claim_id, claim_hash, request_body, key_id, status, settled_at, person_id, scheme,"
    " category, visit_type, admitted, discharged, policy_year, schedule_version, pathway, total_fen,"
    " fully_self_paid_fen, over_limit_fen, pre_self_paid_fen, in_scope_fen, deductible_fen, basic_fen,"
    " critical_illness_fen, medical_assistance_fen, charity_fen, backstop_fen, patient_pays_fen, hospital_bears_fen,"
    " result, trace, accumulators_after, contribution"
)


def index_insert_cost(url: str, rows: int = 5000, rounds: int = 4) -> None:
    """The counter-side cost of ix_settlements_queue: ``rows`` one-row INSERTs of settlements (copies of stored
    ones) in one transaction, rolled back, with the index and with it dropped inside the transaction, interleaved."""
    select_list = INSERT_COLUMNS.replace("settlement_id,", "md5(settlement_id || %(n)s)::uuid::text,", 1).replace(
        " claim_id,", " claim_id || '-ab' || %(n)s,", 1)
    sql = f"INSERT INTO settlements ({INSERT_COLUMNS}) SELECT {select_list} FROM settlements WHERE seq = %(seq)s"
    times: dict[str, list[float]] = {"with index": [], "without": []}
    with psycopg.connect(url) as conn:
        for r in range(rounds):
            for label in times:
                with conn.transaction(force_rollback=True):
                    if label == "without":
                        conn.execute("DROP INDEX ix_settlements_queue")
                    t = time.perf_counter()
                    for i in range(rows):
                        conn.execute(sql, {"n": f"{r}-{i}", "seq": 1 + i * 97})  # type: ignore[arg-type]
                    times[label].append((time.perf_counter() - t) / rows * 1e6)
    for label, values in times.items():
        print(f"{label}: µs per one-row INSERT, {rounds} rounds: {[round(v) for v in values]},"
              f" median {statistics.median(values):.0f}")


def blocks(url: str, on: bool) -> None:
    """The block totals (settlements.rollup) summed up to the closed seq, or emptied."""
    import datetime as dt

    from settlement.service.config import Settings
    from settlement.service.db import make_database
    from settlement.service.settlements import rollup

    if not on:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM settlement_seq_blocks")
        print("block totals: none (every total from the rows)", flush=True)
        return
    settings = Settings(database_url=url)
    db = make_database(settings)
    try:
        t = time.perf_counter()
        written = rollup.refresh(db, margin=dt.timedelta(seconds=settings.flags_refresh_margin_seconds))
        print(f"block totals: {written} blocks written in {time.perf_counter() - t:.1f} s", flush=True)
    finally:
        db.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, quiet: float = 0.01, limit: float = 30.0) -> float:
    """Waits until the server process is idle (< ``quiet`` s of CPU in half a second), at most ``limit`` s;
    the seconds waited. After /readyz a new server still loads its numba kernels in a thread (settlement.jit),
    holding the GIL for ~1.5 s here: queries timed then measure that start, not the queue (§9.1e)."""
    start = time.perf_counter()
    before = cpu_seconds(pid)
    while time.perf_counter() - start < limit:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - before < quiet:
            break
        before = now
    return time.perf_counter() - start


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def timed(client: httpx.Client, params: dict[str, Any], runs: int) -> tuple[list[float], list[float], dict[str, Any]]:
    """(the times of ``runs`` requests after 2 warm-ups, the warm-ups' times, the last body); ms."""
    body: dict[str, Any] = {}
    times = []
    for _ in range(runs + 2):  # 2 warm-ups first
        t = time.perf_counter()
        response = client.get("/v1/settlements", params=params)
        times.append((time.perf_counter() - t) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{params}: {response.status_code} {response.text[:300]}")
        body = response.json()
    return times[2:], times[:2], body


MONTH = {"settled_from": "2025-11-01", "settled_to": "2025-11-30"}
QUERIES: list[tuple[str, dict[str, Any]]] = [
    ("pending, settled in a month", {"review_status": "pending", **MONTH}),
    ("a hospital, settled in a month", {"hospital_id": "H0007", "settled_from": "2025-06-01",
                                        "settled_to": "2025-06-30"}),
    ("a flag, pending", {"flag": "readmission", "review_status": "pending"}),
    ("a flag, settled in a month", {"flag": "backstop_paid", "settled_from": "2025-03-01",
                                    "settled_to": "2025-03-31"}),
    ("a district, settled in a month", {"district": "230104", "settled_from": "2025-09-01",
                                        "settled_to": "2025-09-30"}),
    ("backstop paid, a hospital", {"fund": "backstop", "hospital_id": "H0031"}),
    ("a charity fund paid, a month", {"fund": "poverty_relief", "settled_from": "2025-12-01",
                                      "settled_to": "2025-12-31"}),
    ("queried, largest first", {"review_status": "queried", "sort": "-total"}),
    ("a month, largest first", {**MONTH, "sort": "-total"}),
    ("a person", {"person_id": "000000000000001234"}),
    ("total above 200,000, a quarter", {"total_min": "200000.00", "settled_from": "2025-07-01",
                                        "settled_to": "2025-09-30"}),
    ("discharged in a week, inpatient", {"from": "2025-05-01", "to": "2025-05-07", "visit_type": "inpatient"}),
    ("everything (1,000,000 rows' totals)", {}),
]


def export(base: str, headers: dict[str, str], pid: int, params: dict[str, Any], fmt: str) -> dict[str, Any]:
    peak = [rss_kb(pid)]
    before = peak[0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    size = 0
    cpu = cpu_seconds(pid)
    t = time.perf_counter()
    with httpx.stream("GET", f"{base}/v1/settlements", params={**params, "format": fmt}, headers=headers,
                      timeout=600) as response:
        if response.status_code != 200:
            raise SystemExit(f"export {fmt}: {response.status_code}")
        for chunk in response.iter_bytes():
            size += len(chunk)
    seconds = time.perf_counter() - t
    done.set()
    sampler.join()
    return {"format": fmt, "seconds": round(seconds, 2), "server_cpu_seconds": round(cpu_seconds(pid) - cpu, 2),
            "bytes": size, "rss_before_mb": round(before / 1024, 1),
            "rss_peak_mb": round(peak[0] / 1024, 1), "rss_growth_mb": round((peak[0] - before) / 1024, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settlements", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--url", help="an already filled database (skips creating and filling)")
    parser.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    parser.add_argument("--export-only", action="store_true", help="skip the queries, time the exports only")
    parser.add_argument("--fill-only", action="store_true", help="create and fill the database, keep it, stop")
    parser.add_argument("--no-export", action="store_true", help="the queries only")
    parser.add_argument("--index-insert-cost", action="store_true",
                        help="with --url: time one-row inserts with and without ix_settlements_queue, then stop")
    parser.add_argument("--each", action="store_true", help="print every run's time, in order, under each query")
    parser.add_argument("--queries", help="only the queries whose label contains one of these (comma-separated)")
    parser.add_argument("--blocks", choices=("on", "off"), default="on",
                        help="on: the block totals summed before the queries; off: emptied (totals from the rows)")
    args = parser.parse_args()

    name = None
    url = args.url
    if args.index_insert_cost:
        if url is None:
            raise SystemExit("--index-insert-cost needs --url (a filled database)")
        index_insert_cost(url)
        return 0
    if url is None:
        name = f"settlement_bench_review_{secrets.token_hex(4)}"
        with psycopg.connect(ADMIN, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        url = ADMIN.rsplit("/", 1)[0] + "/" + name
    env = {**os.environ, "SETTLEMENT_DATABASE_URL": url, "SETTLEMENT_FLAGS_REFRESH_SECONDS": "0"}
    settlement = str(Path(sys.executable).with_name("settlement"))
    server = None
    try:
        subprocess.run([settlement, "db", "upgrade"], env=env, check=True)
        if args.url is None:
            fill(url, args.settlements)
        if args.fill_only:
            args.keep = True
            return 0
        blocks(url, args.blocks == "on")
        key = subprocess.run([settlement, "keys", "create", "--role", "reviewer", "--label", "bench"], env=env,
                             check=True, capture_output=True, text=True).stdout.strip()
        port = free_port()
        server = subprocess.Popen([settlement, "serve", "--port", str(port), "--log-level", "warning"], env=env)
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {key}"}
        for _ in range(200):
            try:
                if httpx.get(f"{base}/readyz").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        print(f"the server's startup work after /readyz (the kernels' compile thread): {settle(server.pid):.1f} s",
              flush=True)
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            print(f"\n{'query (first page of 50, count and totals of the whole filter)':<44} {'count':>8}"
                  f" {'p50 ms':>8} {'p95 ms':>8}")
            wanted = args.queries.split(",") if args.queries else None
            cold = True
            for label, params in [] if args.export_only else QUERIES:
                if wanted is not None and not any(w in label for w in wanted):
                    continue
                times, warm, body = timed(client, {**params, "limit": 50}, args.runs)
                p95 = statistics.quantiles(times, n=20)[-1]
                print(f"{label:<44} {body['count']:>8} {statistics.median(times):>8.1f} {p95:>8.1f}", flush=True)
                if cold:  # the server's first requests: its first statements, connection, compiles (§9.1e)
                    print(f"    the server's first two requests (warm-ups, not in p50/p95): {warm[0]:.0f},"
                          f" {warm[1]:.0f} ms", flush=True)
                    cold = False
                if args.each:
                    print("    warm-ups, then each run, ms:", " ".join(f"{t:.0f}" for t in warm), "|",
                          " ".join(f"{t:.0f}" for t in times), flush=True)
            # ~100,000 rows: 36.5 days of a year's 1,000,000
            span = {"settled_from": "2025-02-01", "settled_to": "2025-03-09"}
            rows = client.get("/v1/settlements", params={**span, "limit": 1}).json()["count"]
        print(f"\nexport of {rows} rows ({span}):")
        for fmt in () if args.no_export else ("xlsx", "csv"):
            print(export(base, headers, server.pid, span, fmt), flush=True)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=30)
        if name is not None and not args.keep:
            with psycopg.connect(ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        elif name is not None:
            print(f"kept: {url}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
