"""Reconciliation: every kind of difference, their file in UTF-8, GBK and .xlsx, and `settlement reconcile`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openpyxl
import pytest

from settlement.cli import main
from settlement.reconcile import InputDefects, Ours, Theirs, match, ours_from_results, parse_amount, read_theirs

ROOT = Path(__file__).resolve().parents[1]


def test_every_kind_and_the_totals() -> None:
    ours = [
        Ours("H1", "A", 10_000),  # matched
        Ours("H1", "B", 20_000),  # amount mismatch
        Ours("H1", "C", 30_000),  # only ours
        Ours("H1", "D", 0, reversed=True),  # settled and reversed in the period: owed by nobody
        Ours("H1", "E", -500, reversed=True),  # a reversal of an earlier settlement
        Ours("H2", "A", 7),  # another hospital's claim A
    ]
    theirs = [
        Theirs(2, "H1", "A", 10_000),
        Theirs(3, "H1", "B", 20_001),
        Theirs(4, "H1", "A", 10_000),  # duplicate: the first A is matched normally
        Theirs(5, "H9", "Z", 1),  # only theirs
        Theirs(6, "H1", "E", -500),
        Theirs(7, "H2", "A", 7),
    ]
    report = match(ours, theirs, by_hospital=True)
    assert report.summary() == {
        "matched": 3,
        "amount_mismatch": 1,
        "only_ours": 1,
        "only_theirs": 1,
        "duplicate_theirs": 1,
        "reversed_ours": 2,
        "ours_total": "595.07",
        "theirs_total": "395.09",  # duplicates included
        "difference": "-199.98",
    }
    kinds = [(i.kind, i.claim_id, i.line) for i in report.items]
    assert kinds[:6] == [
        ("matched", "A", 2),
        ("amount_mismatch", "B", 3),
        ("duplicate_theirs", "A", 4),
        ("only_theirs", "Z", 5),
        ("matched", "E", 6),
        ("matched", "A", 7),
    ]
    assert ("only_ours", "C", None) in kinds and not report.clean
    # keyed on the claim alone (offline): H1's and H2's claim A are one key
    offline = match([Ours(None, "A", 5), Ours(None, "B", 1)], [Theirs(2, None, "A", 5)], by_hospital=False)
    assert offline.counts["matched"] == 1 and offline.counts["only_ours"] == 1


def test_a_reversed_claim_they_still_claim_is_a_mismatch() -> None:
    report = match([Ours("H1", "D", 0, reversed=True)], [Theirs(2, "H1", "D", 4_800)], by_hospital=True)
    assert report.counts["amount_mismatch"] == 1 and report.counts["reversed_ours"] == 1


def test_totals_are_exact_to_the_fen() -> None:
    # 0.10 + 0.20 is 0.30 in fen, not 0.30000000000000004
    ours = [Ours(None, str(i), 10 if i % 2 else 20) for i in range(1000)]
    theirs_text = "claim_id,amount\n" + "".join(f"{i},{'0.10' if i % 2 else '0.20'}\n" for i in range(1000))
    report = match(ours, read_theirs(theirs_text.encode(), "t.csv", need_hospital=False), by_hospital=False)
    assert report.clean and report.summary()["theirs_total"] == "150.00"
    assert parse_amount("-12.3") == -1230 and parse_amount(" 7 ") == 700


def test_gbk_utf8_bom_and_xlsx_files_read_alike() -> None:
    text = "hospital_id,claim_id,amount,settlement_id\nH1,住院-001,966.48,\nH1,B2,1.5,s-2\n"
    expected = [Theirs(2, "H1", "住院-001", 96648, None), Theirs(3, "H1", "B2", 150, "s-2")]
    assert read_theirs(text.encode("gbk"), "t.csv", need_hospital=True) == expected
    assert read_theirs(text.encode("gb18030"), "t.csv", need_hospital=True) == expected
    assert read_theirs(b"\xef\xbb\xbf" + text.encode(), "t.csv", need_hospital=True) == expected
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["hospital_id", "claim_id", "amount", "settlement_id"])
    sheet.append(["H1", "住院-001", 966.48, None])
    sheet.append(["H1", "B2", 1.5, "s-2"])
    data = io.BytesIO()
    book.save(data)
    assert read_theirs(data.getvalue(), "t.xlsx", need_hospital=True) == expected


def test_the_encoding_guess_when_both_readings_decode() -> None:
    # GBK 住院 is valid UTF-8 ('סԺ'); UTF-8 住院 is valid GB18030 ('浣忛櫌'): each is read as what it is
    text = "hospital_id,claim_id,amount\nH1,住院,1.00\n"
    for data in (text.encode("gbk"), text.encode("utf-8")):
        data.decode("utf-8"), data.decode("gb18030")  # both decode
        assert read_theirs(data, "t.csv", need_hospital=True) == [Theirs(2, "H1", "住院", 100)]


def test_a_bad_file_gets_every_defect_with_its_line() -> None:
    text = "hospital_id,claim_id,amount\nH1,A,1.234\nH1,,5\nH1,C\nH1,D,abc\nH1,E,2.00\n"
    with pytest.raises(InputDefects) as caught:
        read_theirs(text.encode(), "their.csv", need_hospital=True)
    assert caught.value.defects == [
        "their.csv:2: amount: not an amount in yuan with at most two decimals: '1.234'",
        "their.csv:3: claim_id: empty",
        "their.csv:4: 2 fields, the header has 3",
        "their.csv:5: amount: not an amount in yuan with at most two decimals: 'abc'",
    ]
    with pytest.raises(InputDefects) as header:
        read_theirs(b"claim,amount,extra\n", "their.csv", need_hospital=True)
    assert "unknown column 'claim'" in header.value.defects[0]
    assert any("missing column 'hospital_id'" in d for d in header.value.defects)
    with pytest.raises(InputDefects):
        read_theirs(b"\xff\xfe\x00\x81\x30", "their.csv", need_hospital=True)


def _results() -> list[bytes]:
    """`settlement settle`'s output on the worked examples (the tests hold the engine to it)."""
    return (ROOT / "examples" / "expected.jsonl").read_bytes().splitlines()


