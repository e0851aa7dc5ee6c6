"""The review rules: strict loading of their configuration, and each rule's evaluation (pure)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.money import format_fen
from settlement.service.reviews.rules import (
    BUNDLED,
    CLAIM_RULES,
    PERSON_RULES,
    RULES,
    ClaimFacts,
    Period,
    ReviewRulesError,
    Stay,
    claim_flags,
    load_rules,
    person_flags,
)

RULES_DEFAULT = load_rules()
D = dt.date
MARCH_1, MARCH_5 = D(2019, 3, 1), D(2019, 3, 5)


def test_the_bundled_file_lists_all_thirteen_rules_of_review_rules_md():
    shared = Path("/work/shared/REVIEW_RULES.md")
    if shared.exists():
        named = {line.split("|")[1].strip().strip("`") for line in shared.read_text().splitlines()
                 if line.startswith("| `")}
        assert named == set(RULES)
    assert len(RULES) == 13 and set(CLAIM_RULES) | set(PERSON_RULES) == set(RULES)
    view = {r["rule"]: r for r in RULES_DEFAULT.view()}
    assert view["readmission"]["threshold"] == {"days": 15}
    assert view["frequent_stays"]["threshold"] == {"stays": 3, "window_days": 30}
    assert view["high_self_pay_share"]["threshold"] == {"share": "0.20"}
    assert view["high_total"]["threshold"] == {"amount": "100000.00"}
    assert view["bed_days_exceed_stay"]["threshold"] == {"bed_fee_codes": ["F000001", "F000002"]}
    assert all(r["enabled"] for r in view.values())


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace("  days: 15\n", ""), "readmission.days: missing key"),
        (lambda t: t.replace("  days: 15\n", "  days: 15\n  weeks: 2\n"), "readmission.weeks: unknown key"),
        (lambda t: t.replace("  days: 15", "  days: fifteen"), "readmission.days"),
        (lambda t: t.replace('amount: "100000.00"', 'amount: "100000.001"'), "high_total.amount: more than two"),
        (lambda t: t.replace("share: 0.20", "share: 1.5"), "high_self_pay_share.share"),
        (lambda t: t + "made_up_rule:\n  enabled: true\n", "made_up_rule: unknown key"),
        (lambda t: t.replace("backstop_paid:", "backstop_payd:"), "backstop_paid: missing key"),
        (lambda t: t.replace("  enabled: true\n", "  enabled: yes please\n", 1), "readmission.enabled"),
    ],
)
def test_a_bad_rules_file_is_refused_naming_the_file_and_key(tmp_path, change, message):
    path = _write(tmp_path, change(BUNDLED.read_text(encoding="utf-8")))
    with pytest.raises(ReviewRulesError) as caught:
        load_rules(path)
    assert any(str(path) in d and message in d for d in caught.value.defects), caught.value.defects


def test_an_override_changes_thresholds_and_the_digest(tmp_path):
    path = _write(tmp_path, BUNDLED.read_text(encoding="utf-8").replace("  days: 15", "  days: 7"))
    rules = load_rules(path)
    assert rules.config.readmission.days == 7 and rules.source == str(path)
    assert rules.digest != RULES_DEFAULT.digest
    assert load_rules(_write(tmp_path, BUNDLED.read_text(encoding="utf-8"))).digest == RULES_DEFAULT.digest


def test_yaml_errors_name_the_line(tmp_path):
    path = _write(tmp_path, "readmission:\n  days: [\n")
    with pytest.raises(ReviewRulesError) as caught:
        load_rules(path)
    assert str(path) in caught.value.defects[0] and "line" in caught.value.defects[0]


# -- claim rules ----------------------------------------------------------------------

ZERO = {name: 0 for name in ("total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible",
                             "basic", "critical_illness", "medical_assistance", "charity", "backstop",
                             "patient_pays", "hospital_bears")}


def facts(*, items: list[dict[str, Any]] | None = None, patient: dict[str, Any] | None = None,
          emergency_relief: str | None = None, category: str = "registered_poor", pathway: str = "standard",
          admitted: dt.date = MARCH_1, discharged: dt.date = MARCH_5, **fen: int) -> ClaimFacts:
    body = {"patient": patient or {"person_id": "x"}, "items": items or [{"code": "X000001", "quantity": 1,
                                                                          "unit_price": "1.00"}]}
    return ClaimFacts(seq=1, category=category, visit_type="inpatient", admitted=admitted, discharged=discharged,
                      pathway=pathway, fen={**ZERO, **fen}, request_body=json.dumps(body),
                      emergency_relief=emergency_relief)


def test_amount_rules_fire_on_their_amounts_only():
    quiet = claim_flags(RULES_DEFAULT, facts(total=10_000, basic=10_000))
    assert quiet == {}
    fired = claim_flags(RULES_DEFAULT, facts(total=10_000_001, over_limit=1, backstop=250, hospital_bears=5))
    assert fired["over_price_cap"] == {"over_limit": "0.01"}
    assert fired["high_total"] == {"total": "100000.01"}
    assert fired["backstop_paid"] == {"backstop": "2.50"}
    assert "fixed_standard_overrun" not in fired  # hospital_bears on the standard pathway is not this rule
    # exactly the threshold is not above it
    assert "high_total" not in claim_flags(RULES_DEFAULT, facts(total=10_000_000))
    fixed = claim_flags(RULES_DEFAULT, facts(total=100, pathway="single_disease", hospital_bears=40))
    assert fixed["fixed_standard_overrun"] == {"hospital_bears": "0.40", "pathway": "single_disease"}


def test_high_self_pay_share_needs_a_poverty_category_and_more_than_the_share():
    assert "high_self_pay_share" not in claim_flags(RULES_DEFAULT, facts(total=1000, fully_self_paid=200))
    fired = claim_flags(RULES_DEFAULT, facts(total=1000, fully_self_paid=201))
    assert fired["high_self_pay_share"]["share"] == "0.2010"
    assert "high_self_pay_share" not in claim_flags(
        RULES_DEFAULT, facts(total=1000, fully_self_paid=900, category="none")
    )


def test_duplicate_lines_are_the_same_code_at_the_same_price():
    items = [
        {"code": "X000001", "quantity": 1, "unit_price": "12.50"},
        {"code": "X000002", "quantity": 1, "unit_price": "12.50"},
        {"code": "X000001", "quantity": 2, "unit_price": 12.5},
        {"code": "X000002", "quantity": 1, "unit_price": "13.00"},
    ]
    fired = claim_flags(RULES_DEFAULT, facts(items=items, total=1))
    assert fired["duplicate_line"] == {"repeated": [{"code": "X000001", "unit_price": "12.50", "lines": [1, 3]}]}
    assert "duplicate_line" not in claim_flags(RULES_DEFAULT, facts(items=items[:2] + items[3:], total=1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["X000001", "X000002", "X000003"]),
                          st.sampled_from(["12.5", "12.50", "13.00", "1", "1.0"])), max_size=12))
def test_duplicate_lines_as_defined(lines):
    """Every group of two or more lines with one code and one price (as a decimal), in first-seen order."""
    items = [{"code": code, "quantity": 1, "unit_price": price} for code, price in lines]
    groups: dict[tuple[str, Decimal], list[int]] = {}
    for number, (code, price) in enumerate(lines, start=1):
        groups.setdefault((code, Decimal(price)), []).append(number)
    expected = [{"code": code, "unit_price": format_fen(int(price * 100)), "lines": numbers}
                for (code, price), numbers in groups.items() if len(numbers) > 1]
    fired = claim_flags(RULES_DEFAULT, facts(items=items, total=1))
    assert fired.get("duplicate_line") == ({"repeated": expected} if expected else None)


def test_bed_days_beyond_the_stay():
    # 1 to 5 March: 5 days at most
    five = [
        {"code": "F000001", "quantity": 3, "unit_price": "30"},
        {"code": "F000002", "quantity": "2", "unit_price": "80"},
    ]
    assert "bed_days_exceed_stay" not in claim_flags(RULES_DEFAULT, facts(items=five, total=1))
    six = [*five, {"code": "F000001", "quantity": "0.5", "unit_price": "30"}]
    fired = claim_flags(RULES_DEFAULT, facts(items=six, total=1))
    assert fired["bed_days_exceed_stay"] == {"bed_days": "5.5", "stay_days": 5, "admitted": "2019-03-01",
                                             "discharged": "2019-03-05"}


def test_emergency_rules_read_the_stored_body_and_result():
    unidentified = claim_flags(RULES_DEFAULT, facts(
        patient={"unidentified": True, "temporary_id": "T2019-0042"},
        emergency_relief="800.00", total=1))
    assert unidentified["emergency_unidentified"] == {"temporary_id": "T2019-0042", "emergency_relief": "800.00"}
    assert "emergency_unable_to_pay" not in unidentified
    unable = claim_flags(RULES_DEFAULT, facts(
        patient={"person_id": "x", "unable_to_pay": True}, emergency_relief="12.34", total=1))
    assert unable["emergency_unable_to_pay"] == {"emergency_relief": "12.34"}
    nothing_paid = claim_flags(RULES_DEFAULT, facts(
        patient={"person_id": "x", "unable_to_pay": True}, emergency_relief="0.00", total=1))
    assert "emergency_unable_to_pay" not in nothing_paid
    assert claim_flags(RULES_DEFAULT, facts(total=1)) == {}


def test_a_disabled_rule_never_fires(tmp_path):
    text = BUNDLED.read_text(encoding="utf-8")
    start = text.index("backstop_paid:")
    text = text[:start] + text[start:].replace("enabled: true", "enabled: false", 1)
    rules = load_rules(_write(tmp_path, text))
    assert not rules.enabled("backstop_paid")
    assert "backstop_paid" not in claim_flags(rules, facts(total=10, backstop=10))


# -- person rules ---------------------------------------------------------------------

T0 = dt.datetime(2019, 6, 1, tzinfo=dt.UTC)


def stay(seq: int, admitted: dt.date, discharged: dt.date, *, hospital: str = "H1", status: str = "settled",
         visit: str = "inpatient", category: str = "registered_poor", settled_at: dt.datetime = T0,
         reversed_at: dt.datetime | None = None) -> Stay:
    return Stay(seq=seq, settlement_id=f"S{seq}", hospital_id=hospital, claim_id=f"C{seq}", status=status,
                visit_type=visit, category=category, admitted=admitted, discharged=discharged,
                settled_at=settled_at, reversed_at=reversed_at)


PERIODS = [Period("registered_poor", D(2018, 1, 1), None)]


def test_readmission_same_hospital_within_n_days():
    stays = [
        stay(1, D(2019, 1, 1), D(2019, 1, 10)),
        stay(2, D(2019, 1, 25), D(2019, 1, 30)),  # 15 days after: fires
        stay(3, D(2019, 2, 15), D(2019, 2, 20)),  # 16 days after: does not
        stay(4, D(2019, 2, 22), D(2019, 2, 23), hospital="H2"),  # another hospital: does not
        stay(5, D(2019, 2, 24), D(2019, 2, 25), visit="outpatient"),
    ]
    fired = person_flags(RULES_DEFAULT, stays, PERIODS)
    readmissions = {seq for seq, rule in fired if rule == "readmission"}
    assert readmissions == {2}
    assert fired[(2, "readmission")]["days_since_discharge"] == 15
    assert fired[(2, "readmission")]["previous_settlement_id"] == "S1"
    # a reversed earlier stay does not count
    stays[0] = stay(1, D(2019, 1, 1), D(2019, 1, 10), status="reversed", reversed_at=T0)
    assert (2, "readmission") not in person_flags(RULES_DEFAULT, stays, PERIODS)


def test_frequent_stays_three_within_thirty_days_any_hospital():
    stays = [
        stay(1, D(2019, 1, 1), D(2019, 1, 3)),
        stay(2, D(2019, 1, 10), D(2019, 1, 12), hospital="H2"),
        stay(3, D(2019, 1, 30), D(2019, 1, 31), hospital="H3"),  # 1 Jan .. 30 Jan: 30 days, three stays
        stay(4, D(2019, 3, 1), D(2019, 3, 2)),
    ]
    fired = person_flags(RULES_DEFAULT, stays, PERIODS)
    assert {seq for seq, rule in fired if rule == "frequent_stays"} == {3}
    assert fired[(3, "frequent_stays")]["settlement_ids"] == ["S1", "S2", "S3"]
    stays[2] = stay(3, D(2019, 1, 31), D(2019, 2, 1), hospital="H3")  # 31 days: no
    assert not any(rule == "frequent_stays" for _s, rule in person_flags(RULES_DEFAULT, stays, PERIODS))


def test_resettled_after_reversal_of_the_same_hospital_person_and_dates():
    later = T0 + dt.timedelta(days=2)
    stays = [
        stay(1, D(2019, 1, 1), D(2019, 1, 3), status="reversed", reversed_at=T0 + dt.timedelta(days=1)),
        stay(2, D(2019, 1, 1), D(2019, 1, 3), settled_at=later),
        stay(3, D(2019, 1, 1), D(2019, 1, 4), settled_at=later),  # other dates
        stay(4, D(2019, 1, 1), D(2019, 1, 3), hospital="H2", settled_at=later),  # other hospital
    ]
    fired = person_flags(RULES_DEFAULT, stays, PERIODS)
    assert {seq for seq, rule in fired if rule == "resettled_after_reversal"} == {2}
    assert fired[(2, "resettled_after_reversal")]["reversed_settlement_id"] == "S1"


def test_category_changed_after_settlement():
    stays = [stay(1, D(2019, 1, 5), D(2019, 1, 9)), stay(2, D(2019, 7, 5), D(2019, 7, 9))]
    assert not any(rule == "category_changed_after" for _s, rule in person_flags(RULES_DEFAULT, stays, PERIODS))
    corrected = [Period("registered_poor", D(2018, 1, 1), D(2019, 6, 30)), Period("none", D(2019, 7, 1), None)]
    fired = person_flags(RULES_DEFAULT, stays, corrected)
    assert fired == {(2, "category_changed_after"): {"settled_category": "registered_poor",
                                                       "registry_category": "none", "admitted": "2019-07-05"}}
    assert (1, "category_changed_after") in person_flags(RULES_DEFAULT, stays, None)  # no longer registered
