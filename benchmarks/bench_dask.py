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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--claims", type=int, default=1_000_000)
    parser.add_argument("--schedules", default="fee_schedules/heilongjiang")
    parser.add_argument("--file", default=None, help="claims file (generated if missing)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--partitions", type=int, default=None, help="default: 2 per worker")
    parser.add_argument("--skip-sequential", action="store_true")
    args = parser.parse_args()
    path = Path(args.file or f"/tmp/settlement-bench-{args.claims}.jsonl")
    if not path.exists():
        print(f"generating {args.claims} claims into {path} ...", flush=True)
        generate(path, args.claims, args.schedules)
    size = path.stat().st_size
    print(f"{path}: {size / 1e6:.0f} MB; load average {os.getloadavg()[0]:.1f}", flush=True)
    reference = Path(f"/tmp/settlement-bench-{args.claims}.sequential.jsonl")
    if not args.skip_sequential or not reference.exists():
        wall, peak, _ = _run([*SETTLE, "--schedules", args.schedules, str(path)], reference)
        print(f"sequential: {wall:.1f} s, {args.claims / wall:,.0f} claims/s, peak {peak:.0f} MB (largest process)",
              flush=True)
        base = wall
    else:
        base = float("nan")
    expected = _md5(reference)

    from distributed import Client, LocalCluster

    for workers in args.workers:
        with (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                         dashboard_address=None) as cluster,
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
                f"scheduler (this process) {_peak_mb():.0f} MB",
                flush=True,
            )
            print("   " + err.strip().splitlines()[-1], flush=True)
            out.unlink()


if __name__ == "__main__":
    main()
