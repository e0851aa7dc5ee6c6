"""The columnar scanner must never disagree with the per-line readers (msgspec, then the pydantic contract).

Claims are written as JSON text in many ways — whitespace anywhere JSON allows
it, keys in any order, duplicate keys, escapes and non-ASCII text, numbers as
integers, decimals, strings, with leading or trailing zeros and exponents,
nulls and absent optional keys — and with wrong values of every kind. Each
list of lines is settled three times: as `settlement settle` does (the
scanner, falling back line by line), with the scanner off (msgspec and
pydantic), and with both fast readers off (pydantic alone). The three texts
must be identical byte for byte, errors and messages included.
"""

from __future__ import annotations

import copy
import io
import json
import random
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import settlement.batchrun as batchrun
from settlement.batchrun import StreamSettler, settle_file, settle_stream
from settlement.claims.columnar import scan_lines, split_lines
from settlement.engine import Tables
from settlement.synth import claim_dicts, population


class Raw:
    """JSON text written as it is (a number in a given form, or anything else)."""

    def __init__(self, text: str) -> None:
        self.text = text


class Dup:
    """An object written with one key twice: first the decoy value, then the real one."""

    def __init__(self, value: dict[str, Any], key: str, decoy: Any) -> None:
        self.value, self.key, self.decoy = value, key, decoy


SPACES = ["", "", "", " ", "  ", "\t", "\r", "\n", " \r\n "]


def dump(value: Any, rng: random.Random) -> str:
    """value as JSON text, whitespace and key order and string escaping at random."""

    def ws() -> str:
        return rng.choice(SPACES)

    if isinstance(value, Raw):
        return value.text
    if isinstance(value, Dup):
        pairs = [(value.key, value.decoy), *value.value.items()]
        return "{" + ws() + ",".join(f"{ws()}{dump(k, rng)}{ws()}:{ws()}{dump(v, rng)}{ws()}" for k, v in pairs) + "}"
    if isinstance(value, dict):
        pairs = list(value.items())
        if rng.random() < 0.3:
            rng.shuffle(pairs)
        inner = ",".join(f"{ws()}{dump(k, rng)}{ws()}:{ws()}{dump(v, rng)}{ws()}" for k, v in pairs)
        return "{" + inner + (ws() if not pairs else "") + "}"
    if isinstance(value, list):
        return "[" + ",".join(f"{ws()}{dump(v, rng)}{ws()}" for v in value) + (ws() if not value else "") + "]"
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=rng.random() < 0.5)
        if rng.random() < 0.05:
            text = text.replace("/", "\\/")
        return text
    return json.dumps(value)


AMOUNTS = st.one_of(
    st.integers(min_value=-5, max_value=2_000_000),
    st.decimals(min_value=-1, max_value=2_000_000, places=6, allow_nan=False, allow_infinity=False).map(str),
    st.decimals(min_value=0, max_value=2_000_000, places=6, allow_nan=False, allow_infinity=False).map(
        lambda d: Raw(str(d))
    ),
    st.sampled_from([
        Raw("1.50000"), Raw("2.0"), Raw("007"), Raw("0.5"), Raw("00.5"), Raw("1e2"), Raw("1E+2"), Raw("0.00010"),
        Raw("-0"), Raw("-1"), Raw("10000.0000"), Raw("10000.00001"), Raw("1000000.00"), Raw("1000000.0001"),
        Raw("1."), Raw(".5"), Raw("0"), Raw("0.0"), Raw("12345678901234567890"), Raw("9999.9999"),
        Raw("4800.000000000000001"), Raw("480000000000000000001e-17"), Raw("1.0e0"), Raw("NaN"), Raw("Infinity"),
        "1e3", " 1.5", "+2", "1.", ".5", "1_0", "٣", "-0", "0.00001", "10000", "10000.0001", "1000000",
        "1000000.0001", "1.50000", "007.25", "", "0", "0.0", "00000000001", True, False, None, [], {}, "nan",
    ]),
)
TEXTS = st.sampled_from(["", " ", "é", "申请", "\u2028", "a\"b", "tab\there", "x" * 128, "x" * 129, "\x7f", "a/b",
                         "ä" * 128, "ä" * 129, "申" * 128, "\U0001f600" * 128, "\U0001f600" * 129, "\ufeff", "\x80",
                         "\u00a0", "C-1", 7, None, True])


