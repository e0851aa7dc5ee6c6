"""The insurers' commands: `settlement reconcile`, `settlement simulate`, `settlement audit`.

cli.py holds only their parsers; the work is here (and in reconcile, simulate, audit).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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


def _load(label: str, path: str) -> object | None:
    from settlement.engine import compile_tables
    from settlement.schedules import ScheduleError, load_region_cached

    try:
        return compile_tables(load_region_cached(path))
    except ScheduleError as exc:
        for defect in exc.defects:
            print(defect, file=sys.stderr)
        print(f"settlement simulate: the {label} schedules {path} are not valid", file=sys.stderr)
        return None


def simulate(args: argparse.Namespace) -> int:
    """Exit 0 with the report; 2 when a schedule folder or the claims file cannot be used."""
    from settlement.simulate import GROUP_KEYS, blocks
    from settlement.simulate import simulate as run

    by = [k.strip() for k in args.by.split(",") if k.strip()] if args.by else []
    unknown = [k for k in by if k not in GROUP_KEYS]
    if unknown:
        print(f"settlement simulate: --by {', '.join(unknown)}: choose from {', '.join(GROUP_KEYS)}", file=sys.stderr)
        return 2
    baseline, draft = _load("baseline", args.baseline), _load("draft", args.schedules)
    if baseline is None or draft is None:
        return 2
    try:
        if args.engine == "dask":
            from settlement.distributed.command import simulate_command

            report = simulate_command(args, baseline, draft, by)  # type: ignore[arg-type]
        else:
            report = run(blocks(args.claims), baseline, draft, by)  # type: ignore[arg-type]
    except OSError as exc:
        print(f"settlement simulate: cannot read {args.claims}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"settlement simulate: {exc}", file=sys.stderr)
        return 2
    if args.html:
        from settlement.simulate_report import render

        Path(args.html).write_text(render(report, by, args.baseline, args.schedules, args.claims), encoding="utf-8")
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
    else:
        print(
            f"claims {report['claims']}  errors: baseline {report['errors']['baseline']}, "
            f"draft {report['errors']['draft']}"
        )
        print(f"{'':16}{'baseline':>16}{'draft':>16}{'delta':>16}")
        for layer in report["baseline"]:
            print(f"{layer:16}{report['baseline'][layer]:>16}{report['draft'][layer]:>16}{report['delta'][layer]:>16}")
        for group in report["groups"]:
            key = " ".join(f"{k}={group[k]}" for k in by)
            deltas = ", ".join(f"{k} {v}" for k, v in group["delta"].items() if v != "0.00")
            print(f"{key}: claims {group['claims']['baseline']}/{group['claims']['draft']}; {deltas or 'no change'}")
    sys.stdout.flush()
    return 0


def audit(args: argparse.Namespace) -> int:
    """Exit 0 when the replay agrees with every stored row, 1 on any difference (each printed)."""
    import datetime as dt
    import time
    from zoneinfo import ZoneInfo

    from settlement.audit import audit as run
    from settlement.service.app import load_tables
    from settlement.service.config import Settings
    from settlement.service.db import make_engine

    try:
        start = dt.date.fromisoformat(args.start) if args.start else None
        end = dt.date.fromisoformat(args.end) if args.end else None
    except ValueError as exc:
        print(f"settlement audit: {exc}", file=sys.stderr)
        return 2
    if args.partitions is not None and args.partitions < 1:
        print("settlement audit: --partitions must be at least 1", file=sys.stderr)
        return 2
    if args.engine != "dask" and (args.scheduler or args.partitions):
        print("settlement audit: --scheduler and --partitions go with --engine dask", file=sys.stderr)
        return 2
    settings = Settings()
    engine = make_engine(settings, pooled=False)
    began = time.perf_counter()
    try:
        if args.engine == "dask":
            from settlement.distributed.audit import audit_command

            state: Any = audit_command(args, engine, load_tables(settings), ZoneInfo(settings.timezone), start, end)
        else:
            state = run(engine, load_tables(settings), ZoneInfo(settings.timezone), start, end)
    except ValueError as exc:
        print(f"settlement audit: {exc}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    for text in state.differences:
        print(text)
    scope = "results and totals" if end is None else "results (totals only on a full run)"
    print(
        f"audited {state.settled} settlements and {state.reversals} reversals ({scope}) in"
        f" {time.perf_counter() - began:.1f} s: {len(state.differences)} difference(s)",
        file=sys.stderr,
    )
    return 1 if state.differences else 0
