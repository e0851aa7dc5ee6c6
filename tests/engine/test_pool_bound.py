"""The engine says which pool's remaining room decided an amount (BatchResult.*_pool_bound).

The counter's optimistic write (service.settlements.pgcounter) holds exactly those pools to
the use it read; it reads the flag, it does not re-derive the clamp. Held here on worked
examples against a pool with less, exactly as much, and more room than the claim asks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from settlement.claims import BatchBuilder, prepare_claim, validate_claim
from settlement.engine import Tables, settle
from settlement.engine.batch import BatchResult
from settlement.engine.state import EMERGENCY_RELIEF, PersonYearTotals, one_row


def _claim(examples_dir: Path, claim_id: str) -> dict[str, Any]:
    lines = (examples_dir / "claims.jsonl").read_text().splitlines()
    return next(c for c in map(json.loads, filter(None, lines)) if c["claim_id"] == claim_id)


def _settle(tables: Tables, claim: dict[str, Any], pool: str, used: int) -> BatchResult:
    prepared = prepare_claim(validate_claim(claim), tables)
    batch = BatchBuilder().build([prepared])
    acc = one_row(PersonYearTotals(), {pool: used}, tables.schedules.fund_ids)
    untraced = settle(batch, tables, acc)
    assert untraced.charity_pool_bound is None and untraced.emergency_relief_pool_bound is None
    result = settle(batch, tables, acc, trace=True)  # the flags are written with the trace (the counter's)
    assert result.charity_pool_bound is not None and result.emergency_relief_pool_bound is not None
    return result


WANTS = {"EX-01": 53_745, "EX-15": 701_964}
"""What each claim draws on an unspent pool (expected.jsonl): poverty_relief, emergency relief."""


@pytest.mark.parametrize("room_minus_want", [None, -53_745, -1, 0, 1])
def test_the_flag_is_set_where_the_charity_pools_room_decided(
    examples_dir: Path, tables: Tables, room_minus_want: int | None
) -> None:
    fund_ids = tables.schedules.fund_ids
    col = fund_ids.index("poverty_relief")
    claim = _claim(examples_dir, "EX-01")
    version = tables.schedules.versions[prepare_claim(validate_claim(claim), tables).version]
    size = next(f.annual_pool_fen for f in version.charity_funds if f.id == "poverty_relief")
    assert size is not None and size > WANTS["EX-01"]
    want = WANTS["EX-01"]
    room = size if room_minus_want is None else want + room_minus_want
    result = _settle(tables, claim, "poverty_relief", size - room)
    assert int(result.charity_by_fund[0, col]) == min(want, room)
    charity, relief = result.charity_pool_bound, result.emergency_relief_pool_bound
    assert charity is not None and relief is not None
    assert bool(charity[0, col]) == (room <= want)  # a tie: the pool could have decided
    assert not charity[0, [c for c in range(len(fund_ids)) if c != col]].any()
    assert not relief[0]


@pytest.mark.parametrize("room_minus_want", [None, -1, 0, 1])
def test_the_flag_is_set_where_the_emergency_relief_pools_room_decided(
    examples_dir: Path, tables: Tables, room_minus_want: int | None
) -> None:
    claim = _claim(examples_dir, "EX-15")
    version = tables.schedules.versions[prepare_claim(validate_claim(claim), tables).version]
    assert version.emergency_relief is not None
    size = version.emergency_relief.annual_pool_fen
    assert size is not None and size > WANTS["EX-15"]
    want = WANTS["EX-15"]
    room = size if room_minus_want is None else want + room_minus_want
    result = _settle(tables, claim, EMERGENCY_RELIEF, size - room)
    assert int(result.emergency_relief[0]) == min(want, room)
    charity, relief = result.charity_pool_bound, result.emergency_relief_pool_bound
    assert charity is not None and relief is not None
    assert bool(relief[0]) == (room <= want)
    assert not charity.any()  # an unidentified patient draws on no charity fund
