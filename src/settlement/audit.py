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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import orjson

from settlement.batchrun import prepare_chunk
from settlement.engine import Accumulators, Tables, settle
from settlement.engine.batch import PERSON_COLUMNS
from settlement.engine.state import EMERGENCY_RELIEF
from settlement.money import format_fen
from settlement.schedules.types import CATEGORIES, SCHEMES, VISIT_TYPES
from settlement.service.settlements.models import AMOUNTS  # the row's <name>_fen columns, compared

I64 = npt.NDArray[np.int64]
BATCH = 20_000


def claim_line(body: str, scheme: str | None, category: str | None) -> bytes:
    """A stored request body as a claim line with the scheme and category the settlement used (the
    registry's: a body that states them states the same, else the service had refused it). An
    unidentified patient has neither (scheme None): the body is taken as it is."""
    raw = body.encode()
    if scheme is None or (b'"scheme"' in raw and b'"category"' in raw):
        return raw
    claim = orjson.loads(raw)
    claim.setdefault("patient", {})
    claim["patient"]["scheme"] = scheme
    claim["patient"]["category"] = category
    return orjson.dumps(claim)


@dataclass
class Event:
    seq: int
    kind: str
    settlement_seq: int
    settlement_id: str
    hospital_id: str
    claim_id: str
    body: str
    scheme: str | None
    category: str | None
    schedule_version: str
    pathway: str
    amounts: tuple[int, ...]
    reversed_later: bool
    person: tuple[str, int]
    """(person id, policy year): the accumulator row it uses."""
    day: dt.date
    """The day of the event in the service's time zone."""


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

    def differ(self, text: str, event: Event | None = None) -> None:
        if event is None or self.compare_from is None or event.day >= self.compare_from:
            self.differences.append(text)

    def settle_events(self, events: list[Event]) -> None:
        """Settled events, in order; only the last may be one reversed later (its contribution is kept)."""
        chunk = prepare_chunk([claim_line(e.body, e.scheme, e.category) for e in events], self.tables)
        self.settled += len(events)
        failed = {k for k, _ in chunk.errors}
        for k, text in chunk.errors:
            e = events[k]
            self.differ(
                f"{e.settlement_id} ({e.hospital_id}/{e.claim_id}): cannot be settled again: {text.decode()}", e
            )
        batch = chunk.batch
        if batch is None:
            return
        in_batch = [e for k, e in enumerate(events) if k not in failed]
        # whatever the body states, the scheme and category the settlement used; an unidentified patient
        # has none (None stored) and keeps the batch's placeholder (prepare_chunk's 0, read by nothing)
        batch.scheme = np.array(
            [int(batch.scheme[i]) if e.scheme is None else SCHEMES.index(e.scheme) for i, e in enumerate(in_batch)],
            dtype=np.int64,
        )
        batch.category = np.array(
            [
                int(batch.category[i]) if e.category is None else CATEGORIES.index(e.category)
                for i, e in enumerate(in_batch)
            ],
            dtype=np.int64,
        )
        rows = self.person_rows
        person_map = np.array([rows.setdefault(key, len(rows)) for key in chunk.person_keys], dtype=np.int64)
        year_map = np.array([self.year_rows.setdefault(y, len(self.year_rows)) for y in chunk.years], dtype=np.int64)
        # an unidentified patient keeps -1: no person-year row
        batch.person_year = np.where(batch.person_year >= 0, np.append(person_map, -1)[batch.person_year], -1)
        batch.year_index = year_map[batch.year_index]
        self.acc = self.acc.grow(len(rows), len(self.year_rows))
        assert self.acc.person is not None
        last = len(in_batch) - 1
        keep = in_batch[last].reversed_later if in_batch else False
        person_row = int(batch.person_year[last]) if in_batch else -1
        if keep:
            before = self.acc.person[person_row].copy() if person_row >= 0 else None
        result = settle(batch, self.tables, self.acc)
        self.acc = result.accumulators
        assert self.acc.person is not None
        if keep:
            year = int(batch.year_index[last])
            self.contributions[in_batch[last].settlement_seq] = (
                person_row,
                self.acc.person[person_row] - before if before is not None else None,
                year,
                # the pools' columns: the charity funds', then the emergency relief fund's
                np.append(result.charity_by_fund[last], result.emergency_relief[last]),
            )
        self._compare(in_batch, batch, result)

    def _compare(self, events: list[Event], batch: Any, result: Any) -> None:
        replayed = np.stack([getattr(result, name) for name in AMOUNTS], axis=1)
        stored = np.array([e.amounts for e in events], dtype=np.int64).reshape(len(events), len(AMOUNTS))
        versions = [v.id for v in self.tables.schedules.versions]
        wrong = np.flatnonzero((replayed != stored).any(axis=1) | (result.error != 0))
        pathways = np.where(result.pathway_fixed, 1, 0)
        for i, e in enumerate(events):
            version = versions[int(batch.version[i])]
            pathway = "single_disease" if pathways[i] else "standard"
            if version != e.schedule_version or pathway != e.pathway:
                self.differ(
                    f"{e.settlement_id} ({e.hospital_id}/{e.claim_id}): stored {e.schedule_version}/{e.pathway},"
                    f" replayed {version}/{pathway}",
                    e,
                )
        for i in wrong.tolist():
            e = events[i]
            if result.error[i]:
                self.differ(f"{e.settlement_id} ({e.hospital_id}/{e.claim_id}): replayed as an error (no_standard)", e)
                continue
            parts = [
                f"{name} stored {format_fen(int(stored[i, j]))}, replayed {format_fen(int(replayed[i, j]))}"
                for j, name in enumerate(AMOUNTS)
                if stored[i, j] != replayed[i, j]
            ]
            self.differ(f"{e.settlement_id} ({e.hospital_id}/{e.claim_id}): " + "; ".join(parts), e)

    def reverse(self, event: Event) -> None:
        """Takes the replayed settlement's contribution back out (nothing when it could not be replayed)."""
        self.reversals += 1
        found = self.contributions.pop(event.settlement_seq, None)
        if found is None:
            return
        row, person_delta, year, pool_delta = found
        assert self.acc.person is not None
        if person_delta is not None:
            self.acc.person[row] -= person_delta
        self.acc.pool_used[year] -= pool_delta


