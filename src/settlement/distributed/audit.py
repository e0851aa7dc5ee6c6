"""`settlement audit --engine dask`: the audit replay by person partitions on Dask, exact to the fen.

The design of `settle --engine dask` (docs/PERFORMANCE.md §6, `distributed.run`), with reversals:

1. Read tasks: each reads a seq range of the stored events on its own PostgreSQL connection, splits
   them by person (`partition.person_partition`; an unidentified patient's events by settlement),
   and reads each part's bodies into prepared steps (`audit.prepare_steps`: the scanner and checks).
2. A partition replays its persons' events in commit order with `audit.Replay` — settlements through
   the one engine, a reversal taking its settlement's contribution out of the person-year — except
   that every claim reads its own pool row: a *view* of what its pools had paid before it in its
   policy year. Round 1 gives every pool unlimited left.
3. Each round yields every event's pool draws (a claim's; a reversal's, negated) in commit order.
   The client takes prefix sums per policy year over all partitions' draws (sorted by seq) and sends
   each partition its next views. A round whose draws equal the previous round's was settled with the
   views of its own draws: a fixed point, which by induction over commit order is the sequential
   replay claim for claim (the argument of `distributed.run`); so it stops there. Usually three
   rounds: unlimited, the pools' real views, a confirmation.
4. Differences: each settlement's, gathered and put in commit order; the person-year totals (each
   partition's rows) and the pool use (the sums of the draws) compared with the stored rows on the
   client by `audit.total_differences` — the sequential audit's own text and order.

Memory: a worker holds its partitions' prepared claims; the client holds per event its seq, policy
year and draws (8 bytes × (2 + pool columns)), the person-year totals, and the differences.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from settlement.audit import (
    EVENTS_SQL,
    RANGE,
    Events,
    Replay,
    Step,
    connect_reader,
    events_from_rows,
    prepare_steps,
    read_totals,
    replayed_totals,
    total_differences,
)
from settlement.engine import Accumulators, BatchResult, ClaimBatch, Tables, settle
from settlement.engine.state import EMERGENCY_RELIEF

from . import partition as pt

I64 = npt.NDArray[np.int64]


@dataclass
class Piece:
    """One partition's events of one read range, with their prepared steps."""

    events: Events
    steps: list[Step]


def _partition_of(row: Any, parts: int) -> int:
    person = row[13]
    return int(row[3]) % parts if person is None else pt.person_partition(person, parts)


def read_range(
    lo: int, hi: int, conninfo: str, tables: Tables, parts: int, tz: str, need_day: bool
) -> list[Piece | None]:
    """A read task: the events of seq [lo, hi), split by partition and prepared (None: none of its persons)."""
    with connect_reader(conninfo) as conn:
        rows = conn.execute(EVENTS_SQL + " WHERE e.seq >= %s AND e.seq < %s ORDER BY e.seq", (lo, hi)).fetchall()
    split: list[list[Any]] = [[] for _ in range(parts)]
    for row in rows:
        split[_partition_of(row, parts)].append(row)
    out: list[Piece | None] = []
    for part_rows in split:
        if not part_rows:
            out.append(None)
            continue
        events, bodies, schemes, categories, _ = events_from_rows(part_rows, tables, ZoneInfo(tz), None, need_day)
        out.append(Piece(events, prepare_steps(events, bodies, schemes, categories, tables)))
    return out


@dataclass
class Draws:
    """A round's pool draws of one partition's events, in commit order."""

    seq: I64
    year: I64
    draws: I64
    """[event, pool column]: a claim's draws; a reversal's are its settlement's, negated."""


