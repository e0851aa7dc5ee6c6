"""An interleaved A/B load test of two commits: the same load, only the service's code differs.

    loadtests/ab.sh 7bd2b3c main                            # 3 runs per arm, previews and the counter mix
    loadtests/ab.sh 7bd2b3c main --runs 1 --duration 10     # a short proof of the harness

Both revisions are checked out as git worktrees under a temporary folder (removed
afterwards). Every run is ``loadtests/run.py`` of NEW_REV's worktree (the driver, the
seed and locust's load generator: locust imports NEW_REV's ``src``), with
``PYTHONPATH=<arm's worktree>/src`` for the rest, so the arm's own migrations make its
schema and keys and the arm's ``settlement serve`` answers; each run on a fresh
database (``--database-url``, dropped and created by run.py), under
``flock /work/wt/bench.lock`` when that file exists (one hold per run). Each arm's
kernels are first compiled into numba's cache of its worktree (:data:`WARM`). The arms
alternate ABBA: round 1 old then new, round 2 new then old, … (per mix: previews
first, then the counter mix).

Prints the table of docs/PERFORMANCE.md §5.5 per mix (run | commit | start |
load before → after | ok/s | p99 | corrected p99 | errors | service CPU ms/req |
other procs CPU s) and each arm's medians; writes it to ``<out>/ab.md`` and, with
``--append FILE``, appends it there. Each run's report stays in ``<out>/<mix>-<run>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import fcntl
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCK = Path("/work/wt/bench.lock")
MIXES = {"preview": ("preview", 30, 1600.0), "counter": ("counter", 60, 715.0)}
"""mix name → (run.py's --mix, seconds, offered req/s): issue 11's Proof."""
COLUMNS = (
    "| run | commit | start (UTC) | load before → after | ok/s | p99 ms | corrected p99 ms | errors"
    " | service CPU ms/req | other procs CPU s |\n"
    "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
)


WARM = """
from settlement.service.app import load_tables
from settlement.service.config import Settings
from settlement.service.settlements.counter import warm_up
tables = load_tables(Settings())
try:
    from settlement import jit
except ImportError:  # before settlement.jit (7bd2b3c): numba compiles at the first call
    warm_up(tables)
else:
    jit.compile_in_background(lambda: warm_up(tables))
    if not jit.wait_background():
        raise SystemExit("the kernels were not compiled")
"""
"""Run with an arm's PYTHONPATH before its first run: the service's kernels compiled into numba's cache of
the fresh worktree (else the first measured run pays the compilation: ~10 ms CPU a request, not ~1.2)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old_rev", help="arm A (e.g. 7bd2b3c)")
    p.add_argument("new_rev", help="arm B (e.g. main); its loadtests/ drive both arms")
    p.add_argument("--runs", type=int, default=3, help="runs per arm and mix")
    p.add_argument("--mix", choices=["counter", "preview", "both"], default="both")
    p.add_argument("--duration", type=int, default=None, help="seconds per run (default: previews 30, counter 60)")
    p.add_argument("--labels", default="old,new", help="the arms' names in the table")
    p.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/counter_ab")
    p.add_argument("--out", type=Path, default=None, help="reports folder (default loadtests/reports/ab-<time>)")
    p.add_argument("--append", type=Path, default=None, help="append the tables to this file too")
    p.add_argument("--lock", type=Path, default=LOCK, help="held per run when it exists")
    p.add_argument("--run-arg", action="append", default=[], help="one more argument for run.py (repeatable)")
    return p.parse_args(argv)


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def worktrees(revs: list[str]) -> Iterator[list[Path]]:
    """A detached worktree per revision under a temporary folder, removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="settlement-ab-"))
    made: list[Path] = []
    try:
        for n, rev in enumerate(revs):
            path = base / f"{n}-{rev}"
            git("worktree", "add", "--detach", "--quiet", str(path), rev)
            made.append(path)
        yield made
    finally:
        for path in made:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, check=False)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def bench_lock(path: Path) -> Iterator[None]:
    """flock(1)'s lock on ``path`` (the same flock(2)), if the file exists."""
    if not path.exists():
        yield
        return
    with open(path) as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def load() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def one_run(driver: Path, arm: Path, mix: str, seconds: int, rate: float, out: Path,
            args: argparse.Namespace, extra: list[str] | None = None) -> dict[str, Any]:
    """run.py of the driver's checkout against the arm's service; the table's figures of its report."""
    env = dict(os.environ, PYTHONPATH=str(arm / "src"))
    cmd = [sys.executable, "-m", "loadtests.run", "--mix", mix, "--duration", str(seconds), "--rate", f"{rate:g}",
           "--database-url", args.database_url, "--out", str(out), "--ready-timeout", "900", *args.run_arg,
           *(extra or [])]
    with bench_lock(args.lock):
        start = dt.datetime.now(dt.UTC).strftime("%H:%M:%S")
        before = load()
        with open(out.with_suffix(".log"), "wb") as log:
            done = subprocess.run(cmd, cwd=driver, env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
        code = done.returncode
        after = load()
    row: dict[str, Any] = {"start": start, "load": (before, after), "exit": code}
    report = out / "report.json"
    if report.exists():
        data = json.loads(report.read_text())
        client = data["client"].get("all") or next(iter(data["client"].values()), None)
        cpu = data["run"].get("cpu", {})
        if client is None:  # no request answered in the measured window
            return row
        row.update(
            ok_s=client["ok_per_s"], p99=client["service"]["p99_ms"], corrected=client["corrected"]["p99_ms"],
            errors=client["errors"], cpu_ms=cpu.get("service_ms_per_request"), other=cpu.get("other_cpu_s"),
        )
    return row


def line(name: str, commit: str, row: dict[str, Any]) -> str:
    head = f"| {name} | {commit} | {row['start']} | {row['load'][0]:.2f} → {row['load'][1]:.2f}"
    if "ok_s" not in row:
        return head + f" | run failed (exit {row['exit']}) | | | | | |"
    failed = "" if row["exit"] == 0 else f" (exit {row['exit']})"
    return head + (
        f" | {row['ok_s']:.1f} | {row['p99']:.1f} | {row['corrected']:.0f} | {row['errors']}{failed}"
        f" | {row['cpu_ms']} | {row['other']} |"
    )


def medians(label: str, rows: list[dict[str, Any]]) -> str:
    done = [r for r in rows if "ok_s" in r]
    if not done:
        return f"- {label}: no run finished"
    return (
        f"- {label}: n={len(done)}, median {statistics.median(r['ok_s'] for r in done):.1f} ok/s,"
        f" median p99 {statistics.median(r['p99'] for r in done):.1f} ms,"
        f" median service CPU {statistics.median(r['cpu_ms'] for r in done):.2f} ms/request"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    labels = args.labels.split(",")
    if len(labels) != 2:
        raise SystemExit("--labels: two names, comma-separated")
    commits = [git("rev-parse", "--short", f"{rev}^{{commit}}") for rev in (args.old_rev, args.new_rev)]
    out = (args.out or ROOT / "loadtests" / "reports" / f"ab-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    mixes = ["preview", "counter"] if args.mix == "both" else [args.mix]
    rows: dict[str, list[tuple[str, int, dict[str, Any]]]] = {m: [] for m in mixes}
    with worktrees(commits) as trees:
        driver = trees[1]  # NEW_REV's loadtests drive both arms
        for arm in (0, 1):
            print(f"compiling {labels[arm]} ({commits[arm]}) …", flush=True)
            env = dict(os.environ, PYTHONPATH=str(trees[arm] / "src"))
            with bench_lock(args.lock):
                done = subprocess.run([sys.executable, "-c", WARM], env=env, capture_output=True, text=True)
            if done.returncode != 0:
                print(f"compiling {labels[arm]} failed:\n{done.stderr}", file=sys.stderr)
                return 2
        for n in range(1, args.runs + 1):
            order = (0, 1) if n % 2 else (1, 0)  # ABBA
            for mix in mixes:
                run_mix, seconds, rate = MIXES[mix]
                for arm in order:
                    name = f"{n}-{labels[arm]}"
                    seconds = args.duration or seconds
                    print(f"{mix} {name} ({commits[arm]}): {seconds} s at {rate:g} req/s …", flush=True)
                    row = one_run(driver, trees[arm], run_mix, seconds, rate,
                                  out / f"{mix}-{name}", args)
                    print("  " + line(name, commits[arm], row), flush=True)
                    rows[mix].append((name, arm, row))
    text = []
    for mix in mixes:
        run_mix, seconds, rate = MIXES[mix]
        text += [
            f"{'Previews' if mix == 'preview' else 'The counter mix'}, `--mix {run_mix} --duration"
            f" {args.duration or seconds} --rate {rate:g}` ({labels[0]} {commits[0]}, {labels[1]} {commits[1]}):",
            "",
            COLUMNS,
            *(line(name, commits[arm], row) for name, arm, row in rows[mix]),
            "",
            *(medians(label, [r for _, a, r in rows[mix] if a == arm]) for arm, label in enumerate(labels)),
            "",
        ]
    table = "\n".join(text)
    print("\n" + table)
    (out / "ab.md").write_text(table)
    if args.append is not None:
        with open(args.append, "a") as f:
            f.write("\n" + table)
    failed = any(row["exit"] != 0 for mix in rows.values() for _, _, row in mix)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
