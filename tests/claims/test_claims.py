"""SPEC §3 and §6: what a claim may hold, the person id, and which error wins.

Every case is checked twice: against the contract (`validate_claim` /
`prepare_claim`) and through the batch reader (`StreamSettler`, whose fast
path must never accept what the contract refuses, nor word it differently).
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest

from settlement.batchrun import StreamSettler, settle_stream
from settlement.claims import (
    ERROR_ORDER,
    ClaimError,
    decode_json,
    prepare_claim,
    validate_claim,
)
from settlement.engine import Tables

PERSON = "23010219560312041X"  # born 1956-03-12, check character X
OTHER = "231202194807070129"  # born 1948-07-07


def base() -> dict[str, Any]:
    return {
        "claim_id": "C-1",
        "hospital": {"id": "H0002", "level": 2},
        "patient": {"person_id": PERSON, "scheme": "resident", "category": "registered_poor"},
        "visit": {"type": "inpatient", "admitted": "2018-01-08", "discharged": "2018-01-19"},
        "diagnosis": {"primary": "J18.9"},
        "items": [
            {"code": "F000001", "quantity": 11, "unit_price": "35.00"},
            {"code": "X000007", "quantity": 14, "unit_price": "48.50"},
            {"code": "X000003", "quantity": 20, "unit_price": "4.80"},
            {"code": "F000010", "quantity": 1, "unit_price": "260.00"},
        ],
    }


def with_(path: str, value: Any, claim: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of the claim with the value at a dotted path ('items.3.unit_price') set, or removed for DELETE."""
    c = copy.deepcopy(claim or base())
    *parents, last = path.split(".")
    node: Any = c
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    key: Any = int(last) if last.isdigit() else last
    if value is DELETE:
        del node[key]
    else:
        node[key] = value
    return c


DELETE = object()


def stream(tables: Tables, *claims: dict[str, Any] | str | bytes) -> list[dict[str, Any]]:
    lines = [c if isinstance(c, bytes) else (c if isinstance(c, str) else json.dumps(c)).encode() for c in claims]
    return StreamSettler(tables).settle_lines(lines)


def error_of(tables: Tables, claim: dict[str, Any] | str) -> ClaimError:
    """The contract's error for the claim; asserts the stream reports the very same."""
    try:
        obj = decode_json(claim) if isinstance(claim, str) else claim
        prepared = prepare_claim(validate_claim(obj), tables)
    except ClaimError as error:
        got = stream(tables, claim)[0]
        assert got == {"claim_id": error.claim_id, "error": {"code": error.code, "message": error.message}}
        return error
    # an engine error (no_standard) shows only in the stream
    got = stream(tables, claim)[0]
    assert "error" in got, f"expected an error, got a settlement for {prepared.record.claim_id}"
    return ClaimError(got["error"]["code"], got["error"]["message"], got["claim_id"])


def invalid(tables: Tables, claim: dict[str, Any] | str, field: str, fragment: str = "") -> ClaimError:
    error = error_of(tables, claim)
    assert error.code == "invalid_claim", error
    prefix = f"{field}: {fragment}"
    assert any(part.startswith(prefix) for part in error.message.split("; ")), (prefix, error.message)
    return error


def valid(tables: Tables, claim: dict[str, Any]) -> dict[str, Any]:
    validate_claim(claim)
    got = stream(tables, claim)[0]
    assert "error" not in got, got
    return got


# --------------------------------------------------------------------------- quantity and unit price


