"""Audit replay (重算稽核): every stored claim settled again from empty, in commit order, and compared.

The stored settlements and reversals are read in event order (``settlement_events.seq``,
which is commit order for any two events touching the same person-year or pool). Claims are
replayed in batches through the one engine, with the scheme and category the settlement
used; a reversal takes the replayed settlement's contribution back out before any later
claim. Batches end only where they must: before a reversal, and right after a settlement
that is reversed later (its contribution is then the change of its person-year row over
the batch, which holds no other claim of that person-year, and its charity on the pools).

Compared: each settlement's amounts, schedule version and pathway; at the end (a full run),
each person-year's totals and each pool's use with the stored rows. :func:`replay` is a
function over an iterable of event batches so another executor can feed it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import orjson

from settlement.batchrun import PreparedChunk, prepare_chunk
from settlement.engine import Accumulators, BatchResult, ClaimBatch, Tables, settle
from settlement.engine.state import EMERGENCY_RELIEF
from settlement.engine.totals import COLUMNS, PERSON_COLUMNS, TOTALS
from settlement.money import format_fen
from settlement.schedules.types import CATEGORIES, SCHEMES
from settlement.service.settlements.models import AMOUNTS  # the row's <name>_fen columns, compared

I64 = npt.NDArray[np.int64]
B8 = npt.NDArray[np.bool_]
BATCH = 20_000


def claim_line(body: str | bytes, scheme: str | None, category: str | None) -> bytes:
    """A stored request body as a claim line with the scheme and category the settlement used (the
    registry's: a body that states them states the same, else the service had refused it). An
    unidentified patient has neither (scheme None): the body is taken as it is."""
    raw = body.encode() if isinstance(body, str) else body
    if scheme is None or (b'"scheme"' in raw and b'"category"' in raw):
        return raw
    claim = orjson.loads(raw)
    claim.setdefault("patient", {})
    claim["patient"]["scheme"] = scheme
    claim["patient"]["category"] = category
    return orjson.dumps(claim)


@dataclass
class Events:
    """A run of stored events in commit order, as columns (what the replay needs once the bodies are read)."""

    seq: I64
    reversal: B8
    """The event is a reversal (else a settlement)."""
    settlement_seq: I64
    label: list[str]
    """"settlement id (hospital/claim)", how a difference names the settlement."""
    version: I64
    """The stored schedule version's index in the tables (-1: a version they do not have)."""
    version_id: list[str]
    single_disease: B8
    """The stored pathway is single_disease."""
    pathway: list[str]
    amounts: I64
    """[event, AMOUNTS]: the stored amounts."""
    reversed_later: B8
    person: list[tuple[str, int]]
    """(person id, policy year): the accumulator row it uses."""
    day: I64 | None
    """The event's day in the service's time zone (proleptic ordinal), when a date bound asks for it."""

    def __len__(self) -> int:
        return int(self.seq.shape[0])


@dataclass
class Step:
    """A replay step: settled events [start, stop) of an Events with their prepared chunk, or one reversal
    (chunk None, stop = start + 1)."""

    start: int
    stop: int
    chunk: PreparedChunk | None


def plan(events: Events, start: int = 0, batch: int = BATCH) -> list[Step]:
    """The steps of events[start:]: settled runs batched, a reversal alone. A batch ends before a reversal,
    right after a settlement reversed later, and before a second claim of that one's person-year in it."""
    steps: list[Step] = []
    first = start
    keys: set[tuple[str, int]] = set()
    for i in range(start, len(events)):
        if events.reversal[i]:
            if i > first:
                steps.append(Step(first, i, None))
            steps.append(Step(i, i + 1, None))
            first = i + 1
            keys.clear()
            continue
        later = bool(events.reversed_later[i])
        if later and events.person[i] in keys and i > first:  # its person-year must not be in its batch before it
            steps.append(Step(first, i, None))
            first = i
            keys.clear()
        keys.add(events.person[i])
        if later or i + 1 - first >= batch:  # it ends its batch: its contribution is the row's change
            steps.append(Step(first, i + 1, None))
            first = i + 1
            keys.clear()
    if first < len(events):
        steps.append(Step(first, len(events), None))
    return steps


def prepare_steps(
    events: Events, bodies: list[bytes], schemes: list[str | None], categories: list[str | None], tables: Tables
) -> list[Step]:
    """Plans the steps and reads each settled run's bodies (the scanner and the checks, as `settle` does),
    with the scheme and category each settlement used."""
    steps = plan(events)
    for step in steps:
        if events.reversal[step.start]:
            continue
        span = range(step.start, step.stop)
        chunk = prepare_chunk([claim_line(bodies[k], schemes[k], categories[k]) for k in span], tables)
        if chunk.batch is not None:
            failed = {k for k, _ in chunk.errors}
            kept = [step.start + k for k in range(len(span)) if k not in failed]
            b = chunk.batch
            # whatever the body states, the scheme and category the settlement used; an unidentified patient
            # has none (None stored) and keeps the batch's placeholder (prepare_chunk's 0, read by nothing)
            b.scheme = np.array(
                [int(b.scheme[i]) if schemes[k] is None else SCHEMES.index(schemes[k]) for i, k in enumerate(kept)],
                dtype=np.int64,
            )
            b.category = np.array(
                [
                    int(b.category[i]) if categories[k] is None else CATEGORIES.index(categories[k])
                    for i, k in enumerate(kept)
                ],
                dtype=np.int64,
            )
        step.chunk = chunk
    return steps


def events_from_rows(
    rows: list[Any], tables: Tables, tz: ZoneInfo, until: dt.date | None, need_day: bool
) -> tuple[Events, list[bytes], list[str | None], list[str | None], bool]:
    """Rows of EVENTS_SQL as Events, up to the events of day `until` (inclusive); also the bodies, schemes and
    categories, and whether `until` cut the rows short."""
    versions = {v.id: i for i, v in enumerate(tables.schedules.versions)}
    day = np.array([_day(r[2], tz).toordinal() for r in rows], dtype=np.int64) if need_day or until else None
    stopped = False
    if until is not None and day is not None:
        beyond = np.flatnonzero(day > until.toordinal())
        if beyond.size:
            stopped = True
            rows, day = rows[: int(beyond[0])], day[: int(beyond[0])]
    n = len(rows)
    width = len(AMOUNTS)
    events = Events(
        seq=np.array([r[0] for r in rows], dtype=np.int64),
        reversal=np.array([r[1] == "reversed" for r in rows], dtype=np.bool_),
        settlement_seq=np.array([r[3] for r in rows], dtype=np.int64),
        label=[f"{r[4]} ({r[5]}/{r[6]})" for r in rows],
        version=np.array([versions.get(r[10], -1) for r in rows], dtype=np.int64),
        version_id=[r[10] for r in rows],
        single_disease=np.array([r[11] == "single_disease" for r in rows], dtype=np.bool_),
        pathway=[r[11] for r in rows],
        amounts=np.array([r[15:] for r in rows], dtype=np.int64).reshape(n, width),
        reversed_later=np.array([r[12] == "reversed" for r in rows], dtype=np.bool_),
        person=[(r[13], r[14]) for r in rows],
        day=day if need_day else None,
    )
    bodies = [r[7].encode() if isinstance(r[7], str) else bytes(r[7]) for r in rows]
    return events, bodies, [r[8] for r in rows], [r[9] for r in rows], stopped


@dataclass
class Replay:
    """The replay's state: accumulators in claim order, rows by (person, year) and year, the differences."""

    tables: Tables
    compare_from: dt.date | None = None
    person_rows: dict[tuple[str, int], int] = field(default_factory=dict)
    year_rows: dict[int, int] = field(default_factory=dict)
    acc: Accumulators = field(init=False)
    contributions: dict[int, tuple[int, I64 | None, int, I64]] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)
    settled: int = 0
    reversals: int = 0

    def __post_init__(self) -> None:
        self.acc = Accumulators.zeros(0, 0, self.tables.n_funds)
        self._version_ids = [v.id for v in self.tables.schedules.versions]

    def differ(self, text: str, events: Events | None = None, i: int = 0, rank: int = 0) -> None:
        """Records a difference; one of a settlement committed before --from is left out. A settlement's
        differences come in commit order, each settlement's by rank (0 cannot be read, 1 version or
        pathway, 2 amounts), whatever the batches."""
        day = None if events is None or events.day is None else int(events.day[i])
        if self.compare_from is None or day is None or day >= self.compare_from.toordinal():
            self.differences.append(text)

    def run(self, events: Events, steps: list[Step]) -> None:
        """Replays the steps of `events`, in order, after every earlier run."""
        for step in steps:
            if events.reversal[step.start]:
                self.reverse(events, step.start)
            else:
                assert step.chunk is not None
                self.settle_step(events, step.start, step.stop, step.chunk)

    def settle_step(self, events: Events, start: int, stop: int, chunk: PreparedChunk) -> None:
        """Settled events [start, stop), read into `chunk`; only the last may be one reversed later (its
        contribution is kept). The chunk is left as it was (a run may be replayed again)."""
        self.settled += stop - start
        failed = {k for k, _ in chunk.errors}
        found = [
            (start + k, 0, f"{events.label[start + k]}: cannot be settled again: {text.decode()}")
            for k, text in chunk.errors
        ]
        if chunk.batch is not None:
            batch = replace(chunk.batch)
            idx = np.array([start + k for k in range(stop - start) if k not in failed], dtype=np.int64)
            rows = self.person_rows
            person_map = np.array([rows.setdefault(key, len(rows)) for key in chunk.person_keys], dtype=np.int64)
            year_map = np.array(
                [self.year_rows.setdefault(y, len(self.year_rows)) for y in chunk.years], dtype=np.int64
            )
            # an unidentified patient keeps -1: no person-year row
            batch.person_year = np.where(batch.person_year >= 0, np.append(person_map, -1)[batch.person_year], -1)
            batch.year_index = year_map[batch.year_index]
            self.acc = self.acc.grow(len(rows), len(self.year_rows))
            assert self.acc.person is not None
            last = idx.shape[0] - 1
            keep = bool(events.reversed_later[idx[last]]) if last >= 0 else False
            person_row = int(batch.person_year[last]) if last >= 0 else -1
            before = self.acc.person[person_row].copy() if keep and person_row >= 0 else None
            result = self.engine(events, idx, batch)
            assert self.acc.person is not None
            if keep:
                self.contributions[int(events.settlement_seq[idx[last]])] = (
                    person_row,
                    self.acc.person[person_row] - before if before is not None else None,
                    int(batch.year_index[last]),
                    # the pools' columns: the charity funds', then the emergency relief fund's
                    np.append(result.charity_by_fund[last], result.emergency_relief[last]),
                )
            found += self._compare(events, idx, batch, result)
        for k, rank, text in sorted(found, key=lambda f: (f[0], f[1])):
            self.differ(text, events, k, rank)

    def engine(self, events: Events, idx: I64, batch: ClaimBatch) -> BatchResult:
        """The engine on a batch after every earlier one (its claims are events idx); keeps the accumulators."""
        result = settle(batch, self.tables, self.acc)
        self.acc = result.accumulators
        return result

    def _compare(self, events: Events, idx: I64, batch: Any, result: Any) -> list[tuple[int, int, str]]:
        replayed = np.stack([getattr(result, name) for name in AMOUNTS], axis=1)
        stored = events.amounts[idx]
        wrong = (replayed != stored).any(axis=1) | (result.error != 0)
        fixed = np.asarray(result.pathway_fixed, dtype=np.bool_)
        other = (batch.version != events.version[idx]) | (fixed != events.single_disease[idx])
        found: list[tuple[int, int, str]] = []
        for i in np.flatnonzero(other).tolist():
            k = int(idx[i])
            version = self._version_ids[int(batch.version[i])]
            pathway = "single_disease" if fixed[i] else "standard"
            found.append(
                (
                    k,
                    1,
                    f"{events.label[k]}: stored {events.version_id[k]}/{events.pathway[k]},"
                    f" replayed {version}/{pathway}",
                )
            )
        for i in np.flatnonzero(wrong).tolist():
            k = int(idx[i])
            if result.error[i]:
                found.append((k, 2, f"{events.label[k]}: replayed as an error (no_standard)"))
                continue
            parts = [
                f"{name} stored {format_fen(int(stored[i, j]))}, replayed {format_fen(int(replayed[i, j]))}"
                for j, name in enumerate(AMOUNTS)
                if stored[i, j] != replayed[i, j]
            ]
            found.append((k, 2, f"{events.label[k]}: " + "; ".join(parts)))
        return found

    def reverse(self, events: Events, i: int) -> None:
        """Takes the replayed settlement's contribution back out (nothing when it could not be replayed)."""
        self.reversals += 1
        found = self.contributions.pop(int(events.settlement_seq[i]), None)
        if found is None:
            return
        row, person_delta, year, pool_delta = found
        assert self.acc.person is not None
        if person_delta is not None:
            self.acc.person[row] -= person_delta
        self.acc.pool_used[year] -= pool_delta


