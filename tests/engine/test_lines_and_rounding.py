"""SPEC §2 and §5.1–5.2: integer money, half-up rounding, line items, and the pathway of a claim.

Expected values are worked out by hand in the comments (or by exact
fractions), never taken from the engine.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any
from unittest import mock

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.batchrun import StreamSettler
from settlement.claims import BatchBuilder, prepare_claim, validate_claim
from settlement.engine import Tables, kernel, line_parts, settle
from settlement.engine.batch import BatchResult, ClaimBatch
from settlement.money import (
    decimal_places,
    decimal_to_scaled,
    format_fen,
    format_rate,
    mul_rate,
    mul_rate_exact,
    round_half_up_div,
)
from settlement.schedules import ScheduleSet

PERSON = "23010219560312041X"  # born 1956-03-12 (example EX-01)
CHILD_0229 = "230102200402290010"  # born 2004-02-29


def _claim(items: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    claim: dict[str, Any] = {
        "claim_id": "T-1",
        "hospital": {"id": "H0001", "level": 2},
        "patient": {"person_id": PERSON, "scheme": "resident", "category": "none"},
        "visit": {"type": "inpatient", "admitted": "2018-06-01", "discharged": "2018-06-10"},
        "diagnosis": {"primary": "J18.9"},
        "items": items,
    }
    for key, value in overrides.items():
        if key in ("person_id", "scheme", "category"):
            claim["patient"][key] = value
        elif key in ("admitted", "discharged"):
            claim["visit"][key] = value
        elif key == "visit_type":
            claim["visit"]["type"] = value
        elif key == "level":
            claim["hospital"]["level"] = value
        elif key == "diagnosis":
            claim["diagnosis"]["primary"] = value
        else:
            claim[key] = value
    return claim


def _batch(claims: list[dict[str, Any]], tables: Tables) -> ClaimBatch:
    return BatchBuilder().build([prepare_claim(validate_claim(c), tables) for c in claims])


def _parts(claims: list[dict[str, Any]], tables: Tables) -> list[dict[str, int]]:
    total, fully, over, pre, in_scope = line_parts(_batch(claims, tables), tables)
    names = ("total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope")
    return [dict(zip(names, map(int, row), strict=True)) for row in zip(total, fully, over, pre, in_scope, strict=True)]


def _one(tables: Tables, item: dict[str, Any], **overrides: Any) -> dict[str, int]:
    return _parts([_claim([item], **overrides)], tables)[0]


# --------------------------------------------------------------------------- §2 money


@pytest.mark.parametrize(
    ("numerator", "denominator", "expected"),
    [
        (0, 100, 0),
        (49, 100, 0),
        (50, 100, 1),
        (51, 100, 1),
        (149, 100, 1),
        (150, 100, 2),
        (4_999, 10_000, 0),
        (5_000, 10_000, 1),
        (15_000, 10_000, 2),
        (461_168_601_842_738 * 10_000 + 5_000, 10_000, 461_168_601_842_739),
        (461_168_601_842_738 * 10_000 + 4_999, 10_000, 461_168_601_842_738),
    ],
)
def test_round_half_up_div(numerator: int, denominator: int, expected: int) -> None:
    assert round_half_up_div(numerator, denominator) == expected


@given(st.integers(0, 2**62), st.integers(0, 10_000))
@settings(max_examples=300, deadline=None)
def test_mul_rate_is_exact_half_up(amount: int, rate: int) -> None:
    exact = Fraction(amount * rate, 10_000)
    assert mul_rate(amount, rate) == floor(exact + Fraction(1, 2))
    whole, frac = mul_rate_exact(amount, rate)
    assert whole + Fraction(frac, 10_000) == exact


@numba.njit(cache=False)
def _compiled_mul_rate(amount: int, rate: int) -> int:  # pragma: no cover - compiled
    return mul_rate(amount, rate)


@given(st.integers(0, 2**62), st.integers(0, 10_000))
@settings(max_examples=300, deadline=None)
def test_compiled_mul_rate_never_leaves_int64(amount: int, rate: int) -> None:
    """The compiled kernels call the same helper on int64: no overflow up to 2^62 fen."""
    assert _compiled_mul_rate(amount, rate) == floor(Fraction(amount * rate, 10_000) + Fraction(1, 2))


def test_money_helpers() -> None:
    assert decimal_places(Decimal("1.50000")) == 1
    assert decimal_places(Decimal("100")) == 0
    assert decimal_places(Decimal("1E+2")) == 0
    assert decimal_places(Decimal("0.0001")) == 4
    assert decimal_places(Decimal("0E-7")) == 0
    assert decimal_to_scaled(Decimal("12.34"), 100) == 1234
    assert decimal_to_scaled(Decimal("0.0001"), 10_000) == 1
    with pytest.raises(ValueError):
        decimal_to_scaled(Decimal("0.001"), 100)
    assert [format_fen(x) for x in (0, 5, 50, 100, 123456, -5)] == ["0.00", "0.05", "0.50", "1.00", "1234.56", "-0.05"]
    assert format_fen(np.int64(2**62)) == f"{2**62 // 100}.{2**62 % 100:02d}"
    assert [format_rate(x) for x in (8500, 10_000, 5, 1250, 0)] == ["85%", "100%", "0.05%", "12.5%", "0%"]


# --------------------------------------------------------------------------- §5.1 lines


def test_class_a_line_rounds_half_up(tables: Tables) -> None:
    # 3 × 0.3333 = 0.9999 yuan = 99.99 fen → 100 fen
    assert _one(tables, {"code": "X000001", "quantity": 3, "unit_price": "0.3333"}) == {
        "total": 100,
        "fully_self_paid": 0,
        "over_limit": 0,
        "pre_self_paid": 0,
        "in_scope": 100,
    }
    # 1 × 0.005 yuan = 0.5 fen → 1 fen (half up, not half even)
    assert _one(tables, {"code": "X000001", "quantity": "1", "unit_price": "0.005"})["in_scope"] == 1
    # 0.49 fen → 0
    assert _one(tables, {"code": "X000001", "quantity": "1", "unit_price": "0.0049"})["in_scope"] == 0
    # 2.5 × 0.0100 yuan = 2.5 fen → 3 (half up)
    assert _one(tables, {"code": "X000001", "quantity": "2.5", "unit_price": "0.01"})["in_scope"] == 3
    # a zero price is allowed and costs nothing
    assert _one(tables, {"code": "X000001", "quantity": 1, "unit_price": 0})["total"] == 0


def test_class_b_line_pre_self_paid(tables: Tables) -> None:
    # X000006: B, self_pay_ratio 0.10, no cap. 1 × 10.05 = 1005 fen; pre = round(100.5) = 101
    assert _one(tables, {"code": "X000006", "quantity": 1, "unit_price": "10.05"}) == {
        "total": 1005,
        "fully_self_paid": 0,
        "over_limit": 0,
        "pre_self_paid": 101,
        "in_scope": 904,
    }


def test_class_c_line_fully_self_paid(tables: Tables) -> None:
    # X000026 is class C in 2018 ...
    assert _one(tables, {"code": "X000026", "quantity": 6, "unit_price": "125.00"}) == {
        "total": 75_000,
        "fully_self_paid": 75_000,
        "over_limit": 0,
        "pre_self_paid": 0,
        "in_scope": 0,
    }
    # ... and class B 0.20 in 2019: the discharge date picks the catalog
    got = _one(
        tables,
        {"code": "X000026", "quantity": 6, "unit_price": "125.00"},
        admitted="2018-12-28",
        discharged="2019-01-02",
    )
    assert got == {"total": 75_000, "fully_self_paid": 0, "over_limit": 0, "pre_self_paid": 15_000, "in_scope": 60_000}


def test_price_cap(tables: Tables) -> None:
    # F000001: A, cap 30.00. At the cap: not over the limit
    assert _one(tables, {"code": "F000001", "quantity": 11, "unit_price": "30.00"})["over_limit"] == 0
    # 11 × 35.00 = 385.00, capped 11 × 30.00 = 330.00, over 55.00
    assert _one(tables, {"code": "F000001", "quantity": 11, "unit_price": "35.00"}) == {
        "total": 38_500,
        "fully_self_paid": 0,
        "over_limit": 5_500,
        "pre_self_paid": 0,
        "in_scope": 33_000,
    }
    # over the cap by 0.0001: 2.5 × 30.0001 = 75.00025 yuan → 7500 fen = round(2.5 × 30.00): over 0
    assert _one(tables, {"code": "F000001", "quantity": "2.5", "unit_price": "30.0001"})["over_limit"] == 0
    # 1000 × 30.0001 = 30000.10 yuan vs 30000.00: over 0.10
    assert _one(tables, {"code": "F000001", "quantity": 1000, "unit_price": "30.0001"})["over_limit"] == 10
    # C000009: B 0.20, cap 9800. 11800 → capped 9800, over 2000, pre 1960, in scope 7840
    assert _one(tables, {"code": "C000009", "quantity": 1, "unit_price": "11800.00"}) == {
        "total": 1_180_000,
        "fully_self_paid": 0,
        "over_limit": 200_000,
        "pre_self_paid": 196_000,
        "in_scope": 784_000,
    }


def test_claim_totals_are_sums_of_lines_with_per_line_rounding(tables: Tables) -> None:
    # each line rounds on its own: 3 lines of 0.005 yuan are 1 fen each (3), not round(1.5) = 2
    items = [{"code": "X000001", "quantity": 1, "unit_price": "0.005"}] * 3
    assert _one_claim(tables, items)["in_scope"] == 3


def _one_claim(tables: Tables, items: list[dict[str, Any]]) -> dict[str, int]:
    return _parts([_claim(items)], tables)[0]


LINE_CODES = sorted(
    ["X000001", "X000006", "X000026", "F000001", "C000009", "F000031", "C000003", "X000020", "F000013", "X000008"]
)


def _model_line(tables: Tables, version: int, code: str, q: Decimal, p: Decimal) -> tuple[int, int, int, int]:
    entry = tables.schedules.versions[version].catalog[code]
    half = Fraction(1, 2)
    amount = floor(Fraction(q) * Fraction(p) * 100 + half)
    capped = amount
    if entry.price_cap_fen is not None and Fraction(p) * 100 > entry.price_cap_fen:
        capped = floor(Fraction(q) * entry.price_cap_fen + half)
    fully = pre = in_scope = 0
    if entry.cls == "A":
        in_scope = capped
    elif entry.cls == "B":
        assert entry.self_pay_ratio_bp is not None
        pre = floor(Fraction(capped * entry.self_pay_ratio_bp, 10_000) + half)
        in_scope = capped - pre
    else:
        fully = capped
    return fully, amount - capped, pre, in_scope


LINE = st.tuples(
    st.sampled_from(LINE_CODES),
    st.integers(1, 100_000_000).map(lambda n: Decimal(n).scaleb(-4)),
    st.one_of(
        st.integers(0, 10_000_000_000).map(lambda n: Decimal(n).scaleb(-4)),
        st.integers(0, 5_000_000).map(lambda n: Decimal(n).scaleb(-4)),
    ),
)


@given(claims=st.lists(st.tuples(st.booleans(), st.lists(LINE, min_size=1, max_size=6)), min_size=1, max_size=8))
@settings(max_examples=80, deadline=None)
def test_line_parts_match_exact_arithmetic(tables: Tables, claims: list[tuple[bool, list[Any]]]) -> None:
    objs = []
    for n, (in_2019, lines) in enumerate(claims):
        items = [{"code": c, "quantity": format(q, "f"), "unit_price": format(p, "f")} for c, q, p in lines]
        obj = _claim(items, discharged="2019-06-10" if in_2019 else "2018-06-10")
        obj["claim_id"] = f"T-{n}"
        objs.append(obj)
    got = _parts(objs, tables)
    for (in_2019, lines), parts in zip(claims, got, strict=True):
        sums = [0, 0, 0, 0]
        for code, q, p in lines:
            for k, value in enumerate(_model_line(tables, int(in_2019), code, q, p)):
                sums[k] += value
        assert [parts["fully_self_paid"], parts["over_limit"], parts["pre_self_paid"], parts["in_scope"]] == sums
        assert parts["total"] == sum(sums)


@contextmanager
def _interpreted() -> Iterator[None]:
    """Runs settle() on the plain-Python source of every compiled kernel (Python ints: no overflow)."""
    patches = []
    for name in dir(kernel):
        source = getattr(kernel, "_" + name, None)
        compiled = getattr(kernel, name)
        if not name.startswith("_") and getattr(compiled, "py_func", None) is source and source is not None:
            patches.append(mock.patch.object(kernel, name, source))
    if hasattr(kernel, "_band_total_jit"):
        patches.append(mock.patch.object(kernel, "_band_total_jit", kernel._band_total))
    assert patches
    for p in patches:
        p.start()
    try:
        yield
    finally:
        for p in patches:
            p.stop()


def _same(a: BatchResult, b: BatchResult) -> None:
    for name in (
        "total",
        "fully_self_paid",
        "over_limit",
        "pre_self_paid",
        "in_scope",
        "deductible",
        "base",
        "basic",
        "critical_illness",
        "medical_assistance",
        "charity",
        "charity_by_fund",
        "backstop",
        "patient_pays",
        "hospital_bears",
    ):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name


def test_largest_bill_stays_exact(tables: Tables) -> None:
    """10,000 lines of 10,000 × 1,000,000 yuan: 10^16 fen, far past the direct int64 products."""
    items = [
        {"code": code, "quantity": 10_000, "unit_price": 1_000_000}
        for code in ("X000001", "X000006", "F000001", "X000026")
        for _ in range(2_500)
    ]
    claims = [
        _claim(items, category="extreme_poverty", level=1),
        _claim(items, category="registered_poor", diagnosis="C15.9", treatment="surgery", level=3),
    ]
    claims[1]["claim_id"] = "T-2"
    batch = _batch(claims, tables)
    compiled = settle(batch, tables)
    with _interpreted():
        interpreted = settle(batch, tables)
    _same(compiled, interpreted)
    big = 10_000 * 1_000_000 * 100  # one line, in fen
    # A lines: 2,500 × big; B (ratio 0.10, no cap): pre 10%; F000001 capped at 30.00; C: fully self-paid
    assert int(compiled.fully_self_paid[0]) == 2_500 * big
    assert int(compiled.pre_self_paid[0]) == 2_500 * big // 10
    assert int(compiled.over_limit[0]) == 2_500 * (big - 10_000 * 3_000)
    assert int(compiled.total[0]) == 10_000 * big
    for i in range(2):
        paid = sum(
            int(getattr(compiled, k)[i])
            for k in (
                "basic",
                "critical_illness",
                "medical_assistance",
                "charity",
                "backstop",
                "patient_pays",
                "hospital_bears",
            )
        )
        assert paid == int(compiled.total[i])
    assert int(compiled.hospital_bears[1]) == 10_000 * big - 5_000_000  # the 50,000-yuan surgery standard


def test_line_order_inside_a_batch_is_kept_per_claim(tables: Tables) -> None:
    """Claims with different line counts side by side: each claim sums its own lines only."""
    a = _claim([{"code": "X000001", "quantity": 1, "unit_price": "1.00"}])
    b = _claim([{"code": "X000026", "quantity": 1, "unit_price": "2.00"}] * 3)
    c = _claim(
        [
            {"code": "X000006", "quantity": 1, "unit_price": "10.00"},
            {"code": "X000001", "quantity": 2, "unit_price": "0.50"},
        ]
    )
    got = _parts([a, b, c, a], tables)
    assert [g["total"] for g in got] == [100, 600, 1100, 100]
    assert [g["fully_self_paid"] for g in got] == [0, 600, 0, 0]
    assert [g["pre_self_paid"] for g in got] == [0, 0, 100, 0]


# --------------------------------------------------------------------------- §5.2 pathway


def _settle_one(tables: Tables, claim: dict[str, Any]) -> dict[str, Any]:
    return StreamSettler(tables).settle_lines([json.dumps(claim)])[0]


SURGERY = [{"code": "F000001", "quantity": 10, "unit_price": "30.00"}]


@pytest.mark.parametrize(
    ("diagnosis", "group"),
    [
        ("C15.9", "esophageal_cancer"),
        ("c15.900", "esophageal_cancer"),
        ("  C15  ", "esophageal_cancer"),
        ("C150", "esophageal_cancer"),
        ("C1", None),
        ("C20.x", "rectal_cancer"),
        ("N18.5", "end_stage_renal_disease"),
        ("N18.9", None),
        ("J18.9", None),
    ],
)
def test_icd10_prefix_match(tables: Tables, diagnosis: str, group: str | None) -> None:
    got = _settle_one(tables, _claim(SURGERY, diagnosis=diagnosis))
    assert got["disease_group"] == group
    assert got["pathway"] == "standard"  # no treatment given: the standard pathway, not an error


def test_pattern_with_a_point_does_not_match_code_without(tables: Tables) -> None:
    # Q21.0 patterns: "Q210" does not start with "Q21.0"
    child = "232721201604050056"
    got = _settle_one(
        tables,
        _claim(
            SURGERY,
            person_id=child,
            diagnosis="Q210",
            category="subsistence_allowance",
            treatment="vsd_repair",
            level=3,
        ),
    )
    assert got["disease_group"] is None and got["pathway"] == "standard"
    got = _settle_one(
        tables,
        _claim(
            SURGERY,
            person_id=child,
            diagnosis="Q21.0",
            category="subsistence_allowance",
            treatment="vsd_repair",
            level=3,
        ),
    )
    assert got["disease_group"] == "childhood_congenital_heart_disease" and got["pathway"] == "single_disease"


@pytest.mark.parametrize(
    ("admitted", "group"),
    [
        ("2018-02-28", "childhood_leukemia"),  # age 13
        ("2018-03-01", "childhood_leukemia"),  # age 14: max_age is inclusive
        ("2019-02-28", "childhood_leukemia"),  # still 14 the day before the (common-year) birthday
        ("2019-03-01", None),  # age 15
    ],
)
def test_group_age_limits_on_admission_date(tables: Tables, admitted: str, group: str | None) -> None:
    discharged = admitted[:5] + "03-20"
    got = _settle_one(
        tables, _claim(SURGERY, person_id=CHILD_0229, diagnosis="C91.0", admitted=admitted, discharged=discharged)
    )
    assert got["disease_group"] == group


@pytest.mark.parametrize(
    ("birth_body", "standard_amount"),
    [("23272120180101003", 38_000), ("23272120160405005", 28_000), ("23272120130101001", 22_000)],
)
def test_first_standard_whose_age_fits(tables: Tables, birth_body: str, standard_amount: int) -> None:
    """vsd_repair: 38,000 at age 0, 28,000 at 1–3, 22,000 from 4; a bill above all of them shows S."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    pid = birth_body + "10X98765432"[sum(int(d) * w for d, w in zip(birth_body, weights, strict=True)) % 11]
    items = [{"code": "F000027", "quantity": 1, "unit_price": "50000.00"}]
    got = _settle_one(
        tables,
        _claim(
            items,
            person_id=pid,
            diagnosis="Q21.0",
            treatment="vsd_repair",
            level=3,
            category="extreme_poverty",
            admitted="2018-10-01",
            discharged="2018-10-09",
        ),
    )
    assert got["pathway"] == "single_disease", got
    total = Decimal(got["amounts"]["total"])
    assert total - Decimal(got["hospital_bears"]) == standard_amount


