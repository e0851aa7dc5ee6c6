"""The chunked, multi-process batch run gives exactly the one-process, one-batch answer."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from settlement.batchrun import StreamSettler, settle_stream
from settlement.engine import Tables
from settlement.synth import claim_dicts, population


def _lines(tables: Tables, examples_dir: Path) -> list[bytes]:
    people = population(40, seed=5)
    synthetic = [orjson.dumps(c) for c in claim_dicts(150, people, tables, seed=9, year=2018)]
    examples = (examples_dir / "claims.jsonl").read_bytes().splitlines()
    # errors and blank lines mixed in, persons recurring across chunks
    return examples[:7] + synthetic[:80] + [b"", b"not json", b"[]"] + examples[7:] + synthetic[80:]


def _run(lines: list[bytes], tables: Tables, chunk: int, workers: int) -> list[bytes]:
    out = io.BytesIO()
    settle_stream(iter(lines), tables, out.write, chunk=chunk, workers=workers)
    return out.getvalue().splitlines()


def test_workers_and_chunks_do_not_change_a_fen(tables: Tables, examples_dir: Path) -> None:
    lines = _lines(tables, examples_dir)
    one_batch = StreamSettler(tables).settle_lines_json([line for line in lines if line.strip()])
    assert len(one_batch) == len([line for line in lines if line.strip()])
    assert _run(lines, tables, chunk=10_000, workers=1) == one_batch
    assert _run(lines, tables, chunk=7, workers=1) == one_batch
    assert _run(lines, tables, chunk=13, workers=2) == one_batch


def test_later_chunks_see_earlier_accumulators(tables: Tables, examples_dir: Path) -> None:
    """EX-13 (second gastric claim of one person) depends on EX-02 two chunks earlier."""
    lines = (examples_dir / "claims.jsonl").read_bytes().splitlines()
    expected = (examples_dir / "expected.jsonl").read_bytes().splitlines()
    got = _run(lines, tables, chunk=2, workers=2)
    assert [orjson.loads(g) for g in got] == [orjson.loads(e) for e in expected]
