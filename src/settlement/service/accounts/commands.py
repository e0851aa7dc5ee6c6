"""`settlement users create|list`: staff accounts from the command line."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any


def read_password(stdin: Any = None) -> str | None:
    """One line from standard input; on a terminal, asked twice (hidden) and compared."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            print("the two passwords differ", file=sys.stderr)
            return None
        return first
    line = stdin.readline()
    return line.rstrip("\r\n") if line else None


def create(args: argparse.Namespace, settings: Any) -> int:
    from settlement.service.db import make_database, run_transaction
    from settlement.service.errors import ServiceError

    from .service import create_user

    funds = args.fund or None
    if funds:
        from settlement.service.app import load_tables
        from settlement.service.funds.service import fund_ids_of

        known = fund_ids_of(load_tables(settings))
        unknown = [f for f in funds if f not in known]
        if unknown:
            print(f"no fund {', '.join(unknown)}; the funds are: {', '.join(known)}", file=sys.stderr)
            return 2
    password = read_password()
    if not password:
        print("no password given (send one line on standard input)", file=sys.stderr)
        return 2
    db = make_database(settings)
    try:
        run_transaction(
            db.write,
            lambda session: create_user(
                session, args.name, args.role, password, district=args.district, funds=funds
            ),
        )
    except ServiceError as exc:
        print(exc.detail, file=sys.stderr)
        return 2
    finally:
        db.dispose()
    scope = f" in district {args.district}" if args.district else ""
    scope += f" for the funds {', '.join(sorted(set(funds)))}" if funds else ""
    print(f"created {args.role} {args.name}{scope}")
    return 0


def list_all(_args: argparse.Namespace, settings: Any) -> int:
    from settlement.service.db import make_database

    from .service import list_users

    db = make_database(settings)
    try:
        with db.read() as session:
            for u in list_users(session):
                scope = u.district or u.funds or "-"
                print(f"{u.username}\t{u.role}\t{scope}\tcreated {u.created_at.isoformat()}")
    finally:
        db.dispose()
    return 0


def add_parser(sub: Any, run: Any) -> None:
    p = sub.add_parser("users", help="staff accounts of the web pages (separate from API keys)")
    users = p.add_subparsers(dest="users_command", required=True)
    u = users.add_parser("create", help="create a staff account; the password is read from standard input")
    u.add_argument("--role", required=True, choices=["reviewer", "admin", "insurer"])
    u.add_argument("--name", required=True, help="the username to sign in with")
    u.add_argument("--district", help="reviewers: a 行政区划代码 prefix (e.g. 2301 or 230102) to scope to")
    u.add_argument("--fund", action="append",
                   help="insurers: limit to this fund (repeatable), as an insurer key; without: every fund")
    u.set_defaults(func=lambda args: run(create, args))
    u = users.add_parser("list", help="list staff accounts (never the passwords)")
    u.set_defaults(func=lambda args: run(list_all, args))
