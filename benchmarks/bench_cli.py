"""`settlement settle` end to end: JSON lines in, JSON lines out.

    .venv/bin/python benchmarks/bench_cli.py --claims 200000

Generates realistic claims (synth.claim_dicts: ~25 lines inpatient, a few
outpatient) into a file once, then times the CLI as a subprocess reading the
file and writing to /dev/null, and reports claims/s and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import orjson

from settlement.engine import compile_tables
from settlement.jsonout import write_results
from settlement.schedules import load_region
from settlement.synth import claim_dicts, population


def generate(path: Path, n: int, schedules: str) -> None:
    tables = compile_tables(load_region(schedules))
    people = population(max(1000, n // 10))
    with path.open("wb") as out:
        half = n // 2
        for year, count, seed in ((2018, half, 2), (2019, n - half, 3)):
            for claim in claim_dicts(count, people, tables, seed=seed, year=year):
                out.write(orjson.dumps(claim) + b"\n")


def stages(path: Path, schedules: str, repeat: int) -> None:
    """Each stage of one block (batchrun.BLOCK_BYTES of the file) in this process, per claim, best of `repeat`."""
    import numpy as np

    from settlement import batchrun
    from settlement.claims.columnar import scan_lines, split_lines
    from settlement.engine import settle

    tables = compile_tables(load_region(schedules))
    with path.open("rb") as handle:
        block = handle.read(batchrun.BLOCK_BYTES)
    block = block[: block.rfind(b"\n") + 1]
    data = np.frombuffer(block, dtype=np.uint8)
    starts, ends = split_lines(data)
    chunk = batchrun.prepare_block(block, tables)  # and the compiled code loaded
    batch = chunk.batch
    assert batch is not None
    n = chunk.size
    result = settle(batch, tables)
    plan = np.arange(n, dtype=np.int64)
    timed = {
        "split into lines": lambda: split_lines(data),
        "scan + person id, schedule, catalog checks": lambda: scan_lines(data, starts, ends, tables),
        "whole block prepared (the two above + the batch)": lambda: batchrun.prepare_block(block, tables),
        "engine (settle)": lambda: settle(batch, tables),
        "results written (jsonout)": lambda: write_results(result, batch, tables, chunk.ids, chunk.id_off, plan),
    }
    print(f"one block: {n:,} claims, {len(block) / n:,.0f} bytes a claim")
    for label, run in timed.items():
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - start)
        print(f"  {label}: {best * 1e6 / n:.2f} µs a claim")
    exe = Path(sys.executable).with_name("settlement")
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([str(exe), "settle", "--schedules", schedules], input=b"", check=True)
        best = min(best, time.perf_counter() - start)
    print(f"  process start and end, empty input: {best:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=200_000)
    parser.add_argument("--schedules", default="fee_schedules/heilongjiang")
    parser.add_argument("--file", default=None, help="claims file (generated if missing)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, default=None, help="passed to settle (default: one per core)")
    parser.add_argument("--stdin", action="store_true", help="feed the file on stdin instead of naming it")
    parser.add_argument("--stages", action="store_true", help="also time each stage in this process, one block")
    args = parser.parse_args()
    path = Path(args.file or f"/tmp/settlement-bench-{args.claims}.jsonl")
    if not path.exists():
        start = time.perf_counter()
        generate(path, args.claims, args.schedules)
        print(f"generated {path} ({path.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - start:.0f} s")
    exe = Path(sys.executable).with_name("settlement")
    best = float("inf")
    command = [str(exe), "settle", "--schedules", args.schedules]
    if args.workers is not None:
        command += ["--workers", str(args.workers)]
    if not args.stdin:
        command.append(str(path))
    for _ in range(args.repeat):
        start = time.perf_counter()
        with open(os.devnull, "wb") as sink, open(path if args.stdin else os.devnull, "rb") as source:
            subprocess.run(command, stdin=source, stdout=sink, check=True)
        best = min(best, time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    if args.stages:
        stages(path, args.schedules, max(args.repeat, 3))
    how = (" on stdin" if args.stdin else "") + (f", --workers {args.workers}" if args.workers is not None else "")
    print(f"settlement settle{how}: {args.claims:,} claims in {best:.2f} s → {args.claims / best:,.0f} claims/s"
          f" (best of {args.repeat}); peak RSS of the CLI {peak:,.0f} MB (largest process)")


if __name__ == "__main__":
    main()
