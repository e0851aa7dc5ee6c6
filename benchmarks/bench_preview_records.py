"""Previews with recording on and off: an interleaved A/B of loadtests/run.sh --mix preview.

Same code both ways; "off" puts benchmarks/preview_records_off (a sitecustomize that makes
PreviewLog.record keep nothing) on the server's PYTHONPATH. Runs alternate in pairs (on, off |
off, on | on, off ...: each variant as often first as second); each pair holds
/work/wt/bench.lock (another benchmark waits for it; ~3 minutes). Prints one line per run and
the medians:

    .venv/bin/python benchmarks/bench_preview_records.py --rounds 3 --duration 30 --rate 1600
    (--pairs-per-lock 2 holds the lock for two pairs, ~5 minutes; --first-round 1 continues a series)

Each run's report is in loadtests/reports/<--out-prefix>-<n>-<variant>/ (report.json, report.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OFF_PATH = ROOT / "benchmarks" / "preview_records_off"
LOCK = "/work/wt/bench.lock"


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(variant: str, n: int, args: argparse.Namespace) -> dict[str, object]:
    out = ROOT / "loadtests" / "reports" / f"{args.out_prefix}-{n}-{variant}"
    cmd = [str(ROOT / "loadtests" / "run.sh"), "--mix", "preview", "--duration", str(args.duration),
           "--rate", str(args.rate), "--database-url", args.database_url, "--out", str(out)]
    if variant == "off":
        src = os.pathsep.join([str(OFF_PATH), str(ROOT / "src")])
        cmd += ["--serve-env", f"PYTHONPATH={src}"]
    load_before = load()
    started = dt.datetime.now(dt.UTC)
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    load_after = load()
    if done.returncode == 2 or not (out / "report.json").exists():
        print(done.stdout[-2000:], done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(f"run {n} ({variant}) could not run")
    report = json.loads((out / "report.json").read_text())
    preview = report["client"]["preview"]
    row = {
        "n": n, "variant": variant, "started": started.strftime("%H:%M:%S"), "exit": done.returncode,
        "ok_per_s": preview["ok_per_s"], "errors": preview["errors"], "p50_ms": preview["service"]["p50_ms"],
        "p99_ms": preview["service"]["p99_ms"], "corrected_p99_ms": preview["corrected"]["p99_ms"],
        "service_ms_per_request": report["run"]["cpu"]["service_ms_per_request"],
        "postgres_ms_per_request": report["run"]["cpu"]["postgres_ms_per_request"],
        "other_cpu_s": report["run"]["cpu"]["other_cpu_s"],
        "reference_loop_ms": report["run"]["cpu"]["reference_loop_ms"],
        "load_before": load_before, "load_after": load_after, "report": str(out.relative_to(ROOT)),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rounds", type=int, default=3, help="runs of each variant")
    p.add_argument("--duration", type=int, default=30)
    p.add_argument("--rate", type=float, default=1600)
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/bench_preview_records")
    p.add_argument("--out-prefix", default="preview-records")
    p.add_argument("--first-round", type=int, default=0, help="continue a series: its next round's index")
    p.add_argument("--pairs-per-lock", type=int, default=1, help="pairs run under one hold of the lock")
    args = p.parse_args()
    rows: list[dict[str, object]] = []
    rounds = list(range(args.first_round, args.first_round + args.rounds))
    for at in range(0, len(rounds), args.pairs_per_lock):
        with open(LOCK, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            for i in rounds[at:at + args.pairs_per_lock]:
                for variant in ("on", "off") if i % 2 == 0 else ("off", "on"):
                    rows.append(run(variant, 2 * args.first_round + len(rows) + 1, args))
    for variant in ("on", "off"):
        mine = [r for r in rows if r["variant"] == variant]
        print(f"{variant}: median ok/s {statistics.median(r['ok_per_s'] for r in mine)},"
              f" median p99 {statistics.median(r['p99_ms'] for r in mine)} ms,"
              f" median service CPU {statistics.median(r['service_ms_per_request'] for r in mine)} ms/request"
              f" (ok/s {[r['ok_per_s'] for r in mine]}, p99 {[r['p99_ms'] for r in mine]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
