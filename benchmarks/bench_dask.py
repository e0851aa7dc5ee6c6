"""`settlement settle` sequential vs `--engine dask` on 1 and 2 workers: wall time and peak memory per process.

    .venv/bin/python benchmarks/bench_dask.py --claims 1000000 --workers 1 2

Uses the claims file of bench_cli.py (/tmp/settlement-bench-N.jsonl, generated
if missing). Each run is the command line as a subprocess writing to a file;
the Dask runs use a LocalCluster(n_workers=W, threads_per_worker=1) started
here and passed as --scheduler, so the workers' peak RSS can be read from them
(resource.getrusage in each worker) and the command's own from os.wait4. The
outputs are compared byte for byte with the sequential one.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_cli import generate

SETTLE = [sys.executable, "-m", "settlement.cli", "settle"]


def _peak_mb(rusage: os.struct_rusage | None = None) -> float:
    import resource

    usage = rusage or resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_maxrss / 1024


def _worker_peak() -> tuple[int, float]:
    return os.getpid(), _peak_mb()


def _run(argv: list[str], out: Path) -> tuple[float, float, str]:
    """Wall seconds, the command's peak RSS (MB; its own process and its waited children), its stderr."""
    start = time.perf_counter()
    with out.open("wb") as sink:
        proc = subprocess.Popen(argv, stdout=sink, stderr=subprocess.PIPE)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        _, status, rusage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{argv} failed ({status}):\n{err}")
    return wall, _peak_mb(rusage), err


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def replicate(source: Path, target: Path, copies: int) -> None:
    """`copies` of a generated claims file one after another, each copy's persons new (the ids' first two
    digits 23 → 1k, check character recomputed) and its claim ids prefixed R<k>-: the same claims pattern,
    `copies` times the persons (10 M claims from bench_cli's 1 M in a few minutes instead of an hour)."""
    from settlement.claims.person_id import CHECK, WEIGHTS

    marker, claim = b'"person_id":"', b'{"claim_id":"'
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as out:
        for k in range(copies):
            memo: dict[bytes, bytes] = {}
            with source.open("rb") as handle:
                for line in handle:
                    if k:
                        at = line.find(marker) + len(marker)
                        old = line[at : at + 18]
                        new = memo.get(old)
                        if new is None:
                            body = f"1{k}" + old[2:17].decode()
                            check = CHECK[sum(int(d) * w for d, w in zip(body, WEIGHTS, strict=True)) % 11]
                            new = memo[old] = (body + check).encode()
                        assert line.startswith(claim) and old.startswith(b"23")
                        line = claim + b"R%d-" % k + line[len(claim) : at] + new + line[at + 18 :]
                    out.write(line)
    tmp.rename(target)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--schedules", default="fee_schedules/heilongjiang")
    parser.add_argument("--file", default=None, help="claims file (generated if missing)")
    parser.add_argument("--replicate", type=int, default=0,
                        help="make the file (if missing) from this many copies of bench_cli's 1/N-sized file")
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2], help="none: the sequential run only")
    parser.add_argument("--partitions", type=int, default=None, help="default: 2 per worker")
    parser.add_argument("--skip-sequential", action="store_true",
                        help="reuse the sequential output and time of an earlier run (each run its own invocation)")
    parser.add_argument("--memory-limit", default="auto",
                        help="per worker (LocalCluster's memory_limit): Dask spills stored results to disk past 60%%")
    args = parser.parse_args()
    path = Path(args.file or f"/tmp/settlement-bench-{args.claims}.jsonl")
    if not path.exists() and args.replicate:
        source = Path(f"/tmp/settlement-bench-{args.claims // args.replicate}.jsonl")
        if not source.exists():
            generate(source, args.claims // args.replicate, args.schedules)
        print(f"replicating {source} {args.replicate} times into {path} ...", flush=True)
        replicate(source, path, args.replicate)
    if not path.exists():
        print(f"generating {args.claims} claims into {path} ...", flush=True)
        generate(path, args.claims, args.schedules)
    size = path.stat().st_size
    print(f"{path}: {size / 1e6:.0f} MB; load average {os.getloadavg()[0]:.1f}", flush=True)
    reference = Path(f"/tmp/settlement-bench-{args.claims}.sequential.jsonl")
    timing = reference.with_suffix(".seconds")
    if not args.skip_sequential or not reference.exists():
        wall, peak, _ = _run([*SETTLE, "--schedules", args.schedules, str(path)], reference)
        print(f"sequential: {wall:.1f} s, {args.claims / wall:,.0f} claims/s, peak {peak:.0f} MB (largest process); "
              f"load average after {os.getloadavg()[0]:.1f}", flush=True)
        timing.write_text(f"{wall}\n")
        base = wall
    else:
        base = float(timing.read_text()) if timing.exists() else float("nan")
    expected = _md5(reference)

    from distributed import Client, LocalCluster

    for workers in args.workers:
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                         dashboard_address=None, memory_limit=args.memory_limit) as cluster,
            Client(cluster) as client,
        ):
            out = Path(f"/tmp/settlement-bench-{args.claims}.dask{workers}.jsonl")
            argv = [*SETTLE, "--schedules", args.schedules, "--engine", "dask", "--scheduler",
                    cluster.scheduler_address, str(path)]
            if args.partitions:
                argv += ["--partitions", str(args.partitions)]
            wall, peak, err = _run(argv, out)
            peaks = client.run(_worker_peak)
            same = _md5(out) == expected
            print(
                f"dask, {workers} worker(s): {wall:.1f} s, {args.claims / wall:,.0f} claims/s "
                f"({wall / base:.2f}× sequential); identical: {same}; peak RSS: client {peak:.0f} MB, "
                f"workers {', '.join(f'{mb:.0f}' for _, mb in sorted(peaks.values()))} MB, "
                f"scheduler (this process) {_peak_mb():.0f} MB; load average after {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            print("   " + err.strip().splitlines()[-1], flush=True)
            out.unlink()


if __name__ == "__main__":
    main()