def replay(parts: Iterable[tuple[Events, list[Step]]], tables: Tables, compare_from: dt.date | None = None) -> Replay:
    """Replays runs of events with their steps (in commit order) from empty."""
    state = Replay(tables, compare_from)
    for events, steps in parts:
        state.run(events, steps)
    return state


def replayed_totals(
    state: Replay,
) -> tuple[dict[tuple[str, int], list[int]], dict[tuple[str, int], int], set[int]]:
    """The replay's person-year rows (PERSON_COLUMNS + funds), pool use per (fund, year) and the years seen."""
    funds = list(state.tables.schedules.fund_ids)
    assert state.acc.person is not None
    width = PERSON_COLUMNS + len(funds)
    rows = state.acc.person[:, :width].tolist()
    people = {key: rows[r] for key, r in state.person_rows.items()}
    pools: dict[tuple[str, int], int] = {}
    for year, r in state.year_rows.items():
        for j, fund in enumerate(funds):
            pools[(fund, year)] = int(state.acc.pool_used[r, j])
        pools[(EMERGENCY_RELIEF, year)] = int(state.acc.pool_used[r, -1])
    return people, pools, set(state.year_rows)


def total_differences(
    funds: list[str],
    people: dict[tuple[str, int], list[int]],
    pools: dict[tuple[str, int], int],
    years: set[int],
    stored_people: dict[tuple[str, int], list[int]],
    stored_pools: dict[tuple[str, int], int],
) -> list[str]:
    """Each person-year's totals and each pool's use (every fund of the tables in each year replayed, and
    every stored pool): the replay's against the stored rows."""
    names = [
        *(t.field if t.key is None else f"{t.field}[{t.key}]" for t in TOTALS),
        *(f"charity_paid[{f}]" for f in funds),
    ]
    width = PERSON_COLUMNS + len(funds)
    out: list[str] = []
    for key in sorted(set(people) | set(stored_people)):
        replayed = people.get(key, [0] * width)
        stored = stored_people.get(key, [0] * width)
        if replayed != stored:
            parts = [
                f"{n} stored {format_fen(s)}, replayed {format_fen(r)}"
                for n, s, r in zip(names, stored, replayed, strict=True)
                if s != r
            ]
            out.append(f"person {key[0]} year {key[1]}: " + "; ".join(parts))
    for fund, year in sorted({(f, y) for f in funds for y in years} | set(stored_pools)):
        replayed_used = pools.get((fund, year), 0)
        stored_used = stored_pools.get((fund, year), 0)
        if replayed_used != stored_used:
            out.append(
                f"pool {fund} {year}: used stored {format_fen(stored_used)}, replayed {format_fen(replayed_used)}"
            )
    return out