def mutate(claim: dict[str, Any], data: st.DataObject) -> Any:
    """The claim with a few values changed, or its text disturbed."""
    draw = data.draw
    for item in claim["items"]:
        if draw(st.integers(0, 5)) == 0:
            item[draw(st.sampled_from(["quantity", "unit_price"]))] = draw(AMOUNTS)
    for _ in range(draw(st.integers(0, 2))):
        if not (isinstance(claim.get("items"), list) and claim["items"] and isinstance(claim["items"][0], dict)):
            break  # the shape is gone already: the next changes need it
        if not all(isinstance(claim.get(k), dict) for k in ("hospital", "patient", "visit", "diagnosis")):
            break
        where = draw(st.sampled_from([
            "none", "extra", "level", "sessions", "dates", "diag", "treat", "pid", "scheme", "category", "visit",
            "code", "claim_id", "hospital_id", "items", "missing", "dup", "item_extra", "item_missing", "year",
        ]))
        if where == "extra":
            claim[draw(st.sampled_from(["treatmnet", "notes", "claim_id "]))] = "surgery"
        elif where == "level":
            claim["hospital"]["level"] = draw(st.sampled_from([0, 4, 1, 3, Raw("2.0"), "2", True, None, Raw("02"),
                                                               Raw("2e0"), Raw("-1")]))
        elif where == "sessions":
            claim["sessions"] = draw(st.sampled_from([0, 1, 366, 367, 12, Raw("1.0"), "3", None, Raw("012"),
                                                      Raw("10000"), Raw("99999999999999999999")]))
        elif where == "dates":
            claim["visit"][draw(st.sampled_from(["admitted", "discharged"]))] = draw(st.sampled_from([
                "2018-02-30", "2018-12-31", "18-01-01", "2017-12-31", "2019-01-01", "2016-01-01", "0000-01-01",
                "2018-1-01", "2020-02-29", "2019-02-29", "2018-02-28", "2018-13-01", "2018-00-10", "2018-01-00",
                "2018/01/01", "２０１８-01-01", 20180101, None,
            ]))
        elif where == "diag":
            claim["diagnosis"]["primary"] = draw(st.sampled_from(
                ["   ", "", " c15.9 ", "Q21.0", "c16.0", "N18.5", "C91.0", "x" * 32, "x" * 33, "\tC16.0", "C16.0\u00a0",
                 "\u3000", None, 5]
            ))
        elif where == "treat":
            claim["treatment"] = draw(st.sampled_from(
                ["", "surgery", "laser", None, "chemotherapy", "hemodialysis", "x" * 129, "surgery ", 3, "手术",
                 "é" * 128, "é" * 129]
            ))
        elif where == "pid":
            pid = claim["patient"]["person_id"]
            claim["patient"]["person_id"] = draw(st.sampled_from([
                pid[:-1] + "0", pid[:-1] + "x", pid.lower(), pid[:17], pid + "1", "2301021956031204A1",
                pid[:6] + "20300101" + pid[14:], pid[:6] + "19560230" + pid[14:], "x" * 65, "", "２" + pid[1:],
                "23010219560312041X", "23010219560312041x", "230102000001010012", 5,
            ]))
        elif where == "scheme":
            if draw(st.booleans()):
                claim["patient"].pop("scheme", None)
            else:
                claim["patient"]["scheme"] = draw(st.sampled_from([None, "bogus", "employee", "resident", "Resident"]))
        elif where == "category":
            if draw(st.booleans()):
                claim["patient"].pop("category", None)
            else:
                claim["patient"]["category"] = draw(st.sampled_from(
                    [None, "none", "bogus", "low_income", "illness_impoverished", "extreme_poverty", ""]
                ))
        elif where == "visit":
            claim["visit"]["type"] = draw(st.sampled_from(["inpatient", "outpatient", "chronic_outpatient", "other",
                                                           None]))
        elif where == "code":
            item = claim["items"][draw(st.integers(0, len(claim["items"]) - 1))]
            if isinstance(item, dict):
                claim["treatment"] = draw(st.sampled_from(
                ["", "surgery", "laser", None, "chemotherapy", "hemodialysis", "x" * 129, "surgery ", 3, "手术",
                 "é" * 128, "é" * 129]
            ))
        elif where == "claim_id":
            claim["claim_id"] = draw(TEXTS)
        elif where == "hospital_id":
            claim["hospital"]["id"] = draw(TEXTS)
        elif where == "items":
            claim["items"] = draw(st.sampled_from([[], None, "x", [{}], [{"code": "F000001", "quantity": 1}],
                                                   claim["items"] * 3]))
        elif where == "missing":
            path = draw(st.sampled_from(["claim_id", "hospital", "patient", "visit", "diagnosis", "items",
                                         "hospital.id", "hospital.level", "patient.person_id", "visit.type",
                                         "visit.admitted", "visit.discharged", "diagnosis.primary"]))
            node = claim
            *parents, last = path.split(".")
            for part in parents:
                node = node[part]
            node.pop(last, None)
        elif where == "dup":
            key = draw(st.sampled_from(["claim_id", "treatment", "sessions", "hospital"]))
            decoy = draw(st.sampled_from(["other", None, 1, {"id": "H1", "level": 2}]))
            claim = Dup(claim, key, decoy)  # type: ignore[assignment]
            break
        elif where == "item_extra":
            claim["items"][0]["note"] = "x"
        elif where == "item_missing":
            claim["items"][0].pop(draw(st.sampled_from(["code", "quantity", "unit_price"])), None)
        elif where == "year":
            claim["visit"]["admitted"], claim["visit"]["discharged"] = "2019-12-20", "2020-01-03"
    return claim


