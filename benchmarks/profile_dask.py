"""Where `settle --engine dask` spends its time: Dask's task stream summed per function, worker RSS over time.

    flock /work/wt/bench.lock .venv/bin/python benchmarks/profile_dask.py /tmp/settlement-bench-1000000.jsonl 2

Runs settle_on_cluster on a LocalCluster(n_workers=W, threads_per_worker=1) in this process, writes the
results to /tmp/settlement-profile-dask.jsonl, and prints the run's summary line, its pool rounds, the
compute / transfer / disk (spill) seconds per task function summed over the workers, and the workers'
peak RSS.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time

from distributed import Client, LocalCluster, get_task_stream
from settlement.distributed.run import input_jobs, settle_on_cluster
from settlement.engine import compile_tables
from settlement.schedules import load_region


def _rss() -> tuple[float, float]:
    """This process's current and peak RSS in MB."""
    import resource

    current = 0.0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                current = int(line.split()[1]) / 1024
    return current, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    path, workers = sys.argv[1], int(sys.argv[2])
    parts = int(sys.argv[3]) if len(sys.argv) > 3 else 2 * workers
    tables = compile_tables(load_region(os.environ.get("SCHEDULES", "fee_schedules/heilongjiang")))
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, silence_logs=logging.ERROR,
                     dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        samples: list[tuple[float, float]] = []
        done = threading.Event()

        def sample() -> None:
            start = time.time()
            while not done.wait(2.0):
                rss = client.run(_rss)
                samples.append((time.time() - start, sum(v[0] for v in rss.values())))

        threading.Thread(target=sample, daemon=True).start()
        start = time.time()
        with open("/tmp/settlement-profile-dask.jsonl", "wb") as out, get_task_stream(client=client) as stream:
            summary = settle_on_cluster(client, input_jobs(path), tables, out.write, parts)
        wall = time.time() - start
        done.set()
        print(f"wall {wall:.1f} s; {summary.line()}")
        print("rounds (pool columns, affected, settled again):", summary.rounds)
        seconds: dict[tuple[str, str], list[float]] = collections.defaultdict(lambda: [0, 0.0])
        for task in stream.data:
            name = str(task["key"]).split("-")[0]
            for step in task["startstops"]:
                seconds[(name, step["action"])][0] += 1
                seconds[(name, step["action"])][1] += step["stop"] - step["start"]
        for (name, action), (count, total) in sorted(seconds.items(), key=lambda kv: -kv[1][1]):
            if total >= 0.05:
                print(f"{name:20s} {action:12s} {int(count):6d} {total:8.1f} s")
        peaks = client.run(_rss)
        print("workers' peak RSS (MB):", sorted(round(v[1]) for v in peaks.values()))
        step = max(1, len(samples) // 20)
        print("workers' RSS summed (s, MB):", [(round(t), round(mb)) for t, mb in samples[::step]])


if __name__ == "__main__":
    main()
