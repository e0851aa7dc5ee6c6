"""The counter's engine part: counter.prepare + counter.compute of the worked examples, in-process, compiled.

    PYTHONPATH=<tree>/src .venv/bin/python benchmarks/bench_counter_compute.py LABEL   # alternate two trees for an A/B
"""
import statistics
import sys
import time
from pathlib import Path

import orjson

try:
    from settlement import jit
    jit.load()
except ImportError:
    pass
from settlement.claims import validate_claim
from settlement.engine import compile_tables
from settlement.engine.state import PersonYearTotals
from settlement.schedules import load_region
from settlement.service.settlements import counter

ROOT = Path(__file__).resolve().parents[1]
tables = compile_tables(load_region(str(ROOT / "fee_schedules" / "heilongjiang")))
given = []
for line in (ROOT / "examples" / "claims.jsonl").read_bytes().splitlines():
    try:
        claim = validate_claim(orjson.loads(line))
        a = (claim, getattr(claim.patient, "scheme", None), getattr(claim.patient, "category", None))
        cc = counter.prepare(a[0], tables, a[1], a[2])
        counter.compute(cc, PersonYearTotals(), {})
    except Exception:
        continue
    given.append(a)
for what in ("prepare", "prepare+compute"):
    means = []
    for _ in range(100):
        t = time.perf_counter()
        for c, s, k in given:
            cc = counter.prepare(c, tables, s, k)
            if what != "prepare":
                counter.compute(cc, PersonYearTotals(), {})
        means.append((time.perf_counter() - t) / len(given))
    median, best = statistics.median(means) * 1e6, min(means) * 1e6
    print(sys.argv[1], what, f"median {median:.0f} µs best {best:.0f} µs ({len(given)} claims)")
