"""The insurers' commands: `settlement reconcile`, `settlement simulate`, `settlement audit`.

cli.py holds only their parsers; the work is here (and in reconcile, simulate, audit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from settlement.money import format_fen


def reconcile(args: argparse.Namespace) -> int:
    """Exit 0 when everything matches, 1 on differences, 2 on bad input (every defect on stderr)."""
    from settlement.reconcile import ITEM_COLUMNS, InputDefects, match, ours_from_results, read_theirs

    defects: list[str] = []
    ours = theirs = None
    try:
        ours_lines = Path(args.ours).read_bytes().splitlines()
        theirs_data = Path(args.theirs).read_bytes()
    except OSError as exc:
        print(f"settlement reconcile: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        ours = ours_from_results(ours_lines, args.fund, args.ours)
    except InputDefects as exc:
        defects += exc.defects
    try:
        theirs = read_theirs(theirs_data, args.theirs, need_hospital=False)
    except InputDefects as exc:
        defects += exc.defects
    if defects or ours is None or theirs is None:
        for defect in defects:
            print(defect, file=sys.stderr)
        return 2
    report = match(ours, theirs, by_hospital=False)
    if args.out:
        from settlement.tabular import write_xlsx

        with open(args.out, "wb") as handle:
            write_xlsx(handle, ITEM_COLUMNS, (i.row() for i in report.items), sheet="对账明细")
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.summary()) + b"\n")
    else:
        summary = report.summary()
        for key, value in summary.items():
            print(f"{key:18} {value}")
        for item in report.items:
            if item.kind in ("matched", "reversed_ours"):
                continue
            ours_text = "-" if item.ours is None else format_fen(item.ours)
            theirs_text = "-" if item.theirs is None else format_fen(item.theirs)
            where = f" (line {item.line})" if item.line else ""
            print(f"{item.kind}\t{item.claim_id}\tours {ours_text}\ttheirs {theirs_text}{where}")
    sys.stdout.flush()
    return 0 if report.clean else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "reconcile",
        help="match a settle output against a payer's file (CSV or .xlsx): exit 0 same, 1 differs, 2 bad input",
    )
    p.add_argument("--fund", required=True, help="a layer (basic, critical_illness, …) or a charity fund id")
    p.add_argument("--ours", required=True, help="results of `settlement settle` (JSON lines)")
    p.add_argument("--theirs", required=True, help="their file: claim_id,amount[,hospital_id][,settlement_id]")
    p.add_argument("--out", help="write every item to this .xlsx")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=reconcile)