class ViewReplay(Replay):
    """`audit.Replay` whose claims each read their own pool row (the view), recording their draws."""

    def __init__(self, tables: Tables, compare_from: dt.date | None, views: I64 | None) -> None:
        super().__init__(tables, compare_from)
        self.views = views
        """[claim, pool column] in replay order (None: every pool unlimited)."""
        self.cursor = 0
        self.limits = pt.pool_limits(tables)
        self.width = self.limits.shape[1]
        self.years: dict[int, int] = {}
        """Policy year of each settlement reversed later (by settlement seq)."""
        self.out_seq: list[I64] = []
        self.out_year: list[I64] = []
        self.out_draws: list[I64] = []
        self.found: list[tuple[int, int, str]] = []

    def differ(self, text: str, events: Events | None = None, i: int = 0, rank: int = 0) -> None:
        before = len(self.differences)
        super().differ(text, events, i, rank)
        if len(self.differences) > before and events is not None:
            self.found.append((int(events.seq[i]), rank, self.differences.pop()))

    def engine(self, events: Events, idx: I64, batch: ClaimBatch) -> BatchResult:
        m = idx.shape[0]
        if self.views is None:
            view = pt.unlimited_view(self.limits[batch.version])
        else:
            view = self.views[self.cursor : self.cursor + m]
        self.cursor += m
        assert self.acc.person is not None
        batch.year_index = np.arange(m, dtype=np.int64)  # each claim its own pool row
        result = settle(batch, self.tables, Accumulators.interleaved(self.acc.person, view.copy()))
        assert result.accumulators.person is not None
        self.acc = Accumulators.interleaved(result.accumulators.person, self.acc.pool_used)
        last = int(idx[-1])
        if events.reversed_later[last]:
            self.years[int(events.settlement_seq[last])] = int(batch.policy_year[-1])
        self.out_seq.append(events.seq[idx])
        self.out_year.append(np.asarray(batch.policy_year, dtype=np.int64))
        self.out_draws.append(pt.pool_draws(result))
        return result

    def reverse(self, events: Events, i: int) -> None:
        self.reversals += 1
        found = self.contributions.pop(int(events.settlement_seq[i]), None)
        if found is None:
            return
        row, person_delta, _, pool_delta = found
        assert self.acc.person is not None
        if person_delta is not None:
            self.acc.person[row] -= person_delta
        self.cursor += 1  # a reversal holds a place in the views (unused)
        self.out_seq.append(events.seq[i : i + 1])
        self.out_year.append(np.array([self.years.pop(int(events.settlement_seq[i]))], dtype=np.int64))
        self.out_draws.append(-pool_delta.reshape(1, -1))

    def draws(self) -> Draws:
        if not self.out_seq:
            return Draws(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, self.width), np.int64))
        return Draws(np.concatenate(self.out_seq), np.concatenate(self.out_year), np.concatenate(self.out_draws))


@dataclass
class RoundResult:
    """One partition after a round: its draws, whether they changed, its differences and totals."""

    draws: Draws
    changed: bool
    settled: int
    reversals: int
    found: list[tuple[int, int, str]] = field(default_factory=list)
    people: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    years: set[int] = field(default_factory=set)


def replay_partition(
    pieces: list[Piece | None],
    tables: Tables,
    compare_from: dt.date | None,
    views: I64 | None,
    previous: RoundResult | None,
) -> RoundResult:
    """A round: the partition's events replayed in commit order under `views` (None: unlimited pools)."""
    state = ViewReplay(tables, compare_from, views)
    for piece in pieces:
        if piece is not None:
            state.run(piece.events, piece.steps)
    draws = state.draws()
    changed = previous is None or not (
        np.array_equal(previous.draws.draws, draws.draws) and np.array_equal(previous.draws.seq, draws.seq)
    )
    people, _, years = replayed_totals(state)
    return RoundResult(draws, changed, state.settled, state.reversals, state.found, people, years)


def build_pieces(p: int, *ranges: list[Piece | None]) -> list[Piece | None]:
    return [r[p] for r in ranges]


def draws_of(r: RoundResult) -> Draws:
    return r.draws


def changed_of(r: RoundResult) -> bool:
    return r.changed


def without_draws(r: RoundResult) -> RoundResult:
    return dataclasses.replace(r, draws=Draws(r.draws.seq[:0], r.draws.year[:0], r.draws.draws[:0]))


def views_from(all_draws: list[Draws], width: int) -> list[I64]:
    """Per partition, per event in its order: what each pool had paid before it in its policy year."""
    seq = np.concatenate([d.seq for d in all_draws])
    year = np.concatenate([d.year for d in all_draws])
    draws = np.concatenate([d.draws for d in all_draws]).reshape(-1, width)
    order = np.argsort(seq, kind="stable")
    before = np.empty_like(draws)
    year_s, draws_s = year[order], draws[order]
    before_s = np.zeros_like(draws_s)
    for y in np.unique(year_s).tolist():
        rows = np.flatnonzero(year_s == y)
        d = draws_s[rows]
        before_s[rows] = np.cumsum(d, axis=0) - d
    before[order] = before_s
    return np.split(before, np.cumsum([d.seq.shape[0] for d in all_draws])[:-1])


@dataclass
class DaskAudit:
    """What `audit` returns, and the rounds it took."""

    differences: list[str]
    settled: int
    reversals: int
    rounds: int
    seconds: dict[str, float]


