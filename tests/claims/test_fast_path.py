"""The batch reader's fast paths must never disagree with the pydantic contract.

Every line is settled twice — once as `settlement settle` does (the columnar
scanner, then the msgspec reader, falling back to pydantic when unsure) and
once with both switched off — and the JSON results must be identical, errors
and messages included. (test_columnar.py varies the JSON text itself.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import settlement.batchrun as batchrun
from settlement.batchrun import StreamSettler
from settlement.engine import Tables
from settlement.synth import claim_dicts, population

NUMBERS = st.one_of(
    st.integers(min_value=-5, max_value=2_000_000),
    st.decimals(min_value=-1, max_value=2_000_000, places=6, allow_nan=False, allow_infinity=False).map(
        lambda d: float(d)
    ),
    st.decimals(min_value=0, max_value=2_000_000, places=6, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["1e3", " 1.5", "+2", "1.", ".5", "1_0", "٣", "-0", "0.00001", "10000", "10000.0001",
                     "1000000", "1000000.0001", "1.50000", "007.25", "", True, None, [], "nan"]),
)


def _settle(tables: Tables, lines: list[bytes], fast: bool, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(batchrun, "COLUMNAR", False)
            m.setattr(batchrun, "fast_records", lambda raw: [None] * len(raw))
        return StreamSettler(tables).settle_lines(lines)


@pytest.fixture(scope="module")
def base_claims(tables: Tables) -> list[dict[str, Any]]:
    people = population(30, seed=7)
    return list(claim_dicts(40, people, tables, seed=11, year=2018)) + list(
        claim_dicts(20, people, tables, seed=12, year=2019)
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fast_path_equals_pydantic_path(
    data: st.DataObject, tables: Tables, base_claims: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    claims = json.loads(json.dumps(base_claims[: data.draw(st.integers(1, 12))]))
    for claim in claims:
        for item in claim["items"]:
            if data.draw(st.booleans()):
                item[data.draw(st.sampled_from(["quantity", "unit_price"]))] = data.draw(NUMBERS)
        mutation = data.draw(st.sampled_from(
            ["none", "extra", "level", "sessions", "dates", "diag", "treat", "emergency", "unidentified"]
        ))
        if mutation == "emergency":  # the declarations of emergency relief, valid or not
            claim["visit"]["emergency"] = data.draw(st.sampled_from([True, False, "yes", 1, None]))
            claim["patient"]["unable_to_pay"] = data.draw(st.sampled_from([True, False, 0, None]))
        elif mutation == "unidentified":
            claim["visit"]["emergency"] = data.draw(st.sampled_from([True, False]))
            claim["patient"] = data.draw(st.sampled_from([
                {"unidentified": True, "temporary_id": "T-1"},
                {"unidentified": True, "temporary_id": "T-1", "person_id": claim["patient"]["person_id"]},
                {"unidentified": True},
                {"unidentified": False, "temporary_id": "T-1", "person_id": claim["patient"]["person_id"]},
                {"unidentified": "true", "temporary_id": "T-1"},
                {"unidentified": True, "temporary_id": ""},
            ]))
        elif mutation == "extra":
            claim["treatmnet"] = "surgery"
        elif mutation == "level":
            claim["hospital"]["level"] = data.draw(st.sampled_from([0, 4, 2.0, "2", True]))
        elif mutation == "sessions":
            claim["sessions"] = data.draw(st.sampled_from([0, 367, 1.0, "3", None, 12]))
        elif mutation == "dates":
            claim["visit"]["admitted"] = data.draw(st.sampled_from(["2018-02-30", "2018-12-31", "18-01-01"]))
        elif mutation == "diag":
            claim["diagnosis"]["primary"] = data.draw(st.sampled_from(["   ", "", " c15.9 ", "Q21.0"]))
        elif mutation == "treat":
            claim["treatment"] = data.draw(st.sampled_from(["", "surgery", "laser", None]))
    lines = [json.dumps(c).encode() for c in claims]
    fast = _settle(tables, lines, True, monkeypatch)
    exact = _settle(tables, lines, False, monkeypatch)
    assert fast == exact


def test_numbers_a_float_cannot_carry_take_the_exact_path(tables: Tables, monkeypatch: pytest.MonkeyPatch) -> None:
    """4800.000000000000001 parses to the float 4800.0; it has more than 4 decimals and must be refused."""
    claim = (
        '{"claim_id":"X","hospital":{"id":"H1","level":2},"patient":{"person_id":"23010219560312041X",'
        '"scheme":"resident","category":"none"},"visit":{"type":"inpatient","admitted":"2018-01-01",'
        '"discharged":"2018-01-02"},"diagnosis":{"primary":"J18"},'
        '"items":[{"code":"F000001","quantity":1,"unit_price":%s}]}'
    )
    for text in ("4800.000000000000001", "480000000000000000001e-17", '"4800.000000000000001"'):
        out = StreamSettler(tables).settle_lines([(claim % text).encode()])
        assert out[0]["error"]["code"] == "invalid_claim", text
        assert "items[0].unit_price" in out[0]["error"]["message"]
    ok = StreamSettler(tables).settle_lines([(claim % "4800.0000").encode()])
    assert ok[0]["amounts"]["total"] == "4800.00"
