"""`settlement simulate` on one core: N claims settled under the baseline and a draft schedule set.

    .venv/bin/python benchmarks/bench_simulate.py --claims 1000000

Claims: synth.claim_dicts generates --distinct realistic claims (~25 lines an
inpatient stay) once into a JSON-lines file, repeated to --claims lines (a
repeat is the same people coming back, so their yearly totals grow). The draft
is the bundled schedules with the 2018 level-2 resident inpatient deductible
raised. Times Simulation over the file's blocks in this process (one core: the
reading, the checks and both engines, no worker processes), grouped by
category and month, and reports claims/s and the peak RSS, and where the wall
time went that was not this process's CPU: the file read alone first, then the
run's context switches (voluntary: waiting on I/O; involuntary: the core given
to other processes) and major page faults.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from settlement.engine import compile_tables
from settlement.schedules import load_region
from settlement.simulate import Simulation, blocks
from settlement.synth import claim_dicts, population


def generate(path: Path, n: int, distinct: int, schedules: str) -> None:
    tables = compile_tables(load_region(schedules))
    people = population(max(1000, distinct // 5))
    text = b"".join(orjson.dumps(c) + b"\n" for c in claim_dicts(distinct, people, tables, year=2018))
    with path.open("wb") as out:
        for _ in range(n // distinct):
            out.write(text)
        rest = n % distinct
        if rest:
            out.write(b"".join(text.splitlines(keepends=True)[:rest]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--distinct", type=int, default=50_000)
    parser.add_argument("--schedules", default="fee_schedules/heilongjiang")
    parser.add_argument("--file", help="claims file to reuse (generated when missing)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_simulate_"))
    path = Path(args.file) if args.file else work / "claims.jsonl"
    if not path.exists():
        t = time.perf_counter()
        generate(path, args.claims, args.distinct, args.schedules)
        print(f"generated {args.claims:,} claims in {time.perf_counter() - t:.1f} s ({path.stat().st_size >> 20} MiB)")
    draft = work / "draft"
    shutil.copytree(args.schedules, draft)
    yaml = draft / "2018" / "schedule.yaml"
    yaml.write_text(yaml.read_text().replace("2: 450.00, 3: 700.00}", "2: 650.00, 3: 700.00}", 1))
    baseline_tables = compile_tables(load_region(args.schedules))
    draft_tables = compile_tables(load_region(draft))
    warm = Simulation(baseline_tables, draft_tables, ["category", "month"])
    warm.add_block(next(blocks(path, 1 << 16)))  # the compiled kernels loaded before timing
    t = time.perf_counter()
    read = sum(len(b) for b in blocks(path))  # the file alone, as the run reads it (from the page cache)
    print(f"reading {read >> 20} MiB in blocks alone: {time.perf_counter() - t:.2f} s")
    before = resource.getrusage(resource.RUSAGE_SELF)
    start, cpu = time.perf_counter(), time.process_time()
    sim = Simulation(baseline_tables, draft_tables, ["category", "month"])
    for block in blocks(path):
        sim.add_block(block)
    report = sim.report()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"claims {report['claims']:,}  errors {report['errors']}  groups {len(report['groups'])}")
    print(
        f"simulate, both sets, one core: {elapsed:.2f} s wall, {cpu:.2f} s CPU → {report['claims'] / elapsed:,.0f}"
        f" claims/s (wall); claims read once: {sim.shared}; peak RSS {peak:.0f} MB"
    )
    print(
        f"where wall ≠ CPU: user {after.ru_utime - before.ru_utime:.2f} s,"
        f" system {after.ru_stime - before.ru_stime:.2f} s,"
        f" waited {elapsed - cpu:.2f} s; context switches: {after.ru_nvcsw - before.ru_nvcsw} voluntary (I/O, locks),"
        f" {after.ru_nivcsw - before.ru_nivcsw} involuntary (the CPU given to other processes);"
        f" major page faults {after.ru_majflt - before.ru_majflt}"
    )
    print(f"delta basic {report['delta']['basic']}  patient_pays {report['delta']['patient_pays']}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