def _plain(value: Any) -> Any:
    return value.text if isinstance(value, Raw) else value.value


def text_of(claim: Any, data: st.DataObject) -> bytes:
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    text = dump(claim, rng) if rng.random() < 0.7 else json.dumps(claim, default=_plain)
    framing = data.draw(st.sampled_from(["plain"] * 12 + ["bom", "cr", "spaces", "cut", "array", "null", "tail",
                                                          "latin1", "zero", "surrogate", "overlong", "cut_utf8"]))
    if framing == "bom":
        text = "\ufeff" + text
    elif framing == "cr":
        text += "\r"
    elif framing == "spaces":
        text = " \t " + text + " \r\n "
    elif framing == "cut":
        text = text[: data.draw(st.integers(0, max(0, len(text) - 1)))]
    elif framing == "array":
        text = "[" + text + "]"
    elif framing == "null":
        text = "null"
    elif framing == "tail":
        text += data.draw(st.sampled_from(["x", "}", ",", " 1", "{}"]))
    elif framing == "zero":
        text += "\x00"
    raw = text.encode("utf-8", "surrogatepass")
    if framing == "latin1":
        raw = raw.replace(b'"C', b'"\xe9C', 1)
    elif framing == "surrogate":  # UTF-8 of a lone surrogate: not UTF-8, though json.loads takes it
        raw = raw.replace(b'"S', b'"\xed\xa0\x80S', 1)
    elif framing == "overlong":
        raw = raw.replace(b'"S', b'"\xc0\xafS', 1)
    elif framing == "cut_utf8":
        raw = raw.replace(b'"S', b'"\xe7\x94S', 1)
    return raw