def test_ours_from_results_skips_errors_and_zero_amounts() -> None:
    lines = [json.loads(x) for x in _results()]
    ours = ours_from_results([json.dumps(x).encode() for x in lines], "critical_illness", "r.jsonl")
    paying = [x["claim_id"] for x in lines if "error" not in x and x["payments"]["critical_illness"] != "0.00"]
    assert [o.claim_id for o in ours] == paying and paying
    charity = ours_from_results([json.dumps(x).encode() for x in lines], "poverty_relief", "r.jsonl")
    assert all(o.amount > 0 for o in charity)
    with pytest.raises(InputDefects) as unknown:
        ours_from_results([json.dumps(x).encode() for x in lines], "nope", "r.jsonl")
    assert "no result pays fund 'nope'" in unknown.value.defects[0]
    with pytest.raises(InputDefects) as number:  # a defect with its line, not a crash
        ours_from_results([b'{"claim_id": "A", "payments": {"basic": 1}}'], "basic", "r.jsonl")
    assert number.value.defects == ["r.jsonl:1: not a settle result line (the amount of basic is not a string of yuan)"]


def test_cli_exit_codes_json_and_report(tmp_path, capsys) -> None:
    results = tmp_path / "results.jsonl"
    results.write_bytes(b"\n".join(_results()) + b"\n")
    rows = [json.loads(x) for x in results.read_bytes().splitlines()]
    # an unidentified patient's claim (EX-15, EX-16) has no basic payment: not the fund's claim
    basic = [
        (r["claim_id"], r["payments"]["basic"]) for r in rows if "error" not in r and r["payments"]["basic"] != "0.00"
    ]
    theirs = tmp_path / "theirs.csv"
    theirs.write_text("claim_id,amount\n" + "".join(f"{c},{a}\n" for c, a in basic), encoding="gbk")
    assert main(["reconcile", "--fund", "basic", "--ours", str(results), "--theirs", str(theirs), "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert clean["matched"] == len(basic) and clean["difference"] == "0.00"
    # one line changed by a fen, one duplicated, one missing
    changed = [(c, a) for c, a in basic]
    changed[0] = (changed[0][0], f"{float(changed[0][1]) + 0.01:.2f}")
    changed.append(changed[1])
    del changed[2]
    theirs.write_text("claim_id,amount\n" + "".join(f"{c},{a}\n" for c, a in changed))
    out = tmp_path / "report.xlsx"
    code = main(
        ["reconcile", "--fund", "basic", "--ours", str(results), "--theirs", str(theirs), "--json", "--out", str(out)]
    )
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (summary["amount_mismatch"], summary["duplicate_theirs"], summary["only_ours"]) == (1, 1, 1)
    sheet = openpyxl.load_workbook(out).active
    assert next(sheet.iter_rows(values_only=True))[0] == "对账结果"
    theirs.write_text("claim_id,amount\nA,x\nB,1.001\n")
    assert main(["reconcile", "--fund", "basic", "--ours", str(results), "--theirs", str(theirs)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].endswith("theirs.csv:2: amount: not an amount in yuan with at most two decimals: 'x'")
    assert len(err) == 2
