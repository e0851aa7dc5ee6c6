"""The 20 worked examples of shared/examples, settled every way the product can settle them.

Each result line is compared field by field (money strings, so to the fen)
with expected.jsonl; nothing here is computed by the engine and then trusted.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from settlement import cli
from settlement.batchrun import StreamSettler, settle_stream
from settlement.engine import Tables

MONEY = re.compile(r"^[0-9]+\.[0-9]{2}$")


def _expected(examples_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (examples_dir / "expected.jsonl").read_text().splitlines() if line]


def _claim_lines(examples_dir: Path) -> list[bytes]:
    return [line for line in (examples_dir / "claims.jsonl").read_bytes().splitlines() if line.strip()]


def _assert_same(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(got) == len(expected) == 20
    for g, e in zip(got, expected, strict=True):
        assert g == e, f"claim {e['claim_id']}: got {g}, expected {e}"


def _parse_stdout(data: bytes) -> list[dict[str, Any]]:
    lines = data.decode("utf-8").splitlines()
    assert all(line.strip() for line in lines), "no blank output lines"
    return [json.loads(line) for line in lines]


def test_expected_file_is_well_formed(examples_dir: Path) -> None:
    """Guards the reference data itself: the §5.5 identity holds in every expected line."""
    for e in _expected(examples_dir):
        if "error" in e:
            assert set(e) == {"claim_id", "error"}
            continue
        money = [*e["amounts"].values(), *e["payments"].values(), *e["charity_by_fund"].values()]
        money += [e["patient_pays"], e["hospital_bears"]]
        assert all(MONEY.match(m) for m in money)

        def fen(s: str) -> int:
            return int(s.replace(".", ""))

        paid = sum(fen(v) for v in e["payments"].values())
        assert fen(e["amounts"]["total"]) == paid + fen(e["patient_pays"]) + fen(e["hospital_bears"])
        assert fen(e["payments"]["charity"]) == sum(fen(v) for v in e["charity_by_fund"].values())


def test_cli_subprocess_file(region_dir: Path, examples_dir: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "settlement.cli",
            "settle",
            "--schedules",
            str(region_dir),
            str(examples_dir / "claims.jsonl"),
        ],
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    _assert_same(_parse_stdout(proc.stdout), _expected(examples_dir))


def test_cli_subprocess_stdin(region_dir: Path, examples_dir: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "settlement.cli", "settle", "--schedules", str(region_dir)],
        input=(examples_dir / "claims.jsonl").read_bytes(),
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    _assert_same(_parse_stdout(proc.stdout), _expected(examples_dir))


def test_cli_main_in_process(region_dir: Path, examples_dir: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    code = cli.main(["settle", "--schedules", str(region_dir), str(examples_dir / "claims.jsonl")])
    out, err = capsysbinary.readouterr()
    assert code == 0
    assert err == b""
    _assert_same(_parse_stdout(out), _expected(examples_dir))


def test_stream_settler_one_batch(tables: Tables, examples_dir: Path) -> None:
    results = StreamSettler(tables).settle_lines(_claim_lines(examples_dir))
    _assert_same(results, _expected(examples_dir))


def test_stream_settler_accepts_text_lines(tables: Tables, examples_dir: Path) -> None:
    lines = [line.decode("utf-8") for line in _claim_lines(examples_dir)]
    _assert_same(StreamSettler(tables).settle_lines(lines), _expected(examples_dir))


@pytest.mark.parametrize("size", [1, 2, 5, 13])
def test_stream_settler_in_chunks(tables: Tables, examples_dir: Path, size: int) -> None:
    """The accumulators carry across chunks: EX-13 depends on EX-02 of the same person."""
    settler = StreamSettler(tables)
    lines = _claim_lines(examples_dir)
    results: list[dict[str, Any]] = []
    for start in range(0, len(lines), size):
        results.extend(settler.settle_lines(lines[start : start + size]))
    _assert_same(results, _expected(examples_dir))


@pytest.mark.parametrize("chunk", [1, 4, 20_000])
def test_settle_stream_writes_one_line_each(tables: Tables, examples_dir: Path, chunk: int) -> None:
    raw = (examples_dir / "claims.jsonl").read_bytes()
    # blank and whitespace-only lines are skipped, not answered
    padded = b"\n   \n" + raw.replace(b"\n", b"\n\n \t\n") + b"\n\n"
    out = io.BytesIO()
    count = settle_stream(io.BytesIO(padded), tables, out.write, chunk=chunk)
    assert count == 20
    _assert_same(_parse_stdout(out.getvalue()), _expected(examples_dir))


def test_order_matters_for_accumulators(tables: Tables, examples_dir: Path) -> None:
    """Settling EX-13 without EX-02 before it (same person, same year) must differ:
    the examples really exercise the accumulators, so the tests above can fail."""
    lines = _claim_lines(examples_dir)
    expected = {e["claim_id"]: e for e in _expected(examples_dir)}
    alone = StreamSettler(tables).settle_lines([lines[12]])[0]
    assert alone["claim_id"] == "EX-13"
    assert alone["amounts"] == expected["EX-13"]["amounts"]
    assert alone["payments"] != expected["EX-13"]["payments"]