@pytest.mark.parametrize(
    "value", [1, "1", "0.0001", 0.0001, "10000", 10_000, "10000.0000", "1.50000", 2.5, "0007.25", 100.0]
)
def test_quantity_accepted(tables: Tables, value: Any) -> None:
    valid(tables, with_("items.0.quantity", value))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "must be > 0"),
        ("0", "must be > 0"),
        ("0.0000", "must be > 0"),
        (-1, "must be > 0"),
        ("10000.0001", "must be > 0 and ≤ 10,000"),
        (10_001, "must be > 0 and ≤ 10,000"),
        ("0.00001", "more than 4 decimals"),
        ("1.12345", "more than 4 decimals"),
        ("-1", "not a plain decimal"),
        ("+1", "not a plain decimal"),
        ("1e2", "not a plain decimal"),
        ("1E2", "not a plain decimal"),
        ("1,000", "not a plain decimal"),
        ("1 000", "not a plain decimal"),
        (" 1", "not a plain decimal"),
        ("1 ", "not a plain decimal"),
        ("1.", "not a plain decimal"),
        (".5", "not a plain decimal"),
        ("0x10", "not a plain decimal"),
        ("1_0", "not a plain decimal"),
        ("١", "not a plain decimal"),
        ("１", "not a plain decimal"),
        ("", "not a plain decimal"),
        ("nan", "not a plain decimal"),
        ("Infinity", "not a plain decimal"),
        (True, ""),
        (None, ""),
        ([1], ""),
        ({"v": 1}, ""),
    ],
)
def test_quantity_refused(tables: Tables, value: Any, fragment: str) -> None:
    invalid(tables, with_("items.0.quantity", value), "items[0].quantity", fragment)


@pytest.mark.parametrize("value", [0, "0", "0.0000", 0.0, "1000000", 1_000_000, "999999.9999", "0.0001"])
def test_unit_price_accepted(tables: Tables, value: Any) -> None:
    valid(tables, with_("items.3.unit_price", value))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("1000000.0001", "must be ≥ 0 and ≤ 1,000,000"),
        (1_000_001, "must be ≥ 0 and ≤ 1,000,000"),
        (-0.01, "must be ≥ 0"),
        ("-0.01", "not a plain decimal"),
        ("12.34567", "more than 4 decimals"),
        ("1000000.00001", "more than 4 decimals"),
        ("4.8e1", "not a plain decimal"),
        ("¥4.80", "not a plain decimal"),
    ],
)
def test_unit_price_refused(tables: Tables, value: Any, fragment: str) -> None:
    invalid(tables, with_("items.3.unit_price", value), "items[3].unit_price", fragment)


def test_message_names_the_field_path(tables: Tables) -> None:
    error = invalid(tables, with_("items.3.unit_price", "1.12345"), "items[3].unit_price")
    assert error.message == "items[3].unit_price: more than 4 decimals"
    assert error.fields == ({"field": "items[3].unit_price", "message": "more than 4 decimals"},)


def test_decimals_counted_by_value_in_json_numbers(tables: Tables) -> None:
    """1.50000 written as a JSON number has one decimal; 1.00001 has five."""
    text = json.dumps(base()).replace('"quantity": 11', '"quantity": 1.50000')
    assert valid(tables, json.loads(text))  # through a float: 1.5
    assert "error" not in stream(tables, text)[0]  # and through the exact reader of the raw line
    text = json.dumps(base()).replace('"quantity": 11', '"quantity": 1.00001')
    invalid(tables, text, "items[0].quantity", "more than 4 decimals")
    text = json.dumps(base()).replace('"quantity": 11', '"quantity": 0.1000000000000000055511151231257827')
    invalid(tables, text, "items[0].quantity", "more than 4 decimals")


def test_json_number_with_exponent_is_a_number(tables: Tables) -> None:
    """The sign/exponent rule is about strings; a JSON number is read by value (1.1e1 = 11)."""
    text = json.dumps(base()).replace('"quantity": 11', '"quantity": 1.1e1')
    assert stream(tables, text)[0] == stream(tables, base())[0]
    text = json.dumps(base()).replace('"quantity": 11', '"quantity": 1.1e-5')
    invalid(tables, text, "items[0].quantity", "more than 4 decimals")


def test_string_and_number_amounts_mean_the_same(tables: Tables) -> None:
    """2, 2.0, "2", "2.00" and "2.0000" are one quantity, in any mix within one batch."""
    variants = [2, 2.0, "2", "2.00", "2.0000"]
    claims = []
    for n, v in enumerate(variants):
        c = with_("items.0.quantity", v)
        c["claim_id"] = f"C-{n}"
        c["visit"]["discharged"] = "2018-01-19"
        c["patient"]["person_id"] = [PERSON, OTHER][n % 2]
        claims.append(c)
    alone = [stream(tables, c)[0] for c in claims]
    together = stream(tables, *claims)
    assert len({json.dumps(r["amounts"]) for r in alone}) == 1
    assert [r["amounts"] for r in together] == [r["amounts"] for r in alone]


