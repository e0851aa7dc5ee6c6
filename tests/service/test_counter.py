"""Small pieces of the counter's PostgreSQL path that the end-to-end tests do not pin down alone."""

from __future__ import annotations

import dataclasses

from service_helpers import example

from settlement.claims import validate_claim
from settlement.engine.state import PersonYearTotals
from settlement.service.settlements.counter import compute, prepare
from settlement.service.settlements.pgcounter import _bigints


def test_contribution_json_is_the_contribution_as_stored_before(service_tables):
    claim = validate_claim(example("EX-01"))
    before = PersonYearTotals(critical_base=1_000, charity_paid={"poverty_relief": 500})
    comp = compute(prepare(claim, service_tables, "resident", "registered_poor"), before, {"poverty_relief": 7})
    stored = comp.contribution_json()
    assert stored["person_year"] == dataclasses.asdict(comp.contribution)
    assert stored["pool_used"] == comp.pool_delta
    assert PersonYearTotals(**stored["person_year"]) == comp.contribution  # what a reversal reads back


def test_bigint_array_literals():
    assert _bigints([1, -2, None, 10**15]) == "{1,-2,NULL,1000000000000000}"
    assert _bigints([]) == "{}"
