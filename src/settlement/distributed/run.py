"""`settlement settle --engine dask`: the sequential result, computed by person partitions on Dask.

Persons are independent but for the pools (charity funds, and any other pool
column the engine keeps): a claim's draw is min(pay, person cap left, pool
left). So (docs/PERFORMANCE.md §6):

1. Read blocks of input in parallel (`batchrun`'s reader), split each by
   person, and gather a person's claims into one partition, in input order.
2. Pass 1: settle every partition with every pool unlimited.
3. For each pool column with a limit, in column order (schedule order: the
   charity funds, then the others), and then for all of them together until
   nothing changes: prefix sums of the draws per policy year in input order,
   across partitions (cut into input ranges, one task per range, offsets
   from the ranges' totals), give every claim the pool used before it; the
   persons of the claims whose draw could change are settled again with those
   views (`partition.apply_view`).
4. Write the results per output group, merged back into input order with
   the parse errors.

Why it is exact. Stop when a round affects no claim. Then every claim's
result is what the engine gives it with its person's earlier claims as they
are and the pool left that the views show, and every view is the sum of the
draws before the claim in its policy year. Induction over the input order:
if every claim before claim i has its sequential result, the pool used before
i is the sequential one and so is its person's history, so i settles as in
the sequential run. Why it ends: by the same induction a round's views are
right for every claim up to the first one whose draw was wrong, so each round
fixes at least one more claim; in practice a pool with one limit per year is
settled in one round (its pool left is exact for every claim at once: the
sum of the unlimited draws passes the limit exactly where the pool runs dry),
a limit that changes mid-year in a few, and the last round only confirms.
A pool column depends only on the columns before it (R = base − what was
paid before it), so fixing them in order keeps the rounds few.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from settlement.batchrun import prepare_chunk, prepare_range
from settlement.engine import UNLIMITED, Tables

from . import partition as pt

BLOCK_BYTES = 16 << 20
"""Bytes of JSON lines per read task (~13,000 realistic claims)."""
GROUP_BLOCKS = 4
"""Blocks per output group: the unit the client fetches and writes (~25 MB of results)."""

Job = tuple[str, str, int, int]
"""("jsonl", path, first byte, end byte) or ("parquet", path, row group, 0)."""


@dataclass
class Summary:
    lines: int = 0
    claims: int = 0
    partitions: int = 0
    blocks: int = 0
    rounds: list[tuple[list[int], int, int]] = field(default_factory=list)
    """Per round: (pool columns, affected claims, claims settled again)."""
    seconds: dict[str, float] = field(default_factory=dict)

    def line(self) -> str:
        again = sum(r[2] for r in self.rounds)
        return (
            f"settled {self.claims} claims ({self.lines} lines, {self.blocks} blocks) in {self.partitions} "
            f"partitions; pools: {len(self.rounds)} rounds, {again} claims settled again; "
            + ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        )


def input_jobs(path: str, block_bytes: int = BLOCK_BYTES) -> list[Job]:
    """The read tasks of an input file or directory (its files in name order; *.parquet is Parquet)."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    elif root.is_file():
        files = [root]
    else:
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
    jobs: list[Job] = []
    for file in files:
        name = str(file.resolve())
        if file.suffix == ".parquet":
            import pyarrow.parquet as pq

            groups = pq.ParquetFile(name).metadata.num_row_groups
            jobs.extend(("parquet", name, g, 0) for g in range(groups))
        else:
            size = file.stat().st_size
            jobs.extend(("jsonl", name, s, min(s + block_bytes, size)) for s in range(0, size, block_bytes))
    return jobs


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def parquet_lines(path: str, row_group: int) -> list[bytes]:
    """One row group of claims as JSON lines.

    A string column ``claim`` holds one JSON claim a row (as `settlement simulate` reads Parquet); else the
    columns are SPEC §3's keys, nested (structs, a list of item structs), and a null is a key left out.
    """
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    if "claim" in source.schema_arrow.names:
        texts = source.read_row_group(row_group, columns=["claim"]).column(0).to_pylist()
        return [t.encode() for t in texts if t]
    table = source.read_row_group(row_group)
    lines: list[bytes] = []
    for batch in table.to_batches(max_chunksize=10_000):
        lines.extend(orjson.dumps(_without_nulls(row), default=str) for row in batch.to_pylist())
    return lines