def audit_on_cluster(
    client: Any,
    engine: Any,
    tables: Tables,
    tz: ZoneInfo,
    start: dt.date | None,
    end: dt.date | None,
    parts: int,
    progress: Any = None,
    max_rounds: int = 100,
) -> DaskAudit:
    """The sequential `audit.audit` of the PostgreSQL database behind `engine`, on a Dask cluster."""
    from .run import Progress

    if engine.dialect.name != "postgresql":
        raise ValueError("--engine dask audits a PostgreSQL database (the workers read it by seq ranges)")
    progress = progress or Progress(stream=open("/dev/null", "w"))  # noqa: SIM115
    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    with engine.connect() as conn:
        lo, hi = conn.exec_driver_sql("SELECT min(seq), max(seq) FROM settlement_events").one()
        if end is not None and lo is not None:
            bound = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(0), tzinfo=tz)
            cut = conn.exec_driver_sql(
                "SELECT min(seq) FROM settlement_events WHERE at >= %(b)s", {"b": bound}
            ).scalar()
            hi = hi if cut is None else int(cut) - 1
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    submit = client.submit
    tables_f = client.scatter(tables, broadcast=True, hash=False)
    bounds = [*range(int(lo), int(hi) + 1, RANGE), int(hi) + 1] if lo is not None and hi >= lo else []
    reads = [
        submit(read_range, a, b, conninfo, tables_f, parts, str(tz), start is not None, pure=False)
        for a, b in itertools.pairwise(bounds)
    ]
    pieces = [submit(build_pieces, p, *reads, pure=False) for p in range(parts)]
    progress.wait("read", reads + pieces)
    del reads
    seconds["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    width = pt.pool_width(tables)
    results = [submit(replay_partition, pc, tables_f, start, None, None, pure=False) for pc in pieces]
    rounds = 1
    while True:
        progress.wait(f"replay round {rounds}", results)
        if rounds > 1 and not any(client.gather([submit(changed_of, r, pure=False) for r in results])):
            break
        if rounds >= max_rounds:
            raise RuntimeError(f"pool views did not settle after {max_rounds} rounds")
        views = client.scatter(views_from(client.gather([submit(draws_of, r, pure=False) for r in results]), width))
        results = [
            submit(replay_partition, pc, tables_f, start, v, r, pure=False)
            for pc, v, r in zip(pieces, views, results, strict=True)
        ]
        rounds += 1
    seconds["replay"] = time.perf_counter() - t0
    all_draws = client.gather([submit(draws_of, r, pure=False) for r in results])
    final = client.gather([submit(without_draws, r, pure=False) for r in results])
    found = sorted((f for r in final for f in r.found), key=lambda f: (f[0], f[1]))
    differences = [text for _, _, text in found]
    if end is None:
        funds = list(tables.schedules.fund_ids)
        people: dict[tuple[str, int], list[int]] = {}
        years: set[int] = set()
        for r in final:
            people.update(r.people)
            years |= r.years
        pools: dict[tuple[str, int], int] = {}
        names = [*funds[: width - 1], *([None] * (width - 1 - len(funds))), EMERGENCY_RELIEF]
        for d in all_draws:
            for y in np.unique(d.year).tolist():
                sums = d.draws[d.year == y].sum(axis=0).tolist()
                for name, value in zip(names, sums, strict=True):
                    if name is not None:
                        pools[(name, y)] = pools.get((name, y), 0) + int(value)
        with engine.connect() as conn:
            stored_people, stored_pools = read_totals(conn, funds)
        differences += total_differences(funds, people, pools, years, stored_people, stored_pools)
    return DaskAudit(differences, sum(r.settled for r in final), sum(r.reversals for r in final), rounds, seconds)


def audit_command(
    args: Any, engine: Any, tables: Tables, tz: ZoneInfo, start: dt.date | None, end: dt.date | None
) -> DaskAudit:
    """`audit --engine dask`: on the cluster at --scheduler, or on a LocalCluster of one worker per core."""
    from .command import cluster_client
    from .run import Progress

    with cluster_client(args.scheduler) as client:
        workers = len(client.scheduler_info().get("workers", {})) or 1
        return audit_on_cluster(client, engine, tables, tz, start, end, args.partitions or 2 * workers, Progress())


__all__ = ["DaskAudit", "audit_command", "audit_on_cluster", "read_range", "replay_partition", "views_from"]
