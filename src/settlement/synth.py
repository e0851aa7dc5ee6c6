"""Synthetic but realistic claims and persons, for benchmarks, load tests and demos.

Shapes follow the bundled Heilongjiang schedules: inpatient stays of about 25
lines, outpatient visits of a few, dialysis sessions for chronic outpatients,
a share of the seven major illnesses with their treatments, and a
population whose categories have illustrative shares (most insured people are
in no poverty category; the categories settled here are over-represented
because the counter serves them).
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from settlement.claims.person_id import CHECK, WEIGHTS
from settlement.engine.batch import ClaimBatch
from settlement.engine.tables import Tables
from settlement.schedules.types import CATEGORIES

CATEGORY_SHARES: dict[str, float] = {
    "none": 0.40,
    "registered_poor": 0.20,
    "subsistence_allowance": 0.18,
    "extreme_poverty": 0.05,
    "low_income": 0.10,
    "illness_impoverished": 0.07,
}
SCHEME_SHARES = {"resident": 0.8, "employee": 0.2}
REGIONS = ("230102", "230103", "230402", "231202", "232721", "230702")

COMMON_DIAGNOSES = ("J18.9", "I63.9", "I10", "S72.0", "K35.8", "E11.9", "I25.1", "J44.1", "N39.0", "K80.2")
# (diagnosis, treatment, visit type, max age or None)
MAJOR = (
    ("C15.9", "surgery", "inpatient", None),
    ("C16.0", "surgery", "inpatient", None),
    ("C16.9", "chemotherapy", "inpatient", None),
    ("C18.7", "surgery", "inpatient", None),
    ("C20", "surgery", "inpatient", None),
    ("N18.5", "hemodialysis", "chronic_outpatient", None),
    ("N18.5", "peritoneal_dialysis", "chronic_outpatient", None),
    ("C91.0", "all_standard_risk", "inpatient", 14),
    ("Q21.1", "asd_repair", "inpatient", 14),
    ("Q21.0", "vsd_repair", "inpatient", 14),
)


def person_id(region: str, birth: dt.date, seq: int) -> str:
    """A valid 18-character resident id (GB 11643) for a birth date and sequence number."""
    body = f"{region}{birth:%Y%m%d}{seq % 1000:03d}"
    return body + CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]


@dataclass(frozen=True)
class Person:
    person_id: str
    scheme: str
    category: str
    birth: dt.date


def population(n: int, seed: int = 1, child_share: float = 0.08) -> list[Person]:
    """n distinct persons with the illustrative category and scheme shares."""
    rng = random.Random(seed)
    cats = list(CATEGORY_SHARES)
    weights = list(CATEGORY_SHARES.values())
    people: list[Person] = []
    seen: set[str] = set()
    while len(people) < n:
        if rng.random() < child_share:
            birth = dt.date(2005, 1, 1) + dt.timedelta(days=rng.randrange(0, 12 * 365))
        else:
            birth = dt.date(1935, 1, 1) + dt.timedelta(days=rng.randrange(0, 65 * 365))
        pid = person_id(rng.choice(REGIONS), birth, rng.randrange(1000))
        if pid in seen:
            continue
        seen.add(pid)
        scheme = "resident" if rng.random() < SCHEME_SHARES["resident"] else "employee"
        people.append(Person(pid, scheme, rng.choices(cats, weights)[0], birth))
    return people


def _price(rng: random.Random, code: str, cap_fen: int | None) -> str:
    # around the cap where there is one: most at or under it, some over
    fen = int(cap_fen * rng.uniform(0.7, 1.25)) if cap_fen is not None else int(rng.lognormvariate(4.0, 1.2) * 100) + 50
    return f"{fen // 100}.{fen % 100:02d}"


def claim_dicts(
    n: int,
    people: list[Person],
    tables: Tables,
    seed: int = 2,
    year: int = 2018,
    major_share: float = 0.12,
    hospitals: int = 50,
    with_identity: bool = True,
) -> Iterator[dict[str, Any]]:
    """n claims as JSON-ready dicts (SPEC §3), discharged in `year`."""
    rng = random.Random(seed)
    version = tables.schedules.versions[tables.schedules.index_for(dt.date(year, 12, 31))]
    codes = sorted(version.catalog)
    caps = {code: version.catalog[code].price_cap_fen for code in codes}
    for k in range(n):
        person = rng.choice(people)
        admitted = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(0, 330))
        roll = rng.random()
        treatment = None
        sessions = None
        age = (admitted - person.birth).days // 365
        if roll < major_share:
            diagnosis, treatment, visit, max_age = rng.choice(MAJOR)
            if max_age is not None and age > max_age:
                diagnosis, treatment, visit = "C16.0", "surgery", "inpatient"
        elif roll < 0.70:
            diagnosis, visit = rng.choice(COMMON_DIAGNOSES), "inpatient"
        elif roll < 0.95:
            diagnosis, visit = rng.choice(COMMON_DIAGNOSES), "outpatient"
        else:
            diagnosis, visit = "E11.9", "chronic_outpatient"
        if visit == "inpatient":
            stay = rng.randrange(3, 25)
            lines = rng.randrange(18, 33)
        elif visit == "chronic_outpatient":
            stay = rng.randrange(0, 30)
            lines = rng.randrange(3, 7)
            if treatment is not None:
                sessions = rng.randrange(4, 14)
        else:
            stay = 0
            lines = rng.randrange(2, 5)
        discharged = min(admitted + dt.timedelta(days=stay), dt.date(year, 12, 31))
        items = []
        for code in rng.sample(codes, lines):
            qty = rng.choice((1, 1, 1, 2, 3, 5, 7, 10, 14))
            items.append({"code": code, "quantity": qty, "unit_price": _price(rng, code, caps[code])})
        patient: dict[str, Any] = {"person_id": person.person_id}
        if with_identity:
            patient["scheme"] = person.scheme
            patient["category"] = person.category
        level = rng.choice((1, 2, 2, 3, 3))
        claim: dict[str, Any] = {
            "claim_id": f"S{year}-{seed}-{k:08d}",
            "hospital": {"id": f"H{rng.randrange(1, hospitals + 1):04d}", "level": level},
            "patient": patient,
            "visit": {"type": visit, "admitted": admitted.isoformat(), "discharged": discharged.isoformat()},
            "diagnosis": {"primary": diagnosis},
            "items": items,
        }
        if treatment is not None:
            claim["treatment"] = treatment
        if sessions is not None:
            claim["sessions"] = sessions
        yield claim


def columnar_batch(n: int, tables: Tables, persons: int, seed: int = 3, lines_per_claim: int = 25) -> ClaimBatch:
    """A batch built straight in columns (no JSON): the engine benchmark's input.

    Claims are inpatient-heavy with `lines_per_claim` lines on average;
    diagnosis values include the seven major illnesses so every path runs.
    """
    rng = np.random.default_rng(seed)
    version = 0
    catalog_rows = np.array(sorted(tables.catalog_rows[version].values()), dtype=np.int64)
    diagnosis_values = list(COMMON_DIAGNOSES) + [m[0] for m in MAJOR]
    treatment_values = sorted({m[1] for m in MAJOR})
    lines = rng.integers(max(1, lines_per_claim - 8), lines_per_claim + 9, size=n)
    line_start = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lines, out=line_start[1:])
    total_lines = int(line_start[-1])
    diagnosis = rng.integers(0, len(diagnosis_values), size=n)
    major = diagnosis >= len(COMMON_DIAGNOSES)
    major_treatment = np.array([treatment_values.index(m[1]) for m in MAJOR], dtype=np.int64)
    treatment = np.where(major, major_treatment[np.maximum(diagnosis - len(COMMON_DIAGNOSES), 0)], -1)
    cat_weights = np.array([CATEGORY_SHARES[c] for c in CATEGORIES])
    person = rng.integers(0, persons, size=n)
    person_category = rng.choice(len(CATEGORIES), size=persons, p=cat_weights / cat_weights.sum())
    person_scheme = (rng.random(persons) > SCHEME_SHARES["resident"]).astype(np.int64)
    visit = rng.choice(3, size=n, p=[0.7, 0.25, 0.05])
    return ClaimBatch(
        version=np.full(n, version, dtype=np.int64),
        policy_year=np.full(n, tables.schedules.versions[version].effective_from.year, dtype=np.int64),
        person_year=person.astype(np.int64),
        year_index=np.zeros(n, dtype=np.int64),
        scheme=person_scheme[person],
        category=person_category[person].astype(np.int64),
        visit_type=visit.astype(np.int64),
        level=rng.integers(1, 4, size=n),
        age=rng.integers(0, 90, size=n),
        sessions=rng.integers(1, 13, size=n),
        diagnosis=diagnosis.astype(np.int64),
        treatment=treatment.astype(np.int64),
        diagnosis_values=diagnosis_values,
        treatment_values=treatment_values,
        line_start=line_start,
        line_item=catalog_rows[rng.integers(0, catalog_rows.size, size=total_lines)],
        line_qty=rng.choice(np.array([1, 1, 2, 3, 5, 10, 14]) * 10_000, size=total_lines).astype(np.int64),
        line_price=(rng.lognormal(4.0, 1.2, size=total_lines) * 10_000).astype(np.int64) // 100 * 100,
    )
