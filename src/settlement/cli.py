"""The `settlement` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

BUNDLED_SCHEDULES = Path(__file__).resolve().parents[2] / "fee_schedules" / "heilongjiang"


def _cmd_settle(args: argparse.Namespace) -> int:
    from settlement.batchrun import settle_file
    from settlement.engine import compile_tables
    from settlement.schedules import ScheduleError, load_region_cached

    try:
        schedules = load_region_cached(args.schedules)
    except ScheduleError as exc:
        for defect in exc.defects:
            print(defect, file=sys.stderr)
        return 2
    tables = compile_tables(schedules)
    dask_only = [f"--{k}" for k in ("scheduler", "partitions", "output") if getattr(args, k) is not None]
    if args.engine == "dask":
        if args.workers is not None:
            print("settlement settle: --workers is for the local engine; Dask has --partitions", file=sys.stderr)
            return 2
        from settlement.distributed.command import settle_command

        return settle_command(args, tables)
    if dask_only:
        print(f"settlement settle: {', '.join(dask_only)} need --engine dask", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    if args.file and args.file != "-":
        try:
            handle = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            print(f"settlement settle: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
        with handle:
            settle_file(handle, tables, out.write, workers=args.workers)
    else:
        settle_file(sys.stdin.buffer, tables, out.write, workers=args.workers)
    out.flush()
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from settlement.schedules import ScheduleError, load_region

    try:
        schedules = load_region(args.dir)
    except ScheduleError as exc:
        for defect in exc.defects:
            print(defect)
        print(f"{len(exc.defects)} defect(s) in {args.dir}")
        return 1
    for v in schedules.versions:
        print(
            f"{v.id}\teffective_from {v.effective_from}\t{len(v.catalog)} catalog items\t"
            f"{len(v.charity_funds)} charity funds\t{v.source}"
        )
    return 0


def _settings() -> Any:
    from settlement.service.config import Settings

    return Settings()


def _upgrade(settings: Any) -> None:
    from settlement.service.migrate import upgrade

    upgrade(settings)


def _web_demo(settings: Any) -> None:
    from settlement.service.app import load_tables
    from settlement.web.demo import setup as web_setup

    made = web_setup(settings, load_tables(settings))
    if made is not None:
        user, password, settled = made
        print(f"# demo: {settled} demo claims settled; sign in at /login as {user} with password: {password}")


def _cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from settlement.schedules import ScheduleError
    from settlement.service import logmask
    from settlement.service.app import load_tables

    logmask.install()  # resident ids masked in every log line, uvicorn's own included
    settings = _settings()
    try:
        load_tables(settings)  # refuse to start on a bad schedule folder, naming the defects
    except (ScheduleError, OSError) as exc:
        for defect in getattr(exc, "defects", [str(exc)]):
            print(defect, file=sys.stderr)
        return 2
    _upgrade(settings)
    if args.demo:
        from settlement.service.demo import DEMO_PERSONS, existing_data, setup

        held = existing_data(settings)
        if held is not None:
            print(f"# demo: {held}")
        keys = setup(settings)
        print(f"# demo: {len(DEMO_PERSONS)} persons of examples/claims.jsonl registered; keys (shown once):")
        for name, key in keys:
            print(f"export {name}={key}")
        _web_demo(settings)
        sys.stdout.flush()
    if settings.sqlalchemy_url.startswith("sqlite") and args.workers > 1:
        print("note: SQLite serializes writes; use PostgreSQL for several workers", file=sys.stderr)
    from settlement.service.http import CoalescingHttpToolsProtocol

    uvicorn.run(
        "settlement.service.app:create_app",
        factory=True,
        http=CoalescingHttpToolsProtocol,  # one write per response (service/http.py)
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        # uvicorn formats each request's access line before the logger drops it below info
        access_log=args.log_level in ("trace", "debug", "info"),
    )
    return 0


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from settlement.service.auth.service import create_key
    from settlement.service.db import make_database, run_transaction
    from settlement.service.errors import ServiceError

    if args.role == "hospital" and not args.hospital:
        print("a hospital key needs --hospital <hospital id>", file=sys.stderr)
        return 2
    if args.role != "hospital" and args.hospital:
        print("--hospital is for hospital keys only", file=sys.stderr)
        return 2
    if args.fund and args.role != "insurer":
        print("--fund is for insurer keys only", file=sys.stderr)
        return 2
    settings = _settings()
    _upgrade(settings)
    db = make_database(settings)
    try:
        key = run_transaction(
            db.write,
            lambda session: create_key(
                session, args.role, hospital_id=args.hospital, funds=args.fund, label=args.label
            ),
        )
    except ServiceError as exc:
        print(exc.detail, file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(key)
    return 0


def _cmd_keys_list(args: argparse.Namespace) -> int:
    from settlement.service.auth.service import list_keys
    from settlement.service.db import make_database

    settings = _settings()
    _upgrade(settings)
    db = make_database(settings)
    try:
        with db.read() as session:
            for k in list_keys(session):
                revoked = k.revoked_at.isoformat() if k.revoked_at else "-"
                print(
                    f"{k.key_id}\t{k.role}\t{k.hospital_id or k.funds or '-'}\t{k.label or '-'}"
                    f"\tcreated {k.created_at.isoformat()}\trevoked {revoked}"
                )
    finally:
        db.dispose()
    return 0


def _cmd_keys_revoke(args: argparse.Namespace) -> int:
    from settlement.service.auth.service import revoke_key
    from settlement.service.db import make_database, run_transaction

    settings = _settings()
    _upgrade(settings)
    db = make_database(settings)
    try:
        found = run_transaction(db.write, lambda session: revoke_key(session, args.key_id))
    finally:
        db.dispose()
    if not found:
        print(f"no key {args.key_id}", file=sys.stderr)
        return 1
    return 0


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    from settlement.service.migrate import current

    settings = _settings()
    _upgrade(settings)
    print(f"database at revision {current(settings)}")
    return 0


def _cmd_persons_import(args: argparse.Namespace) -> int:
    from settlement.service.persons.cli import run_import

    return run_import(args.file, args.dry_run, _settings())


def _cmd_flags_refresh(args: argparse.Namespace) -> int:
    from settlement.service.reviews.cli import refresh

    settings = _settings()
    _upgrade(settings)
    return refresh(settings, everything=args.all, batch=args.batch)


def _cmd_flags_status(args: argparse.Namespace) -> int:
    from settlement.service.reviews.cli import status

    settings = _settings()
    _upgrade(settings)
    return status(settings)


def _cmd_users(command: Any, args: argparse.Namespace) -> int:
    settings = _settings()
    _upgrade(settings)
    return int(command(args, settings))


def _add_service_commands(sub: Any) -> None:
    p = sub.add_parser(
        "serve",
        help="run the settlement service (upgrades the database first; SETTLEMENT_DATABASE_URL)",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--demo", action="store_true",
        help="also register the worked examples' persons and print one key per role",
    )
    p.set_defaults(func=_cmd_serve)

    p = sub.add_parser("keys", help="API keys of the service")
    keys = p.add_subparsers(dest="keys_command", required=True)
    k = keys.add_parser("create", help="create a key and print it (alone, once); it is stored hashed")
    k.add_argument("--role", required=True, choices=["hospital", "reviewer", "insurer", "admin"])
    k.add_argument("--hospital", help="the hospital id a hospital key settles for")
    k.add_argument("--fund", action="append", help="insurer keys: limit to this fund (repeatable)")
    k.add_argument("--label", help="a note on whose key it is")
    k.set_defaults(func=_cmd_keys_create)
    k = keys.add_parser("list", help="list keys (ids, roles; never the keys)")
    k.set_defaults(func=_cmd_keys_list)
    k = keys.add_parser("revoke", help="revoke a key by its id (the part after stl_)")
    k.add_argument("key_id")
    k.set_defaults(func=_cmd_keys_revoke)

    p = sub.add_parser("db", help="database tools")
    db = p.add_subparsers(dest="db_command", required=True)
    d = db.add_parser("upgrade", help="upgrade the database to the latest migration")
    d.set_defaults(func=_cmd_db_upgrade)

    p = sub.add_parser("persons", help="person registry tools")
    persons = p.add_subparsers(dest="persons_command", required=True)
    i = persons.add_parser(
        "import",
        help="import a CSV (UTF-8 or GBK) or .xlsx registry file (all or nothing; README: the person registry)",
    )
    i.add_argument("file", help="CSV or .xlsx; columns person_id/公民身份号码, scheme/参保类型, category/救助对象类别, "
                   "valid_from/开始日期, valid_to/结束日期, name/姓名, district/行政区划代码")
    i.add_argument("--dry-run", action="store_true", help="check every row and say what would change; write nothing")
    i.set_defaults(func=_cmd_persons_import)

    p = sub.add_parser("flags", help="review flags (预警): the refresher that materializes them")
    flags = p.add_subparsers(dest="flags_command", required=True)
    f = flags.add_parser("refresh", help="evaluate the review rules on what changed since the last run")
    f.add_argument("--all", action="store_true", help="forget earlier checks: evaluate every settlement again")
    f.add_argument("--batch", type=int, default=2000, help="settlements per transaction")
    f.set_defaults(func=_cmd_flags_refresh)
    f = flags.add_parser("status", help="the refresher's watermark and how many settlements wait")
    f.set_defaults(func=_cmd_flags_status)

    from settlement.service.accounts.commands import add_parser as add_users_parser

    add_users_parser(sub, _cmd_users)


def _insurers(name: str) -> Callable[[argparse.Namespace], int]:
    """The insurers' command `name`, its module (settlement.insurers_cli) imported when the command runs."""

    def run(args: argparse.Namespace) -> int:
        from settlement import insurers_cli

        return int(getattr(insurers_cli, name)(args))

    return run


