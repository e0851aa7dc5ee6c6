"""`settlement serve --demo`: the worked examples' persons and hospitals, and one key per role."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .auth.keys import Role
from .auth.models import ApiKey
from .auth.service import Principal, create_key
from .config import Settings
from .db import make_database, run_transaction
from .hospitals.models import Hospital
from .hospitals.schemas import HospitalIn
from .hospitals.service import put_hospital
from .persons.models import Person
from .persons.schemas import CategoryPeriod, PersonIn
from .persons.service import put_person
from .settlements.models import Settlement

# the persons of the worked examples (examples/claims.jsonl), as their claims state them
DEMO_PERSONS: dict[str, tuple[str, str]] = {
    "23010219560312041X": ("resident", "registered_poor"),
    "231202194807070129": ("resident", "extreme_poverty"),
    "230103197509200777": ("employee", "none"),
    "232721201604050056": ("resident", "subsistence_allowance"),
    "230702201108020092": ("resident", "none"),
    "230402196301150331": ("resident", "subsistence_allowance"),
}
DEMO_HOSPITAL_ENTRIES: dict[str, tuple[str, int, str]] = {  # name, level (as the examples state it), district
    "H0002": ("示例二级医院", 2, "230102"),
    "H0007": ("示例一级医院", 1, "230103"),
    "H0031": ("示例三级医院", 3, "230102"),
}
DEMO_FROM = dt.date(2018, 1, 1)
DEMO_ACTOR = Principal(key_id="demo", role=Role.ADMIN)
"""Who registers the demo persons, as their history records say."""


def existing_data(settings: Settings) -> str | None:
    """What the database holds already (None: nothing), for ``serve --demo`` to say before it adds."""
    db = make_database(settings)
    try:
        with db.read() as session:
            counts = {
                "persons": session.scalar(select(func.count()).select_from(Person)) or 0,
                "hospitals": session.scalar(select(func.count()).select_from(Hospital)) or 0,
                "settlements": session.scalar(select(func.count()).select_from(Settlement)) or 0,
                "keys": session.scalar(select(func.count()).select_from(ApiKey)) or 0,
            }
    finally:
        db.dispose()
    if not any(counts.values()):
        return None
    held = ", ".join(f"{n:,} {name}" for name, n in counts.items())
    return (
        f"the database already holds {held}: --demo adds only the demo persons and hospitals not"
        " registered yet and new keys; nothing registered, settled or issued is changed"
    )


def setup(settings: Settings) -> list[tuple[str, str]]:
    """Registers the demo persons (valid from 2018-01-01) and hospitals that are not registered yet
    (an entry already there is left as it is) and creates keys; returns (name, key)."""

    def work(session: Session) -> list[tuple[str, str]]:
        now = dt.datetime.now(dt.UTC)
        registered = set(session.scalars(select(Person.person_id).where(Person.person_id.in_(DEMO_PERSONS))))
        hospitals = set(session.scalars(select(Hospital.hospital_id)))
        for person_id, (scheme, category) in DEMO_PERSONS.items():
            if person_id not in registered:  # never reset someone already registered
                data = PersonIn(scheme=scheme, categories=[CategoryPeriod(category=category, valid_from=DEMO_FROM)])
                put_person(session, DEMO_ACTOR, person_id, data, now)
        for hospital_id, (name, level, district) in DEMO_HOSPITAL_ENTRIES.items():
            if hospital_id not in hospitals:
                put_hospital(session, hospital_id, HospitalIn(name=name, level=level, district=district), "demo", now)
        keys = [(f"HOSPITAL_{h}_KEY", create_key(session, Role.HOSPITAL, hospital_id=h, label=f"demo {h}"))
                for h in DEMO_HOSPITAL_ENTRIES]
        return keys + [(f"{role.value.upper()}_KEY", create_key(session, role, label=f"demo {role.value}"))
                       for role in (Role.REVIEWER, Role.INSURER, Role.ADMIN)]

    db = make_database(settings)
    try:
        return run_transaction(db.write, work)
    finally:
        db.dispose()
