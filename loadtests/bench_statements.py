"""Client CPU of one statement: psycopg's cursor against service.pgdirect (PQexecPrepared, text values).

    .venv/bin/python -m loadtests.bench_statements [--database-url URL] [--n 2000] [--rounds 5]

Both ways run the same one-row statement with two parameters on one autocommit
connection, in alternating rounds (this VM's speed drifts by up to 2× within
seconds, so each way keeps its best round); prints CPU µs per statement.
"""

from __future__ import annotations

import argparse
import time

import psycopg

from settlement.service import pgdirect

SQL = "SELECT {a}::int + 1, {b}::text, now()"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    cursor_sql = SQL.format(a="%s", b="%s")
    direct_sql = SQL.format(a="$1", b="$2")
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        ways = {
            "psycopg cursor": lambda i: conn.execute(cursor_sql, (i, "x")).fetchone(),
            "pgdirect": lambda i: pgdirect.execute(conn, direct_sql, (i, "x"))[0],
        }
        best = {name: float("inf") for name in ways}
        for way in ways.values():  # warm: psycopg prepares after 5 runs, pgdirect on the first
            for i in range(50):
                way(i)
        for _ in range(args.rounds):
            for name, way in ways.items():
                t = time.process_time()
                for i in range(args.n):
                    way(i)
                best[name] = min(best[name], (time.process_time() - t) / args.n * 1e6)
    for name, us in best.items():
        print(f"{name:16s} {us:6.1f} µs CPU a statement (best of {args.rounds} rounds of {args.n})")


if __name__ == "__main__":
    main()