def compare_totals(
    state: Replay, stored_people: dict[tuple[str, int], list[int]], stored_pools: dict[tuple[str, int], int]
) -> None:
    """Each person-year's totals and each pool's use: replay against the stored rows."""
    people, pools, years = replayed_totals(state)
    funds = list(state.tables.schedules.fund_ids)
    for text in total_differences(funds, people, pools, years, stored_people, stored_pools):
        state.differ(text)


# -- the database side ---------------------------------------------------------

EVENTS_SQL = (
    "SELECT e.seq, e.kind, e.at, s.seq, s.settlement_id, s.hospital_id, s.claim_id, s.request_body, s.scheme,"
    " s.category, s.schedule_version, s.pathway, s.status, s.person_id, s.policy_year, "
    + ", ".join(f"s.{name}_fen" for name in AMOUNTS)
    + " FROM settlement_events e JOIN settlements s ON s.seq = e.settlement_seq"
)
RANGE = 25_000
"""Events read and prepared at a time (on PostgreSQL, a seq range a worker reads on its own connection)."""


def _prepared(
    rows: list[Any], tables: Tables, tz: ZoneInfo, until: dt.date | None, need_day: bool
) -> tuple[Events, list[Step], bool]:
    events, bodies, schemes, categories, stopped = events_from_rows(rows, tables, tz, until, need_day)
    return events, prepare_steps(events, bodies, schemes, categories, tables), stopped