def replay(batches: Iterable[list[Event]], tables: Tables, compare_from: dt.date | None = None) -> Replay:
    """Replays event batches (in order) from empty: settled runs batched, reversals applied in their place."""
    state = Replay(tables, compare_from)
    pending: list[Event] = []
    keys: set[tuple[str, int]] = set()

    def flush() -> None:
        if pending:
            state.settle_events(pending)
            pending.clear()
            keys.clear()

    for events in batches:
        for e in events:
            if e.kind == "reversed":
                flush()
                state.reverse(e)
                continue
            if e.reversed_later and e.person in keys:  # its person-year must not be in its batch before it
                flush()
            pending.append(e)
            keys.add(e.person)
            if e.reversed_later or len(pending) >= BATCH:  # it ends its batch: its contribution is the row's change
                flush()
    flush()
    return state


def compare_totals(
    state: Replay, stored_people: dict[tuple[str, int], list[int]], stored_pools: dict[tuple[str, int], int]
) -> None:
    """Each person-year's totals and each pool's use: replay against the stored rows."""
    funds = list(state.tables.schedules.fund_ids)
    assert state.acc.person is not None
    names = [
        *(f"basic_paid[{v}]" for v in VISIT_TYPES),
        "critical_base",
        "critical_paid",
        "assistance_base",
        "assistance_paid",
        *(f"charity_paid[{f}]" for f in funds),
    ]
    width = PERSON_COLUMNS + len(funds)
    for key in sorted(set(state.person_rows) | set(stored_people)):
        row = state.person_rows.get(key)
        replayed = state.acc.person[row, :width].tolist() if row is not None else [0] * width
        stored = stored_people.get(key, [0] * width)
        if replayed != stored:
            parts = [
                f"{n} stored {format_fen(s)}, replayed {format_fen(r)}"
                for n, s, r in zip(names, stored, replayed, strict=True)
                if s != r
            ]
            state.differ(f"person {key[0]} year {key[1]}: " + "; ".join(parts))
    years = {y: r for y, r in state.year_rows.items()}
    keys = {(f, y) for f in funds for y in years} | set(stored_pools)
    for fund, year in sorted(keys):
        r = years.get(year)
        column = -1 if fund == EMERGENCY_RELIEF else funds.index(fund) if fund in funds else None
        replayed_used = int(state.acc.pool_used[r, column]) if r is not None and column is not None else 0
        stored_used = stored_pools.get((fund, year), 0)
        if replayed_used != stored_used:
            state.differ(
                f"pool {fund} {year}: used stored {format_fen(stored_used)}, replayed {format_fen(replayed_used)}"
            )


# -- the database side ---------------------------------------------------------

EVENTS_SQL = (
    "SELECT e.seq, e.kind, e.at, s.seq, s.settlement_id, s.hospital_id, s.claim_id, s.request_body, s.scheme,"
    " s.category, s.schedule_version, s.pathway, s.status, s.person_id, s.policy_year, "
    + ", ".join(f"s.{name}_fen" for name in AMOUNTS)
    + " FROM settlement_events e JOIN settlements s ON s.seq = e.settlement_seq ORDER BY e.seq"
)


def read_events(conn: Any, tz: ZoneInfo, until: dt.date | None) -> Iterator[list[Event]]:
    """The stored events in commit order, in lists of BATCH, up to the events of day `until` (inclusive).

    On PostgreSQL through a server-side psycopg cursor (plain tuples: SQLAlchemy's rows cost as much as the
    engine here), elsewhere through SQLAlchemy's streamed result."""
    from sqlalchemy import text

    if conn.dialect.name == "postgresql":
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor(name="settlement_audit")
        cursor.execute(EVENTS_SQL)
        parts: Iterator[list[Any]] = iter(lambda: cursor.fetchmany(BATCH), [])
    else:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(text(EVENTS_SQL))
        parts = (list(p) for p in result.partitions(BATCH))
    for part in parts:
        out: list[Event] = []
        for row in part:
            day = _day(row[2], tz)
            if until is not None and day > until:
                if out:
                    yield out
                return
            out.append(
                Event(
                    row[0],
                    row[1],
                    row[3],
                    row[4],
                    row[5],
                    row[6],
                    row[7],
                    row[8],
                    row[9],
                    row[10],
                    row[11],
                    row[15:],
                    row[12] == "reversed",
                    (row[13], row[14]),
                    day,
                )
            )
        yield out


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
            "SELECT person_id, policy_year, basic_paid_inpatient, basic_paid_outpatient, basic_paid_chronic_outpatient,"
            " critical_base, critical_paid, assistance_base, assistance_paid FROM person_year_accumulators"
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


def audit(engine: Any, tables: Tables, tz: ZoneInfo, start: dt.date | None, end: dt.date | None) -> Replay:
    """Replays the database behind `engine`; differences of results committed from `start`, and of the
    totals when the whole history is replayed (no `end`)."""
    with engine.connect() as conn:
        state = replay(read_events(conn, tz, end), tables, start)
        if end is None:
            people, pools = read_totals(conn, list(tables.schedules.fund_ids))
            compare_totals(state, people, pools)
    return state


__all__ = ["Event", "Replay", "audit", "claim_line", "compare_totals", "read_events", "read_totals", "replay"]