def _add_insurers_commands(sub: Any) -> None:
    p = sub.add_parser(
        "reconcile",
        help="match a settle output against a payer's file (CSV or .xlsx): exit 0 same, 1 differs, 2 bad input",
    )
    p.add_argument("--fund", required=True, help="a layer (basic, critical_illness, …) or a charity fund id")
    p.add_argument("--ours", required=True, help="results of `settlement settle` (JSON lines)")
    p.add_argument("--theirs", required=True, help="their file: claim_id,amount[,hospital_id][,settlement_id]")
    p.add_argument("--out", help="write every item to this .xlsx")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_insurers("reconcile"))

    p = sub.add_parser(
        "simulate", help="what-if (政策测算): settle the same claims under a baseline and a draft schedule set"
    )
    p.add_argument("--baseline", required=True, help="the region folder in force, e.g. fee_schedules/heilongjiang")
    p.add_argument("--schedules", required=True, help="the draft region folder")
    p.add_argument("claims", help="claims: JSON lines, or Parquet with a string column 'claim'")
    p.add_argument("--by", help="group by a comma list of category,level,month,visit_type,pathway")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--html", help="write a self-contained HTML report with charts here")
    p.add_argument("--engine", choices=["local", "dask"], default="local", help="dask: on a Dask cluster")
    p.add_argument("--scheduler", help="dask: an existing cluster's scheduler address (default: a local cluster)")
    p.add_argument("--partitions", type=int, help="dask: person partitions (default: 2 per worker)")
    p.set_defaults(func=_insurers("simulate"))

    p = sub.add_parser(
        "audit",
        help="re-settle every stored claim from empty in commit order and compare (SETTLEMENT_DATABASE_URL);"
        " exit 1 on any difference",
    )
    p.add_argument(
        "--from", dest="start", help="report results committed from this day (the replay starts at the first)"
    )
    p.add_argument("--to", dest="end", help="replay up to the events of this day (totals are compared on full runs)")
    p.add_argument("--engine", choices=["local", "dask"], default="local", help="dask: on a Dask cluster")
    p.add_argument("--scheduler", help="dask: an existing cluster's scheduler address (default: a local cluster)")
    p.add_argument("--partitions", type=int, help="dask: person partitions (default: 2 per worker)")
    p.set_defaults(func=_insurers("audit"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="settlement", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("settle", help="settle claims (JSON lines) in order from empty accumulators")
    p.add_argument("--schedules", required=True, help="a region folder, e.g. fee_schedules/heilongjiang")
    p.add_argument("file", nargs="?", help="JSON lines file (default: stdin); dask: also Parquet, or a directory")
    p.add_argument(
        "--workers", type=int, default=None,
        help="processes reading claims ahead (default: one per core; settling itself stays in order)",
    )
    p.add_argument(
        "--engine", choices=["local", "dask"], default="local",
        help="dask: by person partitions on a Dask cluster, the same output (README: Beyond one machine)",
    )
    p.add_argument("--scheduler", help="dask: an existing cluster's scheduler address (default: a local cluster)")
    p.add_argument("--partitions", type=int, help="dask: person partitions (default: 2 per worker)")
    p.add_argument("--output", help="dask: write here instead of stdout; *.parquet: Parquet with typed columns")
    p.set_defaults(func=_cmd_settle)

    p = sub.add_parser("schedules", help="fee schedule tools")
    sched = p.add_subparsers(dest="schedules_command", required=True)
    v = sched.add_parser("validate", help="check a region folder strictly")
    v.add_argument("dir")
    v.set_defaults(func=_cmd_validate)

    _add_service_commands(sub)
    _add_insurers_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # numpy's OpenBLAS starts a thread per core when numpy loads; nothing here calls BLAS (int64 arrays
    # only), and starting them costs a short command ~10-20 % of its time (docs/PERFORMANCE.md §7.5)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