def read_prepared(
    conn: Any, tables: Tables, tz: ZoneInfo, until: dt.date | None, need_day: bool
) -> Iterator[tuple[Events, list[Step]]]:
    """The stored events in commit order, read and prepared in this process, RANGE at a time."""
    from sqlalchemy import text

    result = conn.execution_options(stream_results=True, yield_per=RANGE).execute(text(EVENTS_SQL + " ORDER BY e.seq"))
    for part in result.partitions(RANGE):
        events, steps, stopped = _prepared(list(part), tables, tz, until, need_day)
        yield events, steps
        if stopped:
            return


_worker: dict[str, Any] = {}


def connect_reader(conninfo: str) -> Any:
    """A connection for reading seq ranges: the reading processes are the parallelism, so no parallel plan
    (a range's Gather Merge took 300 ms of PostgreSQL's time where the plain nested loop took 180 ms)."""
    import psycopg

    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute("SET max_parallel_workers_per_gather = 0")
    return conn


def _init_worker(conninfo: str, tables: Tables, tz: str, until: dt.date | None, need_day: bool) -> None:
    _worker.update(conn=connect_reader(conninfo), tables=tables, tz=ZoneInfo(tz), until=until, need_day=need_day)


def _read_range(lo: int, hi: int) -> tuple[Events, list[Step], bool]:
    """In a worker: the events of seq [lo, hi) read on its own connection, and prepared."""
    w = _worker
    rows = w["conn"].execute(EVENTS_SQL + " WHERE e.seq >= %s AND e.seq < %s ORDER BY e.seq", (lo, hi)).fetchall()
    return _prepared(rows, w["tables"], w["tz"], w["until"], w["need_day"])