def read_job(block: int, job: Job, tables: Tables, parts: int) -> pt.BlockPieces:
    """A read task: one block of input read and checked (the batch reader), split by person."""
    kind, path, a, b = job
    chunk = prepare_range((path, a, b), tables) if kind == "jsonl" else prepare_chunk(parquet_lines(path, a), tables)
    return pt.split_chunk(block, chunk, parts)


class Progress:
    """A progress bar on stderr when it is a terminal; otherwise it only waits."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.on = bool(getattr(self.stream, "isatty", lambda: False)())

    def wait(self, label: str, futures: Sequence[Any]) -> None:
        from distributed import wait

        if not self.on:
            wait(futures)  # type: ignore[no-untyped-call]
        else:
            total = len(futures)
            while True:
                done = sum(1 for f in futures if f.done())
                filled = 30 * done // max(total, 1)
                self.stream.write(f"\r{label:<24} [{'#' * filled}{' ' * (30 - filled)}] {done}/{total}")
                self.stream.flush()
                if done == total:
                    break
                time.sleep(0.2)
            self.stream.write("\n")
        for f in futures:
            if f.status == "error":
                f.result()  # raises the task's exception here


@dataclass(frozen=True)
class Output:
    """How results are written: per partition and output group (render), the parse errors of a group's
    blocks (errors), both merged in input order (assemble). Module-level functions: workers import them."""

    render: Callable[[pt.Partition, Tables, Any], list[Any]]
    errors: Callable[[int, list[pt.BlockPieces], Tables], Any]
    assemble: Callable[..., Any]


JSON_LINES = Output(pt.render_json, pt.error_piece, pt.assemble)


def _bounds(blocks: int, cuts: int) -> np.ndarray:
    """Keys where each of `cuts` ranges of consecutive blocks starts, and the end."""
    edges = np.unique(np.linspace(0, blocks, max(cuts, 1) + 1).round().astype(np.int64))
    return pt.key_of(edges, 0)


@dataclass
class Settled:
    """A run's final partitions on the cluster (futures), the blocks' errors and sizes (futures), its numbers."""

    partitions: list[Any]
    metas: list[Any]
    tables: Any
    """The Tables, scattered to every worker."""
    workers: int
    summary: Summary


def settle_partitions(
    client: Any, jobs: list[Job], tables: Tables, parts: int, progress: Progress | None = None
) -> Settled:
    """Reads `jobs` into person partitions and settles them until the pools are exact (steps 1-3)."""
    progress = progress or Progress(stream=open(os.devnull, "w"))  # noqa: SIM115
    summary = Summary(partitions=parts, blocks=len(jobs))
    submit = client.submit
    workers = len(client.scheduler_info().get("workers", {})) or 1
    t0 = time.perf_counter()
    tables_f = client.scatter(tables, broadcast=True, hash=False)
    client.run(pt.warm_up, tables)  # every worker at once, before the first block
    summary.seconds["start"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    blocks = [submit(read_job, b, job, tables_f, parts, pure=False) for b, job in enumerate(jobs)]
    metas = [submit(pt.block_meta, f, pure=False) for f in blocks]
    partitions = [
        submit(pt.build_partition, p, [submit(pt.piece_for, f, p, pure=False) for f in blocks], tables_f, pure=False)
        for p in range(parts)
    ]
    progress.wait("read, pass 1", blocks + partitions)
    del blocks
    summary.seconds["read and pass 1"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    limits = pt.pool_limits(tables)
    limited = [c for c in range(limits.shape[1]) if bool((limits[:, c] < UNLIMITED).any())]
    ranges = _bounds(len(jobs), min(parts, workers))  # one prefix task per worker and round

    def pool_round(cols: list[int]) -> int:
        nonlocal partitions
        recs = [submit(pt.records, part, cols, ranges, pure=False) for part in partitions]
        totals = client.gather([submit(pt.range_totals, r, pure=False) for r in recs])
        offsets: list[dict[int, np.ndarray]] = []
        running: dict[int, np.ndarray] = {}
        for r in range(ranges.shape[0] - 1):
            offsets.append({y: v.copy() for y, v in running.items()})
            for per_partition in totals:
                for y, v in per_partition[r].items():
                    running[y] = running.get(y, np.zeros(len(cols), dtype=np.int64)) + v
        before = [
            submit(pt.range_prefix, offsets[r], *[submit(pt.range_piece, rec, r, pure=False) for rec in recs],
                   pure=False)
            for r in range(ranges.shape[0] - 1)
        ]
        pairs = [
            submit(pt.apply_view, part, cols, tables_f,
                   *[submit(_item, b, p, pure=False) for b in before], pure=False)
            for p, part in enumerate(partitions)
        ]
        partitions = [submit(pt.partition_of, x, pure=False) for x in pairs]
        stats = client.gather([submit(pt.stats_of, x, pure=False) for x in pairs])
        progress.wait(f"pools {cols}", partitions)
        affected = int(sum(s.affected for s in stats))
        summary.rounds.append((cols, affected, sum(s.settled for s in stats)))
        return affected

    for c in limited:  # each pool in schedule order, the later ones still unlimited
        pool_round([c])
    rounds = 0
    while limited and pool_round(limited):  # all together until nothing changes (the proof of exactness)
        rounds += 1
        if rounds > 1000:
            raise RuntimeError("pool views did not settle after 1000 rounds")
    summary.seconds["pools"] = time.perf_counter() - t0
    summary.lines = sum(client.gather([submit(_size, m, pure=False) for m in metas]))
    summary.claims = sum(client.gather([submit(len, part, pure=False) for part in partitions]))
    return Settled(partitions, metas, tables_f, workers, summary)


def settle_on_cluster(
    client: Any,
    jobs: list[Job],
    tables: Tables,
    write: Callable[[bytes], Any],
    parts: int,
    progress: Progress | None = None,
    output: Output | None = None,
) -> Summary:
    """Settles the input of `jobs` on a Dask client's cluster; writes the results in input order (step 4).

    write() gets what `output` assembles per group of blocks: by default the §6 JSON lines as bytes.
    """
    output = output or JSON_LINES
    if not jobs:
        return Summary(partitions=parts)
    run = settle_partitions(client, jobs, tables, parts, progress)
    summary, metas, submit = run.summary, run.metas, client.submit
    t0 = time.perf_counter()
    groups = _bounds(len(jobs), -(-len(jobs) // GROUP_BLOCKS))
    rendered = [submit(output.render, part, run.tables, groups, pure=False) for part in run.partitions]
    run.partitions.clear()  # each partition is freed once rendered: its results are text from then on
    n_groups = groups.shape[0] - 1
    # each rendered partition split into its groups at once, then released: the groups wait (or spill) one
    # by one; fetching them from the whole rendered list later unspilled the list once per group
    pieces = [[submit(_item, r, g, pure=False) for r in rendered] for g in range(n_groups)]
    del rendered
    first_block = [int(g >> 32) for g in groups.tolist()]
    window = 2 * run.workers
    pending: list[Any] = []

    def assemble(g: int) -> Any:
        errors = submit(output.errors, first_block[g], metas[first_block[g] : first_block[g + 1]], run.tables,
                        pure=False)
        group, pieces[g] = pieces[g], []
        return submit(output.assemble, errors, *group, pure=False)

    for g in range(n_groups):
        pending.append(assemble(g))
        if len(pending) > window:
            write(pending.pop(0).result())
    while pending:
        write(pending.pop(0).result())
    summary.seconds["write"] = time.perf_counter() - t0
    return summary


def _item(values: list[Any], i: int) -> Any:
    return values[i]


def _size(meta: pt.BlockPieces) -> int:
    return int(meta.size)
