"""The command line's part: `settlement settle --engine dask [--scheduler A] [--partitions N] INPUT [--output OUT]`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

from settlement.engine import Tables

from .run import Progress, input_jobs, settle_on_cluster


@contextlib.contextmanager
def cluster_client(scheduler: str | None, workers: int | None = None) -> Iterator[Any]:
    """A client of the cluster at `scheduler`, or of a LocalCluster (one single-threaded worker process per core)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:  # type: ignore[no-untyped-call]
            yield client
        return
    n = workers or os.cpu_count() or 1
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=n, threads_per_worker=1, processes=True, silence_logs=logging.ERROR
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        print(f"dask: {n} workers, dashboard {cluster.dashboard_link}", file=sys.stderr, flush=True)
        yield client


def settle_command(args: argparse.Namespace, tables: Tables) -> int:
    """Runs `settle --engine dask`; the output is the sequential run's, byte for byte (or its Parquet form)."""
    if not args.file or args.file == "-":
        print("settlement settle: --engine dask reads a file or a directory, not stdin", file=sys.stderr)
        return 2
    if args.partitions is not None and args.partitions < 1:
        print("settlement settle: --partitions must be at least 1", file=sys.stderr)
        return 2
    try:
        jobs = input_jobs(args.file)
    except (OSError, ValueError) as exc:
        print(f"settlement settle: cannot read {args.file}: {exc}", file=sys.stderr)
        return 1
    parquet = bool(args.output and args.output.endswith(".parquet"))
    with cluster_client(args.scheduler) as client:
        workers = len(client.scheduler_info().get("workers", {})) or 1
        parts = args.partitions or 2 * workers
        if parquet:
            from .parquet_out import settle_to_parquet

            summary = settle_to_parquet(client, jobs, tables, args.output, parts, Progress())
        elif args.output:
            with open(args.output, "wb") as out:
                summary = settle_on_cluster(client, jobs, tables, out.write, parts, Progress())
        else:
            stdout = sys.stdout.buffer
            summary = settle_on_cluster(client, jobs, tables, stdout.write, parts, Progress())
            stdout.flush()
    print(summary.line(), file=sys.stderr)
    return 0


def simulate_command(args: argparse.Namespace, baseline: Tables, draft: Tables, by: list[str]) -> dict[str, Any]:
    """`simulate --engine dask`: the report of the sequential simulation (OSError, ValueError as it raises them)."""
    from .simulate import simulate_on_cluster

    if args.partitions is not None and args.partitions < 1:
        raise ValueError("--partitions must be at least 1")
    jobs = input_jobs(args.claims)
    with cluster_client(args.scheduler) as client:
        workers = len(client.scheduler_info().get("workers", {})) or 1
        return simulate_on_cluster(client, jobs, baseline, draft, by, args.partitions or 2 * workers, Progress())