def settle_three_ways(tables: Tables, lines: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list[list[bytes]]:
    out = [StreamSettler(tables).settle_lines_json(lines)]
    with monkeypatch.context() as m:
        m.setattr(batchrun, "COLUMNAR", False)
        out.append(StreamSettler(tables).settle_lines_json(lines))
        m.setattr(batchrun, "fast_records", lambda raw: [None] * len(raw))
        out.append(StreamSettler(tables).settle_lines_json(lines))
    return out


@pytest.fixture(scope="module")
def base_claims(tables: Tables) -> list[dict[str, Any]]:
    people = population(12, seed=7)  # few persons: claims share accumulators across the readers
    return list(claim_dicts(40, people, tables, seed=11, year=2018)) + list(
        claim_dicts(20, people, tables, seed=12, year=2019)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_columnar_equals_the_per_line_readers(
    data: st.DataObject, tables: Tables, base_claims: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = data.draw(st.lists(st.integers(0, len(base_claims) - 1), min_size=1, max_size=10))
    lines = []
    for k in picks:
        claim = copy.deepcopy(base_claims[k])
        if data.draw(st.integers(0, 2)) > 0:
            claim = mutate(claim, data)
        lines.append(text_of(claim, data))
    columnar, per_line, pydantic_only = settle_three_ways(tables, lines, monkeypatch)
    assert columnar == per_line == pydantic_only


def _ok(tables: Tables, lines: list[bytes]) -> list[bool]:
    buf = b"".join(lines)
    ends = np.cumsum([len(line) for line in lines]).astype(np.int64)
    starts = ends - np.array([len(line) for line in lines], dtype=np.int64)
    return scan_lines(np.frombuffer(buf, np.uint8), starts, ends, tables).ok.tolist()


def test_the_scanner_takes_the_common_shapes(tables: Tables, base_claims: list[dict[str, Any]]) -> None:
    """So the differential test above compares the scanner itself, not only its fallback."""
    compact = [orjson.dumps(c) for c in base_claims]
    spaced = [json.dumps(c).encode() + b"\n" for c in base_claims]
    rng = random.Random(3)
    shuffled = [dump(c, rng).encode() for c in base_claims]
    assert all(_ok(tables, compact)) and all(_ok(tables, spaced)) and all(_ok(tables, shuffled))
    nulls = copy.deepcopy(base_claims[0])
    nulls["patient"]["category"] = None
    nulls["treatment"] = None
    nulls["items"][0]["quantity"] = "1.50000"
    nulls["items"][1]["unit_price"] = Raw("12.5000000")
    nulls["patient"]["person_id"] = nulls["patient"]["person_id"].lower()
    assert _ok(tables, [dump(nulls, rng).encode()]) == [True]
    names = copy.deepcopy(base_claims[1])
    names["claim_id"] = "住院-" + "\U0001f600" * 100  # 103 characters, 408 bytes
    names["hospital"]["id"] = "哈尔滨医科大学附属第一医院"
    names["treatment"] = "手术"
    assert _ok(tables, [orjson.dumps(names)]) == [True]


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace(b'"claim_id":"', b'"claim_id":"\\u00e9', 1),  # an escape
        lambda t: t.replace(b'"diagnosis":{"primary":"', "\"diagnosis\":{\"primary\":\"é".encode(), 1),
        lambda t: t.replace(b'"claim_id":"', b'"claim_id":"\xed\xa0\x80', 1),  # a surrogate: not UTF-8
        lambda t: t.replace(b'"claim_id":"', b'"claim_id":"\xc3', 1),  # a cut character
        lambda t: b"\xef\xbb\xbf" + t,  # a byte-order mark
        lambda t: t.replace(b'{"claim_id":"', b'{"claim_id":"a","claim_id":"', 1),  # a duplicate key
        lambda t: t.replace(b'"claim_id":"', '"claim_id":"\u3000'.encode(), 1),  # padded: an ideographic space
        lambda t: t.replace(b'"hospital":{"id":"', '"hospital":{"id":"\u00a0'.encode(), 1),  # a no-break space
        lambda t: t.replace(b'"quantity":1,', b'"quantity":1e0,', 1),  # an exponent
        lambda t: t.replace(b'"quantity":1,', b'"quantity":1.00001,', 1),  # five decimals
        lambda t: t.replace(b'"level":', b'"level":true,"x":', 1),  # unknown key
        lambda t: t.replace(b'"scheme":"resident",', b"", 1).replace(b'"scheme":"employee",', b"", 1),
        lambda t: t + b"x",  # trailing text
    ],
)
def test_the_scanner_leaves_the_unusual_to_the_contract(
    tables: Tables, base_claims: list[dict[str, Any]], change: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    claim = copy.deepcopy(base_claims[0])
    claim["items"][0]["quantity"] = 1
    text = change(orjson.dumps(claim))
    assert _ok(tables, [text]) == [False]
    columnar, per_line, pydantic_only = settle_three_ways(tables, [text], monkeypatch)
    assert columnar == per_line == pydantic_only


def test_split_lines_as_a_file_is_read() -> None:
    data = b'a\n\n  \t\r\n{"x"}\r\nb\x0b\n\x0c\nlast'
    starts, ends = split_lines(np.frombuffer(data, np.uint8))
    got = [data[s:e] for s, e in zip(starts.tolist(), ends.tolist(), strict=True)]
    assert got == [line for line in io.BytesIO(data) if line.strip()]


@pytest.mark.parametrize("block", [1, 7, 300, 1 << 20])
def test_settle_file_in_blocks_equals_the_line_stream(tables: Tables, base_claims: list[dict[str, Any]],
                                                      block: int) -> None:
    lines = [orjson.dumps(c) for c in base_claims[:20]]
    data = b"\n".join([lines[0], b"", b"not json", *lines[1:10], b"  ", b"[]", *lines[10:]]) + b"\r\n\n" + lines[0]
    expected = io.BytesIO()
    settle_stream(io.BytesIO(data), tables, expected.write, workers=1)
    got = io.BytesIO()
    count = settle_file(io.BytesIO(data), tables, got.write, block=block, workers=1)
    assert got.getvalue() == expected.getvalue()
    assert count == len(got.getvalue().splitlines()) == len([line for line in io.BytesIO(data) if line.strip()])


@pytest.mark.parametrize("surrogate", [b"\\ud800", b"\\udfff", b"\xed\xa0\x80", b"\xed\xbf\xbf"])
def test_a_lone_surrogate_is_an_error_line_and_the_run_goes_on(
    tables: Tables, base_claims: list[dict[str, Any]], surrogate: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Escaped or encoded, no UTF-8 JSON can carry it back out: the line is not valid JSON (it ended the run)."""
    good = orjson.dumps(base_claims[0])
    bad = good.replace(b'"claim_id":"', b'"claim_id":"' + surrogate, 1)
    for lines in ([bad, good], [good.replace(b'"H', b'"' + surrogate + b"H", 1), good]):
        columnar, per_line, pydantic_only = settle_three_ways(tables, lines, monkeypatch)
        assert columnar == per_line == pydantic_only
        assert orjson.loads(columnar[0]) == {
            "claim_id": None, "error": {"code": "invalid_claim", "message": "the line is not valid JSON"}
        }
        assert "error" not in orjson.loads(columnar[1])
    paired = good.replace(b'"claim_id":"', b'"claim_id":"\\ud83d\\ude00', 1)  # a pair is a character
    assert orjson.loads(StreamSettler(tables).settle_lines_json([paired])[0])["claim_id"].startswith("\U0001f600")


def test_the_catalog_index_gives_one_answer_both_ways(tables: Tables) -> None:
    """The per-claim reader's look-up (rows_of) and the scanner's (catalog_row over the UTF-8 bytes; its
    compiled form is held to the per-line readers by the tests above) agree on every code of every
    version, on codes of another version only, and on codes of no version."""
    from settlement.claims.checks import catalog_index, catalog_row

    index = catalog_index(tables)
    assert catalog_index(tables) is index
    table = index.table
    every = sorted({code for rows in tables.catalog_rows for code in rows})
    assert any(code not in rows for rows in tables.catalog_rows for code in every)  # a code of one version only
    codes = [*every, "NOT-A-CODE", "", every[0] + " ", "项目"]
    data = np.frombuffer(b"".join(c.encode() for c in codes), dtype=np.uint8)
    off = np.cumsum([0, *(len(c.encode()) for c in codes)])
    for version, rows in enumerate(tables.catalog_rows):
        expected = [rows.get(code, -1) for code in codes]
        assert index.rows_of(codes, version) == expected
        scanned = [catalog_row(data, int(off[i]), int(off[i + 1]), version, table) for i in range(len(codes))]
        assert scanned == expected


def test_a_block_and_the_counters_builder_make_the_same_batch(tables: Tables) -> None:
    """prepare_chunk (the scanner's columns, rows numbered by number_rows) and BatchBuilder (prepared
    claims one by one, as the counter's) build one batch: the same columns and rows on first sight."""
    from dataclasses import fields

    from settlement.claims import BatchBuilder, prepare_claim, validate_claim

    claims = list(claim_dicts(60, population(7, seed=3), tables, seed=5))
    claims[3]["visit"]["emergency"] = True  # a claim with a flag: the per-line path
    lines = [orjson.dumps(c) for c in claims]
    chunk = batchrun.prepare_chunk(lines, tables)
    assert chunk.batch is not None and len(chunk.batch) == 60
    builder = BatchBuilder()
    built = builder.build([prepare_claim(validate_claim(c), tables) for c in claims])
    for f in fields(built):
        if f.name != "flags":
            a, b = getattr(chunk.batch, f.name), getattr(built, f.name)
            assert (np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b), f.name
    assert np.array_equal(chunk.batch.claim_flags(), built.claim_flags())
    assert chunk.person_keys == list(builder.person_rows) and chunk.years == list(builder.year_rows)
    assert len(chunk.person_keys) < 60  # people with several claims a year: rows shared