def _fixed(tables: Tables, **overrides: Any) -> dict[str, Any]:
    base = dict(diagnosis="C16.0", treatment="surgery", category="registered_poor", level=3)
    base.update(overrides)
    return _settle_one(tables, _claim(copy.deepcopy(SURGERY), **base))


def test_fixed_pathway_conditions(tables: Tables) -> None:
    assert _fixed(tables)["pathway"] == "single_disease"
    # each condition of §5.2 alone turns the claim to the standard pathway, with the group reported
    for override in (
        {"scheme": "employee"},
        {"category": "low_income"},
        {"level": 1},
        {"visit_type": "chronic_outpatient"},
    ):
        got = _fixed(tables, **override)
        assert (got["pathway"], got["disease_group"]) == ("standard", "gastric_cancer"), override
    # renal disease also takes chronic_outpatient
    got = _fixed(tables, diagnosis="N18.0", treatment="hemodialysis", visit_type="chronic_outpatient")
    assert got["pathway"] == "single_disease"


def test_no_standard_is_an_error_that_changes_nothing(tables: Tables) -> None:
    settler = StreamSettler(tables)
    bad = _claim(copy.deepcopy(SURGERY), diagnosis="C16.0", treatment="laser", category="registered_poor", level=3)
    good = _claim(copy.deepcopy(SURGERY), category="registered_poor")
    out = settler.settle_lines([json.dumps(bad), json.dumps(good)])
    assert out[0]["error"]["code"] == "no_standard"
    assert "laser" in out[0]["error"]["message"] and "gastric_cancer" in out[0]["error"]["message"]
    assert out[1] == StreamSettler(tables).settle_lines([json.dumps(good)])[0]
    # a treatment whose standard exists only for another diagnosis of the group: no standard either
    leuk = _claim(
        copy.deepcopy(SURGERY),
        person_id=CHILD_0229,
        diagnosis="C92.4",
        treatment="all_standard_risk",
        category="registered_poor",
        level=3,
    )
    assert _settle_one(tables, leuk)["error"]["code"] == "no_standard"


