"""`settlement simulate --engine dask`: both schedule sets settled on the cluster, then summed per partition.

Each side is settled exactly as `settle --engine dask` settles (pools included),
so its sums are the sequential simulation's; each partition's results go
through the simulation's own summing (`simulate.Side.add_settled`) on its
worker, and the client adds the partitions' sums and the parse errors up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from settlement.engine import Tables
from settlement.simulate import Side, Simulation

from . import partition as pt
from .run import Job, Progress, settle_partitions


def side_sums(part: pt.Partition, tables: Tables, by: tuple[str, ...]) -> Side:
    side = Side(tables, by)
    if len(part):
        side.add_settled(part.batch, part.result, part.discharged)
    side.settler = None  # type: ignore[assignment]  # its accumulators are not needed on the client
    return side


def _errors(meta: pt.BlockPieces) -> int:
    return len(meta.errors)


def simulate_on_cluster(
    client: Any, jobs: list[Job], baseline: Tables, draft: Tables, by: Sequence[str], parts: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """The report of `simulate.simulate` for the input of `jobs`, each side settled on the cluster."""
    sim = Simulation(baseline, draft, by)
    for side, tables in zip(sim.sides, (baseline, draft), strict=True):
        if not jobs:
            break
        run = settle_partitions(client, jobs, tables, parts, progress)
        sums = client.gather([client.submit(side_sums, p, run.tables, sim.by, pure=False) for p in run.partitions])
        side.errors += sum(client.gather([client.submit(_errors, m, pure=False) for m in run.metas]))
        for part in sums:
            side.settled += part.settled
            side.errors += part.errors
            side.sums += part.sums
            for key, row in part.groups.items():
                side.groups[key] = side.groups[key] + row if key in side.groups else row
        sim.claims = run.summary.lines
    return sim.report()
