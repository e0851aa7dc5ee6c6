"""The kernels' two forms (settlement.jit): the source for a few claims, compiled for many.

A fresh process settling the worked examples must not import numba and must
give the expected results; one that settles jit.SMALL claims runs compiled;
the result writer's source writes the very bytes its compiled form writes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import orjson

from settlement import jit, jsonout
from settlement.batchrun import StreamSettler, prepare_chunk
from settlement.engine import Tables

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_few_claims_run_the_source_without_numba(examples_dir: Path) -> None:
    out = _run(
        "import io, sys\n"
        "from settlement.batchrun import settle_file\n"
        "from settlement.engine import compile_tables\n"
        "from settlement.schedules import load_region\n"
        "from settlement import jit\n"
        "buf = io.BytesIO()\n"
        "settle_file(open('examples/claims.jsonl', 'rb'), compile_tables(load_region('fee_schedules/heilongjiang')),"
        " buf.write)\n"
        "print('numba' in sys.modules, jit.ready())\n"
        "sys.stdout.write(buf.getvalue().decode())\n"
    )
    flags, *lines = out.splitlines()
    assert flags == "False False"
    expected = (examples_dir / "expected.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [orjson.loads(line) for line in expected if line]


def test_a_large_batch_loads_the_compiled_forms() -> None:
    out = _run(
        "import sys\n"
        "from settlement import jit\n"
        "from settlement.engine import kernel\n"
        "print(jit.want(jit.SMALL - 1), 'numba' in sys.modules)\n"
        "print(jit.want(jit.SMALL), 'numba' in sys.modules)\n"
        "print(kernel.settle_kernel.compiled is not None)\n"
    )
    assert out.split() == ["False", "False", "True", "True", "True"]


def test_serve_compiles_in_the_background() -> None:
    out = _run(
        "from settlement import jit\n"
        "from settlement.engine import compile_tables\n"
        "from settlement.schedules import load_region\n"
        "from settlement.service.settlements.counter import warm_up\n"
        "tables = compile_tables(load_region('fee_schedules/heilongjiang'))\n"
        "warm_up(tables)\n"
        "print(jit.ready())\n"
        "jit.compile_in_background(lambda: warm_up(tables))\n"
        "print(jit.wait_background(600))\n"
        "from settlement.engine import kernel\n"
        "print(len(kernel.settle_kernel.compiled.signatures))\n"
    )
    assert out.split() == ["False", "True", "1"]


def test_the_writers_source_writes_what_it_compiles_to(tables: Tables, examples_dir: Path) -> None:
    assert jit.ready()  # tests/conftest.py
    lines = (examples_dir / "claims.jsonl").read_bytes().splitlines()
    chunk = prepare_chunk(lines, tables)
    assert chunk.batch is not None
    settler = StreamSettler(tables)
    result = settler.settle_chunk(chunk)
    assert result is not None
    ok = np.flatnonzero(result.error == 0)
    plan = ok.astype(np.int64)
    compiled = jsonout.write_results(result, chunk.batch, tables, chunk.ids, chunk.id_off, plan)
    write = jsonout._write_kernel
    try:
        write.compiled = None  # type: ignore[attr-defined]
        interpreted = jsonout.write_results(result, chunk.batch, tables, chunk.ids, chunk.id_off, plan)
    finally:
        write.compiled = write.dispatcher  # type: ignore[attr-defined]
    assert interpreted == compiled
    assert len(compiled.splitlines()) == ok.shape[0] > 10