def test_per_session_standard(tables: Tables) -> None:
    # hemodialysis 400.00 per session × 3 sessions = 1200.00 against a 12 × 420.00 = 5040.00 bill
    items = [{"code": "F000031", "quantity": 12, "unit_price": "420.00"}]
    got = _settle_one(
        tables,
        _claim(
            items,
            diagnosis="N18.5",
            treatment="hemodialysis",
            sessions=3,
            category="subsistence_allowance",
            visit_type="chronic_outpatient",
        ),
    )
    assert got["pathway"] == "single_disease"
    assert got["hospital_bears"] == "3840.00"
    # shares 70/10/10 of 1200.00, no deductible
    assert got["payments"]["basic"] == "840.00" and got["amounts"]["deductible"] == "0.00"


def test_fixed_standard_base_below_standard(tables: Tables) -> None:
    # bill 300.00 under a 45,000 standard: base is the bill, the hospital bears nothing
    got = _fixed(tables)
    assert got["amounts"]["total"] == "300.00" and got["hospital_bears"] == "0.00"
    assert (got["payments"]["basic"], got["payments"]["critical_illness"], got["payments"]["medical_assistance"]) == (
        "210.00",
        "30.00",
        "30.00",
    )


def test_schedules_fixture_has_both_years(schedules: ScheduleSet) -> None:
    assert [v.id for v in schedules.versions] == ["heilongjiang-2018", "heilongjiang-2019"]