def read_parallel(
    engine: Any, tables: Tables, tz: ZoneInfo, until: dt.date | None, need_day: bool, workers: int
) -> Iterator[tuple[Events, list[Step]]]:
    """read_prepared's runs on PostgreSQL, read in seq ranges by `workers` processes, each on its own
    connection (bounded read-ahead), and yielded in commit order."""
    with engine.connect() as conn:
        lo, hi = conn.exec_driver_sql("SELECT min(seq), max(seq) FROM settlement_events").one()
    if lo is None:
        return
    conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    prepare_chunk([b"{}"], tables)  # the scanner's compiled code loaded before the workers fork
    bounds = [*range(int(lo), int(hi) + 1, RANGE), int(hi) + 1]
    ranges = itertools.pairwise(bounds)
    with ProcessPoolExecutor(
        workers,
        multiprocessing.get_context("fork"),
        initializer=_init_worker,
        initargs=(conninfo, tables, str(tz), until, need_day),
    ) as pool:
        in_flight: deque[Future[tuple[Events, list[Step], bool]]] = deque(
            pool.submit(_read_range, a, b) for a, b in itertools.islice(ranges, 2 * workers)
        )
        while in_flight:
            events, steps, stopped = in_flight.popleft().result()
            yield events, steps
            if stopped:
                for f in in_flight:
                    f.cancel()
                return
            nxt = next(ranges, None)
            if nxt is not None:
                in_flight.append(pool.submit(_read_range, *nxt))