# --------------------------------------------------------------------------- the other fields


@pytest.mark.parametrize("value", [1, 366, 12])
def test_sessions_accepted(tables: Tables, value: int) -> None:
    valid(tables, with_("sessions", value))


@pytest.mark.parametrize("value", [0, 367, -1, 2.0, 2.5, "2", True, None, [2]])
def test_sessions_refused(tables: Tables, value: Any) -> None:
    invalid(tables, with_("sessions", value), "sessions")


def test_sessions_checked_even_where_unused(tables: Tables) -> None:
    invalid(tables, with_("sessions", 0, with_("visit.type", "outpatient")), "sessions")


@pytest.mark.parametrize("value", ["", 5, ["surgery"], True])
def test_treatment_refused(tables: Tables, value: Any) -> None:
    invalid(tables, with_("treatment", value), "treatment")


def test_treatment_may_be_any_non_empty_string_or_absent(tables: Tables) -> None:
    valid(tables, with_("treatment", "laser"))  # no group for J18.9: unused, not an error
    valid(tables, with_("treatment", None))


def test_items_count(tables: Tables) -> None:
    invalid(tables, with_("items", []), "items", "List should have at least 1 item")
    line = {"code": "F000001", "quantity": 1, "unit_price": "1.00"}
    invalid(tables, with_("items", [line] * 10_001), "items", "List should have at most 10000 items")
    got = valid(tables, with_("items", [line] * 10_000))
    assert got["amounts"]["total"] == "10000.00"


@pytest.mark.parametrize(
    "value",
    [
        "2018-02-30",
        "2018-13-01",
        "2018-1-08",
        "20180108",
        "2018-01-08T00:00",
        "2018/01/08",
        "２０１８-01-08",
        "",
        20180108,
        None,
    ],
)
def test_dates_refused(tables: Tables, value: Any) -> None:
    invalid(tables, with_("visit.admitted", value), "visit.admitted")


def test_admitted_not_after_discharged(tables: Tables) -> None:
    invalid(tables, with_("visit.admitted", "2018-01-20"), "visit", "admitted is after discharged")
    valid(tables, with_("visit.admitted", "2018-01-19"))  # a day case


@pytest.mark.parametrize("value", [1, 2, 3])
def test_level_accepted(tables: Tables, value: int) -> None:
    valid(tables, with_("hospital.level", value))


@pytest.mark.parametrize("value", [0, 4, "2", 2.0, True, None])
def test_level_refused(tables: Tables, value: Any) -> None:
    invalid(tables, with_("hospital.level", value), "hospital.level")


@pytest.mark.parametrize(
    ("path", "value", "field", "fragment"),
    [
        ("patient.scheme", "farmer", "patient.scheme", ""),
        ("patient.scheme", DELETE, "patient.scheme", "missing"),
        ("patient.category", "poor", "patient.category", ""),
        ("visit.type", "emergency", "visit.type", ""),
        ("diagnosis.primary", "   ", "diagnosis.primary", ""),
        ("diagnosis.primary", "", "diagnosis.primary", ""),
        ("hospital.id", "", "hospital.id", ""),
        ("claim_id", "", "claim_id", ""),
        ("items.0.code", "", "items[0].code", ""),
        ("items.0.code", 5, "items[0].code", ""),
        ("patient.person_id", 23010219560312041, "patient.person_id", ""),
        ("hospital", DELETE, "hospital", "missing"),
        ("items", DELETE, "items", "missing"),
        ("visit.discharged", DELETE, "visit.discharged", "missing"),
        ("items.1.unit_price", DELETE, "items[1].unit_price", "missing"),
        ("treatmnet", "surgery", "treatmnet", "unknown key"),
        ("items.2.price", "1.00", "items[2].price", "unknown key"),
        ("patient.name", "Zhang San", "patient.name", "unknown key"),
        ("hospital.level_name", "tertiary", "hospital.level_name", "unknown key"),
    ],
)
def test_field_rules(tables: Tables, path: str, value: Any, field: str, fragment: str) -> None:
    invalid(tables, with_(path, value), field, fragment)


