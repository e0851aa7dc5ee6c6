"""Streams and regions for the distributed tests: the bundled schedules copied and edited, synthetic claims."""

from __future__ import annotations

import random
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from settlement.batchrun import settle_file
from settlement.engine import Tables, compile_tables
from settlement.schedules import load_region
from settlement.synth import claim_dicts, population

BUNDLED = Path(__file__).resolve().parents[2] / "fee_schedules" / "heilongjiang"


def set_pool(text: str, fund: str, pool: str) -> str:
    """The schedule YAML with one charity fund's (or the emergency relief fund's) annual_pool replaced
    ('null' or yuan)."""
    if fund == "emergency_relief":
        pattern = re.compile(r"(\nemergency_relief:.*\n(?:  .*\n)*?  annual_pool: +)\S+")
    else:
        pattern = re.compile(rf"(- id: {fund}\n(?:      .*\n)*?      annual_pool: )\S+")
    edited, count = pattern.subn(rf"\g<1>{pool}", text)
    assert count == 1, f"no annual_pool for {fund}"
    return edited


def make_region(
    root: Path,
    pools: dict[tuple[str, str], str],
    mid_year: dict[str, str] | None = None,
) -> Path:
    """A copy of the bundled region with pools[(year folder, fund)] set; mid_year adds a version from
    2019-07-01 (a copy of 2019) with its own pools {fund: yuan}."""
    region = root / "region"
    if region.exists():
        shutil.rmtree(region)
    shutil.copytree(BUNDLED, region)
    for (year, fund), pool in pools.items():
        path = region / year / "schedule.yaml"
        path.write_text(set_pool(path.read_text(encoding="utf-8"), fund, pool), encoding="utf-8")
    if mid_year is not None:
        shutil.copytree(region / "2019", region / "2019-07")
        path = region / "2019-07" / "schedule.yaml"
        text = path.read_text(encoding="utf-8")
        text = text.replace("effective_from: 2019-01-01", "effective_from: 2019-07-01")
        text = text.replace("id: heilongjiang-2019\n", "id: heilongjiang-2019-h2\n")
        for fund, pool in mid_year.items():
            text = set_pool(text, fund, pool)
        path.write_text(text, encoding="utf-8")
    return region


def tables_of(region: Path) -> Tables:
    return compile_tables(load_region(region))


def claims(
    tables: Tables,
    n: int,
    persons: int,
    seed: int,
    years: Iterable[int] = (2018, 2019),
    child_share: float = 0.08,
    major_share: float = 0.12,
) -> list[dict[str, Any]]:
    """n synthetic claims of `persons` persons, the years interleaved at random."""
    people = population(persons, seed=seed, child_share=child_share)
    years = list(years)
    streams = [
        iter(list(claim_dicts(n, people, tables, seed=seed + k, year=y, major_share=major_share)))
        for k, y in enumerate(years)
    ]
    rng = random.Random(seed)
    return [next(streams[rng.randrange(len(streams))]) for _ in range(n)]


def with_emergencies(
    rows: list[dict[str, Any]], share: float, seed: int, unidentified_share: float = 0.3
) -> list[dict[str, Any]]:
    """The claims with about `share` of them emergencies (SPEC §3): the visit an emergency and the patient
    unable to pay, or (about `unidentified_share` of those) an unidentified patient under a temporary id."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        row = orjson.loads(orjson.dumps(row))
        if rng.random() < share:
            row["visit"]["emergency"] = True
            if rng.random() < unidentified_share:
                row["patient"] = {"unidentified": True, "temporary_id": f"T{seed}-{i}"}
            else:
                row["patient"]["unable_to_pay"] = True
        out.append(row)
    return out


BAD_LINES = (
    b'{"bad": 1}',
    b"not json at all",
    b'{"claim_id": "X-1"}',
    b"",
    b"   ",
)


def write_stream(path: Path, rows: list[dict[str, Any]], bad_every: int = 0, seed: int = 0) -> Path:
    """Claims as JSON lines, with invalid lines (and blank ones) between them every `bad_every` claims."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for i, row in enumerate(rows):
            if bad_every and i % bad_every == bad_every - 1:
                out.write(rng.choice(BAD_LINES) + b"\n")
            out.write(orjson.dumps(row) + b"\n")
    return path


def sequential(path: Path, tables: Tables) -> bytes:
    """The reference: `settlement settle`'s own function, one process."""
    out: list[bytes] = []
    with path.open("rb") as handle:
        settle_file(handle, tables, out.append, workers=1)
    return b"".join(out)


def fund_totals(output: bytes) -> dict[tuple[int, str], int]:
    """Charity paid per (policy year, fund) in fen, from result lines."""
    totals: dict[tuple[int, str], int] = {}
    for line in output.splitlines():
        obj = orjson.loads(line)
        for fund, amount in obj.get("charity_by_fund", {}).items():
            key = (obj["policy_year"], fund)
            totals[key] = totals.get(key, 0) + round(float(amount) * 100)
    return totals


def emergency_totals(output: bytes) -> dict[int, int]:
    """Emergency relief paid per policy year in fen, from result lines."""
    totals: dict[int, int] = {}
    for line in output.splitlines():
        obj = orjson.loads(line)
        if "payments" in obj:
            amount = round(float(obj["payments"]["emergency_relief"]) * 100)
            totals[obj["policy_year"]] = totals.get(obj["policy_year"], 0) + amount
    return totals
