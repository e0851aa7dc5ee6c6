"""A newcomer's first run, and every later start: the CLI and `serve`, cold and warm.

    flock /work/wt/bench.lock .venv/bin/python benchmarks/bench_firstrun.py cold
    flock /work/wt/bench.lock .venv/bin/python benchmarks/bench_firstrun.py warm --claims-file /tmp/c30k.jsonl

`--src DIR` times another tree's code (e.g. the old main checked out with
`git worktree add /tmp/old 7bd2b3c`: `--src /tmp/old/src`).

cold: copies src/, fee_schedules/ and examples/ to a temporary directory
without any __pycache__ (no .pyc, no numba cache, an empty store of validated
schedules: a fresh clone after `pip install -e .`), then times, in that copy,
  (a) README's first command (`settlement settle` of the worked examples) to its last line;
  (b) a fresh `settlement serve` (SQLite in the copy) until /readyz answers 200, then
      (after --before-kill seconds) SIGKILLed and started again until /readyz answers.
warm: in the tree itself (caches as a first run leaves them: numba's, the schedules' store, Python's .pyc),
  (c) `settlement settle` of one claim, best and median of --repeat;
  (d) `settlement settle` of --claims-file against the plain scalar reference: the same
      lines read with json.loads and settled one by one by the exact-fractions model of
      SPEC §5 in tests/engine/test_properties.py (Model), in one process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).with_name("settlement")
BYTECODE = True


def _env(src: Path) -> dict[str, str]:
    """The runs' environment: the code of `src`, and Python's bytecode cache (`__pycache__`) written and read
    as a user's Python does (unless --no-bytecode: every module compiled from source, as when
    PYTHONDONTWRITEBYTECODE=1 is set and no `.pyc` was ever written)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    if BYTECODE:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _settle(src: Path, cwd: Path, claims: Path, store: Path | None = None) -> tuple[float, int, float]:
    """Seconds to the last line, the lines, and the CPU seconds (user + system) of the command's processes;
    `store`: the schedules' store (default: the user's)."""
    env = _env(src)
    if store is not None:
        env["SETTLEMENT_CACHE_DIR"] = str(store)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [str(EXE), "settle", "--schedules", "fee_schedules/heilongjiang", str(claims)],
        cwd=cwd, env=env, capture_output=True, check=True,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, len(done.stdout.splitlines()), cpu


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve_ready(src: Path, cwd: Path, port: int, timeout: float = 600) -> tuple[float, subprocess.Popen[bytes]]:
    env = {**_env(src), "SETTLEMENT_DATABASE_URL": f"sqlite:///{cwd / 'bench.db'}",
           "SETTLEMENT_SCHEDULES": str(cwd / "fee_schedules" / "heilongjiang")}
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(EXE), "serve", "--port", str(port), "--log-level", "warning"],
        cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/readyz"
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return time.perf_counter() - start, proc
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    proc.kill()
    raise RuntimeError("serve not ready")


def _copy_code(src: Path, into: Path) -> Path:
    shutil.copytree(src, into / "src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc"))
    return into / "src"


def _copy(src: Path, into: Path) -> Path:
    _copy_code(src, into)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.nbi", "*.nbc")
    for name in ("fee_schedules", "examples"):
        shutil.copytree(ROOT / name, into / name, ignore=ignore)
    return into / "src"


def cold(src: Path, before_kill: float) -> None:
    with tempfile.TemporaryDirectory(prefix="firstrun-") as tmp:
        where = Path(tmp)
        copy = _copy(src, where)
        store = where / "cache"  # empty, as on a fresh machine
        seconds, lines, _ = _settle(copy, where, where / "examples" / "claims.jsonl", store)
        print(f"(a) first `settlement settle` of the worked examples, cold: {seconds:.2f} s ({lines} result lines)")
        seconds, lines, _ = _settle(copy, where, where / "examples" / "claims.jsonl", store)
        print(f"    the same again (warm): {seconds:.2f} s")
    with tempfile.TemporaryDirectory(prefix="firstrun-") as tmp:
        where = Path(tmp)
        copy = _copy(src, where)
        port = _free_port()
        seconds, proc = _serve_ready(copy, where, port)
        print(f"(b) fresh `settlement serve` ready (/readyz 200), cold: {seconds:.2f} s")
        time.sleep(before_kill)  # e.g. for the background compilation to finish
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        seconds, proc = _serve_ready(copy, where, port)
        print(f"    after SIGKILL, ready again: {seconds:.2f} s")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def warm(src: Path, claims_file: Path | None, repeat: int) -> None:
    with tempfile.TemporaryDirectory(prefix="firstrun-") as tmp:
        one = Path(tmp) / "one.jsonl"
        one.write_bytes((ROOT / "examples" / "claims.jsonl").read_bytes().splitlines(keepends=True)[0])
        code = src if BYTECODE else _copy_code(src, Path(tmp))  # --no-bytecode: no .pyc of src to read either
        _settle(code, ROOT, one)  # caches as a second run finds them
        runs = [_settle(code, ROOT, one) for _ in range(repeat)]
        times, cpu = [r[0] for r in runs], [r[2] for r in runs]
        print(f"(c) warm `settlement settle` of one claim: best {min(times):.3f} s, median "
              f"{statistics.median(times):.3f} s ({repeat} runs); CPU best {min(cpu):.3f} s, median "
              f"{statistics.median(cpu):.3f} s")
    if claims_file is None:
        return
    _settle(src, ROOT, claims_file)
    runs = [_settle(src, ROOT, claims_file) for _ in range(repeat)]
    times, cpu = [r[0] for r in runs], [r[2] for r in runs]
    best = min(times)
    lines = claims_file.read_bytes().splitlines()
    sys.path.insert(0, str(ROOT))
    from tests.engine.test_properties import Model

    from settlement.schedules import load_region

    start = time.perf_counter()
    model = Model(load_region(ROOT / "fee_schedules" / "heilongjiang"))
    for line in lines:
        model.settle(json.loads(line))
    reference = time.perf_counter() - start
    print(f"(d) {len(lines):,} claims: `settlement settle` best {best:.2f} s, median {statistics.median(times):.2f} s "
          f"({repeat} runs; CPU of all its processes best {min(cpu):.2f} s); the scalar exact-fractions model "
          f"in one process {reference:.2f} s → {reference / best:.1f}× faster")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["cold", "warm"])
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the code to time (default: this tree's)")
    parser.add_argument("--claims-file", type=Path, help="warm: a claims file for (d)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--before-kill", type=float, default=0.0, help="cold: seconds serve runs before SIGKILL")
    parser.add_argument(
        "--no-bytecode", action="store_true",
        help="PYTHONDONTWRITEBYTECODE=1 in the runs, and (c) on a copy of --src without .pyc: every module of"
        " settlement compiled at every start (default: unset, as a user's Python writes .pyc)",
    )
    args = parser.parse_args()
    global BYTECODE
    BYTECODE = not args.no_bytecode
    print(f"code: {args.src}{'' if BYTECODE else ' (no bytecode cache)'}")
    if args.what == "cold":
        cold(args.src.resolve(), args.before_kill)
    else:
        warm(args.src.resolve(), args.claims_file, args.repeat)


if __name__ == "__main__":
    main()