def test_category_defaults_to_none(tables: Tables) -> None:
    without = with_("patient.category", DELETE)
    explicit = with_("patient.category", "none")
    assert valid(tables, without) == valid(tables, explicit)
    assert valid(tables, without) != valid(tables, base())  # the category matters for this claim


def test_claim_id_kept_when_another_field_is_wrong_and_null_when_unusable(tables: Tables) -> None:
    assert error_of(tables, with_("items.0.quantity", 0)).claim_id == "C-1"
    assert error_of(tables, with_("claim_id", 12)).claim_id is None
    assert error_of(tables, with_("claim_id", DELETE)).claim_id is None


def test_every_field_error_listed_in_document_order(tables: Tables) -> None:
    claim = with_("items.3.unit_price", "1.12345", with_("items.1.quantity", 0, with_("hospital.level", 9)))
    error = invalid(tables, claim, "hospital.level")
    fields = [f["field"] for f in error.fields]
    assert fields == ["hospital.level", "items[1].quantity", "items[3].unit_price"]
    assert error.message == "; ".join(f"{f['field']}: {f['message']}" for f in error.fields)


# --------------------------------------------------------------------------- person id


@pytest.mark.parametrize("pid", [PERSON, OTHER, "230103197509200777", "232721201604050056"])
def test_valid_person_ids(tables: Tables, pid: str) -> None:
    valid(tables, with_("patient.person_id", pid, with_("visit.admitted", "2018-01-19")))


@pytest.mark.parametrize(
    ("pid", "fragment"),
    [
        ("230102195603120411", "check character"),  # EX-11
        ("23010219560312041Y", "check character"),
        ("23010219560312041", "18 characters"),
        ("23010219560312041XX", "18 characters"),
        ("2301021956031204 X", "digits"),
        ("23010219560312041０", "check character"),
        ("230102195602300419", "not a real date"),  # 1956-02-30, check character right
        ("230102201801200013", "after admission"),  # born 2018-01-20, admitted 2018-01-08
    ],
)
def test_invalid_person_ids(tables: Tables, pid: str, fragment: str) -> None:
    error = error_of(tables, with_("patient.person_id", pid))
    assert error.code == "invalid_person_id"
    assert fragment in error.message and "person_id" in error.message


def test_born_on_the_admission_day_is_fine(tables: Tables) -> None:
    claim = with_("patient.person_id", "230102201801080015", with_("visit.admitted", "2018-01-08"))
    valid(tables, claim)
    # born after admission but before discharge: not fine
    claim = with_("patient.person_id", "230102201801090010", with_("visit.admitted", "2018-01-08"))
    assert error_of(tables, claim).code == "invalid_person_id"


def test_lower_case_x_is_the_same_person(tables: Tables) -> None:
    first, second = base(), with_("claim_id", "C-2")
    second["visit"].update(admitted="2018-02-01", discharged="2018-02-09")
    upper = stream(tables, first, second)
    mixed = stream(tables, first, with_("patient.person_id", PERSON.lower(), second))
    assert mixed == upper
    # and it is not merely ignored: another person gets a different second settlement
    other = stream(tables, first, with_("patient.person_id", OTHER, second))
    assert other[1] != upper[1]


# --------------------------------------------------------------------------- error precedence (§6)


def test_error_order_constant() -> None:
    assert ERROR_ORDER == ("invalid_claim", "invalid_person_id", "no_schedule", "unknown_item", "no_standard")


NO_STANDARD = {"diagnosis.primary": "C15.9", "treatment": "laser", "hospital.level": 3}
BAD_ITEM = {"items.1.code": "NOPE99"}
NO_SCHEDULE = {"visit.admitted": "2017-12-01", "visit.discharged": "2017-12-09"}
BAD_PERSON = {"patient.person_id": "230102195603120411"}
BAD_FIELD = {"items.3.quantity": "0"}


