"""`settlement persons import FILE [--dry-run]`: a clerk's import from the command line.

Messages name the file as the clerk typed it and say what to do; problems are
printed one a line as ``FILE:LINE: column: message``; no traceback for a file
that is missing, unreadable, in the wrong format or the wrong encoding.
Exit status: 0 imported (or a clean dry run), 1 problems (nothing written),
2 the file or the database could not be used.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

ENCODINGS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "gb18030": "GBK/GB18030 (Chinese Windows)"}


def describe(report: Any) -> str:
    """How the file was read, e.g. 'CSV, GBK/GB18030 (Chinese Windows)' or 'Excel .xlsx, sheet 名册'."""
    if report.format == "xlsx":
        return f"Excel .xlsx, sheet {report.sheet!r}"
    if report.format == "csv":
        return f"CSV, {ENCODINGS.get(report.encoding, report.encoding)}"
    return "unreadable"


def print_report(report: Any, label: str, out: TextIO, err: TextIO) -> None:
    for p in report.problems:
        where = f"{label}:{p.line}" if p.line is not None else label
        print(f"{where}: {p.message}", file=err)  # messages name their column
    if report.problems_total > len(report.problems):
        print(f"… and {report.problems_total - len(report.problems)} more problem(s)", file=err)
    counts = (
        f"{report.rows} rows, {report.persons} persons ({report.new} new, {report.changed} changed,"
        f" {report.unchanged} unchanged), {report.periods} category periods"
    )
    if not report.ok:
        read = f"{describe(report)}; " if report.format else ""
        print(f"{label}: {read}{report.problems_total} problem(s); nothing was "
              + ("written (dry run)" if report.dry_run else "imported"), file=err)
    elif report.committed:
        print(f"{label}: {describe(report)}; imported {counts}", file=out)
    else:
        print(f"{label}: {describe(report)}; dry run: {counts}; nothing was written", file=out)


def run_import(path: str, dry_run: bool, settings: Any) -> int:
    """Reads the file, checks it (and writes it unless dry_run); the exit status."""
    from sqlalchemy.exc import DBAPIError

    from settlement.service.db import is_unavailable, make_database, run_transaction
    from settlement.service.errors import ServiceError
    from settlement.service.migrate import upgrade

    from .importing import ImportRejected
    from .service import CLI_ACTOR, import_check, import_commit

    file = Path(path)
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        print(f"{path}: no such file", file=sys.stderr)
        return 2
    except IsADirectoryError:
        print(f"{path}: is a folder, not a file", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{path}: cannot be read ({exc.strerror or type(exc).__name__})", file=sys.stderr)
        return 2
    try:
        upgrade(settings)
        db = make_database(settings)
    except DBAPIError as exc:
        print(f"the database cannot be used: {_reason(exc)}", file=sys.stderr)
        return 2
    try:
        if dry_run:
            with db.read() as session:
                report = import_check(session, None, CLI_ACTOR, data, file.name)
        else:
            report = run_transaction(
                db.write, lambda session: import_commit(session, None, CLI_ACTOR, data, file.name)
            )
    except ImportRejected as exc:
        report = exc.report
    except ServiceError as exc:
        print(f"{path}: {exc.detail}", file=sys.stderr)
        return 1
    except DBAPIError as exc:
        reason = "unavailable" if is_unavailable(exc) else _reason(exc)
        print(f"the database refused the import ({reason}); nothing was imported", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print_report(report, path, sys.stdout, sys.stderr)
    if report.format is None:
        return 2
    return 0 if report.ok else 1


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).splitlines()[0] if str(orig) else type(orig).__name__
