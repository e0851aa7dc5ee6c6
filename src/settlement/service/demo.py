"""`settlement serve --demo`: the worked examples' persons and one key per role."""

from __future__ import annotations

import datetime as dt

from .auth.keys import Role
from .auth.service import Principal, create_key
from .config import Settings
from .db import make_database, run_transaction
from .persons.schemas import CategoryPeriod, PersonIn
from .persons.service import put_person

# the persons of the worked examples (examples/claims.jsonl), as their claims state them
DEMO_PERSONS: dict[str, tuple[str, str]] = {
    "23010219560312041X": ("resident", "registered_poor"),
    "231202194807070129": ("resident", "extreme_poverty"),
    "230103197509200777": ("employee", "none"),
    "232721201604050056": ("resident", "subsistence_allowance"),
    "230702201108020092": ("resident", "none"),
    "230402196301150331": ("resident", "subsistence_allowance"),
}
DEMO_HOSPITALS = ("H0002", "H0007", "H0031")
DEMO_FROM = dt.date(2018, 1, 1)
DEMO_ACTOR = Principal(key_id="demo", role=Role.ADMIN)
"""Who registers the demo persons, as their history records say."""


def setup(settings: Settings) -> list[tuple[str, str]]:
    """Registers the demo persons (valid from 2018-01-01) and creates keys; returns (name, key)."""
    db = make_database(settings)
    try:

        def work(session: object) -> list[tuple[str, str]]:
            from sqlalchemy.orm import Session

            assert isinstance(session, Session)
            now = dt.datetime.now(dt.UTC)
            for person_id, (scheme, category) in DEMO_PERSONS.items():
                data = PersonIn(
                    scheme=scheme,
                    categories=[CategoryPeriod(category=category, valid_from=DEMO_FROM)],
                )
                put_person(session, DEMO_ACTOR, person_id, data, now)
            keys = [
                (
                    f"HOSPITAL_{h}_KEY",
                    create_key(session, Role.HOSPITAL, hospital_id=h, label=f"demo {h}"),
                )
                for h in DEMO_HOSPITALS
            ]
            for role in (Role.REVIEWER, Role.INSURER, Role.ADMIN):
                keys.append(
                    (
                        f"{role.value.upper()}_KEY",
                        create_key(session, role, label=f"demo {role.value}"),
                    )
                )
            return keys

        return run_transaction(db.write, work)
    finally:
        db.dispose()
