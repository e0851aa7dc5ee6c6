"""The counter's per-claim preparation: `counter.prepare` (checks + the batch of one) on the worked examples.

    .venv/bin/python benchmarks/bench_counter_prepare.py [--compiled] [--rounds 200]

Times `settlements.counter.prepare` (person id, schedule and catalog checks, then the ClaimBatch of one
claim) on each of the 20 worked examples, in-process, and prints the median over rounds of the mean
µs a claim. --compiled loads the compiled kernels first (a server after its warm-up); without, the
kernels' Python source runs (a server's first seconds, the CLI's small inputs). For an A/B, run it
alternately with PYTHONPATH set to the two trees' src.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import orjson

from settlement import jit
from settlement.claims import ClaimError, validate_claim
from settlement.engine import compile_tables
from settlement.schedules import load_region
from settlement.service.settlements import counter

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--compiled", action="store_true")
    args = parser.parse_args()
    tables = compile_tables(load_region(str(ROOT / "fee_schedules" / "heilongjiang")))
    if args.compiled:
        jit.load()
    given = []
    for line in (ROOT / "examples" / "claims.jsonl").read_bytes().splitlines():
        try:
            claim = validate_claim(orjson.loads(line))
            args_ = (claim, getattr(claim.patient, "scheme", None), getattr(claim.patient, "category", None))
            counter.prepare(args_[0], tables, args_[1], args_[2])  # warm: caches, the catalog's views
        except ClaimError:
            continue  # an example of a claim error: not settled
        given.append(args_)
    means = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        for c, s, k in given:
            counter.prepare(c, tables, s, k)
        means.append((time.perf_counter() - start) / len(given))
    form = "compiled" if args.compiled else "source"
    print(f"counter.prepare ({form}): median {statistics.median(means) * 1e6:.1f} µs,"
          f" best {min(means) * 1e6:.1f} µs a claim ({len(given)} examples × {args.rounds} rounds)")


if __name__ == "__main__":
    main()