def _apply(*changes: dict[str, Any]) -> dict[str, Any]:
    claim = base()
    for change in changes:
        for path, value in change.items():
            claim = with_(path, value, claim)
    return claim


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ((NO_STANDARD,), "no_standard"),
        ((NO_STANDARD, BAD_ITEM), "unknown_item"),
        ((NO_STANDARD, BAD_ITEM, NO_SCHEDULE), "no_schedule"),
        ((NO_STANDARD, BAD_ITEM, NO_SCHEDULE, BAD_PERSON), "invalid_person_id"),
        ((NO_STANDARD, BAD_ITEM, NO_SCHEDULE, BAD_PERSON, BAD_FIELD), "invalid_claim"),
        ((BAD_PERSON, {"patient.scheme": DELETE}), "invalid_claim"),
        ((BAD_PERSON, {"items.0.unit_price": "1e3"}), "invalid_claim"),
        ((NO_SCHEDULE, BAD_ITEM), "no_schedule"),
        ((BAD_PERSON, BAD_ITEM), "invalid_person_id"),
    ],
)
def test_error_precedence(tables: Tables, changes: tuple[dict[str, Any], ...], code: str) -> None:
    assert error_of(tables, _apply(*changes)).code == code


def test_unknown_item_message_lists_the_codes(tables: Tables) -> None:
    claim = _apply({"items.0.code": "NOPE1", "items.2.code": "NOPE2", "items.3.code": "NOPE1"})
    error = error_of(tables, claim)
    assert (error.code, error.message) == ("unknown_item", "unknown item codes: NOPE1, NOPE2")


def test_catalog_of_the_version_in_force(tables: Tables) -> None:
    # C000016 exists from 2019 only
    line = {"code": "C000016", "quantity": 1, "unit_price": "100.00"}
    claim = with_("items", [line])
    assert error_of(tables, claim).code == "unknown_item"
    claim["visit"].update(admitted="2018-12-20", discharged="2019-01-03")
    assert valid(tables, claim)["schedule"] == "heilongjiang-2019"


def test_no_schedule_message(tables: Tables) -> None:
    error = error_of(tables, _apply(NO_SCHEDULE))
    assert error.code == "no_schedule" and "2017-12-09" in error.message


# --------------------------------------------------------------------------- lines of a stream


@pytest.mark.parametrize(
    "line",
    [
        b"[1, 2]",
        b'"claim"',
        b"42",
        b"null",
        b"true",
        b"{bad json",
        b'{"claim_id": "X"',
        b"\xff\xfe{}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
)
def test_a_line_that_is_not_a_json_object(tables: Tables, line: bytes) -> None:
    got = stream(tables, base(), line, with_("claim_id", "C-2"))
    assert got[1]["claim_id"] is None and got[1]["error"]["code"] == "invalid_claim"
    assert got[0]["claim_id"] == "C-1" and got[2]["claim_id"] == "C-2"
    assert "error" not in got[0] and "error" not in got[2]


def test_an_object_without_claim_fields(tables: Tables) -> None:
    got = stream(tables, b"{}")[0]
    assert got["claim_id"] is None and got["error"]["code"] == "invalid_claim"
    assert "claim_id: missing" in got["error"]["message"]


def test_one_output_line_per_non_blank_input_line(tables: Tables) -> None:
    good = json.dumps(base()).encode()
    text = b"\n".join([b"", good, b"   ", b"\t", b"not json", b"", good.replace(b"C-1", b"C-2"), b"{}", b"\r"])
    out = io.BytesIO()
    assert settle_stream(io.BytesIO(text + b"\n"), tables, out.write, chunk=2) == 4
    lines = out.getvalue().decode().splitlines()
    assert len(lines) == 4
    got = [json.loads(line) for line in lines]
    assert [g["claim_id"] for g in got] == ["C-1", None, "C-2", None]
    assert "error" not in got[0] and "error" not in got[2]


def test_duplicate_claim_ids_are_each_settled(tables: Tables) -> None:
    got = stream(tables, base(), base())
    assert "error" not in got[0] and "error" not in got[1]
    assert got[0]["claim_id"] == got[1]["claim_id"] == "C-1"
    assert got[0] != got[1]  # the second sees the accumulators of the first
