"""A registry import end to end through the service functions: dry run, commit, re-import.

    .venv/bin/python benchmarks/bench_registry_import.py --persons 50000 \
        --database-url postgresql://postgres@127.0.0.1:5432/settlement_bench_registry

Builds a Chinese-header GBK CSV and an .xlsx of the same persons (synth.population,
one period each, with a name and a district), runs on a fresh database (dropped
and created when PostgreSQL): the dry run of each file, the CSV's commit (every
person new: one history record each), the .xlsx's commit (every person unchanged:
nothing written), and a commit that changes every person's category; prints seconds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import time

import openpyxl

from settlement.service.auth.keys import Role
from settlement.service.auth.service import Principal
from settlement.service.config import Settings
from settlement.service.db import make_database, run_transaction
from settlement.service.migrate import upgrade
from settlement.service.persons.importing import CATEGORIES, SCHEMES
from settlement.service.persons.service import import_check, import_commit
from settlement.synth import population

SINCE = dt.date(2018, 1, 1)
HEADER = ["公民身份号码", "姓名", "参保类型", "救助对象类别", "开始日期", "结束日期", "行政区划代码"]


def rows(n: int, shift: bool) -> list[list[str]]:
    cats = list(CATEGORIES)
    out = []
    for i, p in enumerate(population(n)):
        category = cats[(cats.index(p.category) + 1) % len(cats)] if shift else p.category
        out.append([p.person_id, f"姓名{i}", SCHEMES[p.scheme][0], CATEGORIES[category][0],
                    max(p.birth, SINCE).isoformat(),
                    "", p.person_id[:6]])
    return out


def csv_bytes(table: list[list[str]]) -> bytes:
    return ("\r\n".join(",".join(r) for r in [HEADER, *table]) + "\r\n").encode("gbk")


def xlsx_bytes(table: list[list[str]]) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("名册")
    sheet.append(HEADER)
    for r in table:
        sheet.append(r)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def fresh(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--database-url", default="sqlite:///bench-registry.db")
    args = parser.parse_args()
    fresh(args.database_url)
    settings = Settings(database_url=args.database_url)
    upgrade(settings)
    db = make_database(settings)
    actor = Principal(key_id="bench", role=Role.ADMIN)
    table = rows(args.persons, shift=False)
    csv, xlsx, changed = csv_bytes(table), xlsx_bytes(table), csv_bytes(rows(args.persons, shift=True))
    print(f"{args.persons} persons: CSV {len(csv) / 1e6:.1f} MB (GBK), xlsx {len(xlsx) / 1e6:.1f} MB")

    def timed(label: str, fn: object) -> None:
        start = time.perf_counter()
        report = fn()  # type: ignore[operator]
        took = time.perf_counter() - start
        print(f"{label:<28} {took:6.2f} s  ok={report.ok} new={report.new} changed={report.changed}"
              f" unchanged={report.unchanged}")

    with db.read() as session:
        timed("dry run, CSV (all new)", lambda: import_check(session, None, actor, csv, "x.csv"))
        timed("dry run, xlsx (all new)", lambda: import_check(session, None, actor, xlsx, "x.xlsx"))
    timed("commit CSV (all new)", lambda: run_transaction(
        db.write, lambda s: import_commit(s, None, actor, csv, "x.csv")))
    timed("commit xlsx (all unchanged)", lambda: run_transaction(
        db.write, lambda s: import_commit(s, None, actor, xlsx, "x.xlsx")))
    timed("commit CSV (all changed)", lambda: run_transaction(
        db.write, lambda s: import_commit(s, None, actor, changed, "y.csv")))
    db.dispose()


if __name__ == "__main__":
    main()
