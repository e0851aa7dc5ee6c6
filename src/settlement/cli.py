"""The `settlement` command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BUNDLED_SCHEDULES = Path(__file__).resolve().parents[2] / "fee_schedules" / "heilongjiang"


def _cmd_settle(args: argparse.Namespace) -> int:
    from settlement.batchrun import settle_stream
    from settlement.engine import compile_tables
    from settlement.schedules import ScheduleError, load_region

    try:
        schedules = load_region(args.schedules)
    except ScheduleError as exc:
        for defect in exc.defects:
            print(defect, file=sys.stderr)
        return 2
    tables = compile_tables(schedules)
    out = sys.stdout.buffer
    if args.file and args.file != "-":
        with open(args.file, "rb") as handle:
            settle_stream(handle, tables, out.write)
    else:
        settle_stream(sys.stdin.buffer, tables, out.write)
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="settlement", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("settle", help="settle claims (JSON lines) in order from empty accumulators")
    p.add_argument("--schedules", required=True, help="a region folder, e.g. fee_schedules/heilongjiang")
    p.add_argument("file", nargs="?", help="JSON lines file (default: stdin)")
    p.set_defaults(func=_cmd_settle)

    p = sub.add_parser("schedules", help="fee schedule tools")
    sched = p.add_subparsers(dest="schedules_command", required=True)
    v = sched.add_parser("validate", help="check a region folder strictly")
    v.add_argument("dir")
    v.set_defaults(func=_cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
