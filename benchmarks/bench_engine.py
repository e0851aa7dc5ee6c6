"""Engine throughput on columnar input, one core, and the plain-Python comparison.

    .venv/bin/python benchmarks/bench_engine.py --claims 1000000

Reports claims/s for settle() on a prebuilt columnar batch (best of --repeat),
the share of time per stage, peak memory (RSS high-water mark), and the same
rules run claim by claim with the kernel interpreted by CPython (the ≥ 100×
comparison of SPEC §8), measured on a sample and scaled.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

import settlement.engine.pipeline as S
from settlement import jit
from settlement.engine import ClaimBatch, compile_tables, kernel, settle
from settlement.schedules import load_region
from settlement.synth import columnar_batch


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--python-sample", type=int, default=2_000)
    parser.add_argument("--schedules", default="fee_schedules/heilongjiang")
    args = parser.parse_args()

    tables = compile_tables(load_region(args.schedules))
    batch = columnar_batch(args.claims, tables, args.persons)
    lines = int(batch.line_start[-1])
    jit.load()  # the compiled kernels (settlement.jit), even for the small batches below
    settle(columnar_batch(10, tables, 5), tables)  # compile / load the kernel cache
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        result = settle(batch, tables)
        best = min(best, time.perf_counter() - start)
    assert (result.total == result.basic + result.critical_illness + result.medical_assistance
            + result.charity + result.backstop + result.patient_pays + result.hospital_bears).all()
    print(f"claims {args.claims:,}  lines {lines:,} ({lines / args.claims:.1f}/claim)")
    print(f"engine settle(): {best:.3f} s  → {args.claims / best:,.0f} claims/s (best of {args.repeat})")

    # stage split
    t0 = time.perf_counter()
    S.line_parts(batch, tables)
    t1 = time.perf_counter()
    S.classify(batch, tables)
    t2 = time.perf_counter()
    print(
        f"  lines (§5.1) {t1 - t0:.3f} s, pathway (§5.2) {t2 - t1:.3f} s,"
        f" accumulator kernel and the rest {best - (t2 - t0):.3f} s"
    )
    print(f"peak RSS {peak_mb():,.0f} MB")

    # the same rules claim by claim: (a) the counter path, settle() on batches of one;
    # (b) both kernels interpreted by CPython (plain Python running the same source)
    sample = min(args.python_sample, args.claims)
    small = columnar_batch(sample, tables, max(1, args.persons * sample // args.claims))
    acc = None
    start = time.perf_counter()
    for i in range(sample):
        one = _one(small, i)
        if acc is not None:
            acc = acc.grow(int(one.person_year[0]) + 1, 1)
        acc = settle(one, tables, acc).accumulators
    one_by_one = sample / (time.perf_counter() - start)
    print(f"claim by claim through settle() (batches of one): {one_by_one:,.0f} claims/s"
          f" → batch is {args.claims / best / one_by_one:,.0f}× faster")
    compiled = kernel.settle_kernel, kernel.line_kernel
    try:
        kernel.settle_kernel, kernel.line_kernel = kernel._settle_kernel, kernel._line_kernel
        start = time.perf_counter()
        settle(small, tables)
        python_s = time.perf_counter() - start
    finally:
        kernel.settle_kernel, kernel.line_kernel = compiled
    print(
        f"kernels interpreted by CPython: {sample / python_s:,.0f} claims/s → compiled engine is "
        f"{args.claims / best / (sample / python_s):,.0f}× faster"
    )


def _one(batch: ClaimBatch, i: int) -> ClaimBatch:
    lo, hi = int(batch.line_start[i]), int(batch.line_start[i + 1])
    pick = slice(i, i + 1)
    return ClaimBatch(
        version=batch.version[pick], policy_year=batch.policy_year[pick],
        person_year=batch.person_year[pick], year_index=batch.year_index[pick],
        scheme=batch.scheme[pick], category=batch.category[pick], visit_type=batch.visit_type[pick],
        level=batch.level[pick], age=batch.age[pick], sessions=batch.sessions[pick],
        diagnosis=batch.diagnosis[pick], treatment=batch.treatment[pick],
        diagnosis_values=batch.diagnosis_values, treatment_values=batch.treatment_values,
        line_start=np.array([0, hi - lo], dtype=np.int64), line_item=batch.line_item[lo:hi],
        line_qty=batch.line_qty[lo:hi], line_price=batch.line_price[lo:hi],
    )


if __name__ == "__main__":
    main()
