"""The chunked, multi-process batch run gives exactly the one-process, one-batch answer."""

from __future__ import annotations

import gc
import io
import os
import weakref
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from settlement import jsonout
from settlement.batchrun import StreamSettler, read_range, settle_file, settle_stream
from settlement.engine import Tables
from settlement.money import format_fen
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


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    last_newline=st.booleans(),
    block=st.integers(1, 40),
)
def test_byte_ranges_give_every_line_once_in_order(
    lines: list[bytes], last_newline: bool, block: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = b"\n".join(lines) + (b"\n" if last_newline and lines else b"")
    path = tmp_path_factory.mktemp("ranges") / "claims.jsonl"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        pieces = [read_range(fd, start, min(start + block, len(data))) for start in range(0, len(data), block)]
    finally:
        os.close(fd)
    assert b"".join(pieces) == data
    filled = [piece for piece in pieces if piece]
    assert all(piece.endswith(b"\n") for piece in filled[:-1])  # whole lines only
    assert [line for piece in pieces for line in io.BytesIO(piece)] == list(io.BytesIO(data))


@pytest.mark.parametrize(("block", "workers"), [(1 << 20, 1), (97, 1), (997, 1), (8192, 2)])
def test_a_file_read_in_byte_ranges_by_the_workers(
    tables: Tables, examples_dir: Path, tmp_path: Path, block: int, workers: int
) -> None:
    lines = _lines(tables, examples_dir)
    path = tmp_path / "claims.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\r\n\n" + lines[0])  # blank lines, CRLF, no final newline
    expected = StreamSettler(tables).settle_lines_json([line for line in io.BytesIO(path.read_bytes()) if line.strip()])
    out = io.BytesIO()
    with path.open("rb") as handle:
        count = settle_file(handle, tables, out.write, block=block, workers=workers)
    assert out.getvalue().splitlines() == expected
    assert count == len(expected)
    piped = io.BytesIO()  # not a regular file: read here, in blocks
    settle_file(io.BytesIO(path.read_bytes()), tables, piped.write, block=block, workers=workers)
    assert piped.getvalue() == out.getvalue()


def test_the_compiled_readers_caches_keep_no_schedule_set_alive(region_dir: Path) -> None:
    from settlement.claims import checks
    from settlement.engine import compile_tables
    from settlement.schedules import load_region

    tables = compile_tables(load_region(region_dir))
    lines = [orjson.dumps(c) for c in claim_dicts(3, population(3, seed=1), tables, seed=1)]
    assert len(StreamSettler(tables).settle_lines(lines)) == 3
    key = id(tables)
    assert key in checks._indexes and key in jsonout._names
    ref = weakref.ref(tables)
    del tables
    gc.collect()
    assert ref() is None
    assert key not in checks._indexes and key not in jsonout._names


MONEY = ("total", "fully_self_paid", "over_limit", "pre_self_paid", "in_scope", "deductible", "basic",
         "critical_illness", "medical_assistance", "charity", "emergency_relief", "backstop", "patient_pays",
         "hospital_bears")


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_the_compiled_writer_is_orjson_of_the_section_6_object(tables: Tables, data: st.DataObject) -> None:
    """jsonout against an independent writer: the §6 object built key by key, money by money.format_fen."""
    n = data.draw(st.integers(1, 6))
    versions = tables.schedules.versions
    n_funds = max(tables.n_funds, 1)
    fen = st.one_of(st.integers(0, 10**6), st.integers(0, 2**62), st.sampled_from([0, 1, 9, 10, 99, 100, 101]))
    version = np.array(data.draw(st.lists(st.integers(0, len(versions) - 1), min_size=n, max_size=n)), np.int64)
    groups = []
    for v in version.tolist():
        sd = versions[v].single_disease
        groups.append(data.draw(st.integers(-1, len(sd.groups) - 1)) if sd else -1)
    result = SimpleNamespace(
        group=np.array(groups, np.int64),
        pathway_fixed=np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_),
        charity_by_fund=np.array(data.draw(st.lists(st.lists(fen, min_size=n_funds, max_size=n_funds), min_size=n,
                                                    max_size=n)), np.int64),
        charity_eligible=np.array(data.draw(st.lists(st.lists(st.booleans(), min_size=n_funds, max_size=n_funds),
                                                     min_size=n, max_size=n)), np.bool_),
        **{name: np.array(data.draw(st.lists(fen, min_size=n, max_size=n)), np.int64) for name in MONEY},
    )
    batch = SimpleNamespace(version=version,
                            policy_year=np.array(data.draw(st.lists(st.integers(1, 9999), min_size=n, max_size=n))))
    claim_ids = data.draw(st.lists(st.text(min_size=1, max_size=8), min_size=n, max_size=n))
    ids, id_off = jsonout.encoded_ids(claim_ids)
    got = jsonout.write_results(result, batch, tables, ids, id_off, np.arange(n, dtype=np.int64))
    expected = []
    for i in range(n):
        v = versions[int(version[i])]
        g = int(result.group[i])
        funds = {f.id: format_fen(int(result.charity_by_fund[i, tables.schedules.fund_ids.index(f.id)]))
                 for f in v.charity_funds if result.charity_eligible[i, tables.schedules.fund_ids.index(f.id)]}
        amount = {name: format_fen(int(getattr(result, name)[i])) for name in MONEY}
        expected.append(orjson.dumps({
            "claim_id": claim_ids[i], "schedule": v.id, "policy_year": int(batch.policy_year[i]),
            "pathway": "single_disease" if result.pathway_fixed[i] else "standard",
            "disease_group": v.single_disease.groups[g].id if g >= 0 and v.single_disease else None,
            "amounts": {k: amount[k] for k in MONEY[:6]},
            "payments": {k: amount[k] for k in MONEY[6:12]},
            "charity_by_fund": funds,
            "patient_pays": amount["patient_pays"],
            "hospital_bears": amount["hospital_bears"],
        }) + b"\n")
    assert got == b"".join(expected)