def _day(at: Any, tz: ZoneInfo) -> dt.date:
    if isinstance(at, dt.datetime) and at.tzinfo is not None:
        return at.astimezone(tz).date()
    if isinstance(at, str):
        at = dt.datetime.fromisoformat(at)
    stamp: dt.datetime = at if at.tzinfo is not None else at.replace(tzinfo=dt.UTC)
    return stamp.astimezone(tz).date()


def read_totals(conn: Any, funds: list[str]) -> tuple[dict[tuple[str, int], list[int]], dict[tuple[str, int], int]]:
    """The stored person-year totals (in the replay's column order) and pool use per (fund, year)."""
    from sqlalchemy import text

    people: dict[tuple[str, int], list[int]] = {}
    for row in conn.execute(
        text(
            f"SELECT person_id, policy_year, {', '.join(COLUMNS)} FROM person_year_accumulators"
        )
    ):
        people[(row[0], int(row[1]))] = [int(v) for v in row[2:]] + [0] * len(funds)
    for person, year, fund, paid in conn.execute(
        text("SELECT person_id, policy_year, fund_id, paid FROM person_year_charity")
    ):
        entry = people.setdefault((person, int(year)), [0] * (PERSON_COLUMNS + len(funds)))
        if fund in funds:
            entry[PERSON_COLUMNS + funds.index(fund)] += int(paid)
    pools = {
        (f, int(y)): int(u)
        for f, y, u in conn.execute(
            text("SELECT fund_id, policy_year, SUM(used) FROM fund_pools GROUP BY fund_id, policy_year")
        )
    }
    return people, pools


def audit(
    engine: Any, tables: Tables, tz: ZoneInfo, start: dt.date | None, end: dt.date | None, workers: int | None = None
) -> Replay:
    """Replays the database behind `engine`; differences of results committed from `start`, and of the
    totals when the whole history is replayed (no `end`).

    On PostgreSQL the events are read and prepared by `workers` processes (default: one per core) in seq
    ranges, each on its own connection; the replay itself runs here, in commit order."""
    workers = workers or os.cpu_count() or 1
    need_day = start is not None
    parallel = engine.dialect.name == "postgresql" and workers > 1
    if parallel:
        state = replay(read_parallel(engine, tables, tz, end, need_day, workers), tables, start)
    with engine.connect() as conn:
        if not parallel:
            state = replay(read_prepared(conn, tables, tz, end, need_day), tables, start)
        if end is None:
            people, pools = read_totals(conn, list(tables.schedules.fund_ids))
            compare_totals(state, people, pools)
    return state


__all__ = [
    "Events",
    "Replay",
    "Step",
    "audit",
    "claim_line",
    "compare_totals",
    "connect_reader",
    "events_from_rows",
    "plan",
    "prepare_steps",
    "read_totals",
    "replay",
    "replayed_totals",
    "total_differences",
]
