"""The flags refresher: materializes review flags in ``settlement_flags``, incrementally.

Flags are not computed at the counter (a settle stays as fast as it was): a
refresher runs in the service's background (every ``flags_refresh_seconds``)
and as ``settlement flags refresh``. A run

A. evaluates every settlement not yet checked under the rules in force (its
   ``settlement_flag_checks`` row missing or of another rules digest) above the
   settlement watermark: its claim rules, and the person rules of its person
   (which may now fire on, or stop firing on, the person's earlier settlements);
B. re-evaluates the person rules of persons with a reversal above the event
   watermark, and of persons whose registry entry changed since ``persons_since``;
C. moves the watermarks: a watermark moves up to the *mark* (the highest seq seen at
   ``mark_at``) once the mark is older than ``flags_refresh_margin_seconds``, a bound on
   how long a settle or reversal transaction lives (statement and lock timeouts), so
   no transaction can still commit a seq at or below it. Rows that commit out of seq
   order are therefore never skipped; the cost is re-reading the margin's rows, which
   their check rows (A) or the diff against stored flags (B) make cheap;
D. sums the queue's block totals closed by the seq marks (settlements.rollup), so every
   caller (the service's background loop, ``settlement flags refresh``, the demo's
   seeding) advances both.

Writes are diffs: a flag row is written only when it appears, changes or goes away.
One refresher at a time: each transaction first locks the ``flag_refresh_state`` row
(``FOR UPDATE NOWAIT`` on PostgreSQL: a second refresher gives up at once and says so;
SQLite's write transactions are serialized anyway). Changing the rules file changes
the digest, and the next runs re-check every settlement in batches.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, tuple_
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from settlement.service.db import Database, insert_ignore, is_unavailable, one_of, sqlstate, upsert
from settlement.service.persons.models import Person, PersonCategory
from settlement.service.settlements import rollup
from settlement.service.settlements.models import AMOUNTS, Settlement, SettlementEvent

from .models import FlagCheck, FlagRefreshState, SeqMark, SettlementFlag
from .rules import CLAIM_RULES, PERSON_RULES, ClaimFacts, Period, ReviewRules, Stay, claim_flags, person_flags

log = logging.getLogger("settlement.service.flags")

STATE = "flags"
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
CHUNK = 500
"""Rows per IN list."""


class RefresherBusy(Exception):
    """Another refresher holds the state row."""


@dataclass
class RefreshStats:
    checked: int = 0
    """Settlements whose claim rules were evaluated."""
    persons: int = 0
    """Persons whose person rules were evaluated."""
    added: int = 0
    removed: int = 0
    blocks: int = 0
    """Block totals of the queue summed (settlements.rollup)."""
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _lock_state(session: Session, rules: ReviewRules, now: dt.datetime) -> FlagRefreshState:
    """The state row, created if absent, locked; RefresherBusy if another refresher has it."""
    table = FlagRefreshState.__table__
    assert isinstance(table, Table)
    insert_ignore(
        session,
        table,
        [{"name": STATE, "rules_digest": rules.digest, "settlement_wm": 0, "settlement_mark": 0, "event_wm": 0,
          "event_mark": 0, "mark_at": now, "persons_since": EPOCH, "updated_at": now}],
        ["name"],
    )
    try:
        state = session.scalars(
            select(FlagRefreshState)
            .where(FlagRefreshState.name == STATE)
            .with_for_update(nowait=True)
            .execution_options(populate_existing=True)
        ).one()
    except OperationalError as exc:
        if sqlstate(exc) == "55P03":  # lock_not_available
            raise RefresherBusy from None
        raise
    if state.rules_digest != rules.digest:  # the rules changed: every settlement is checked again
        state.rules_digest = rules.digest
        state.settlement_wm = 0
        state.updated_at = now
        session.flush()
    return state


# -- reading ---------------------------------------------------------------------


def _candidates(session: Session, digest: str, after: int, limit: int) -> list[int]:
    """Seqs above ``after`` not checked under this digest, in order."""
    check = FlagCheck.__table__.alias("c")
    s = Settlement.__table__
    query = (
        select(s.c.seq)
        .select_from(s.outerjoin(check, check.c.settlement_seq == s.c.seq))
        .where(s.c.seq > after, (check.c.settlement_seq.is_(None)) | (check.c.rules_digest != digest))
        .order_by(s.c.seq)
        .limit(limit)
    )
    return list(session.scalars(query))


def _claim_facts(session: Session, seqs: Sequence[int]) -> list[tuple[ClaimFacts, str | None]]:
    s = Settlement
    cols = [getattr(s, f"{name}_fen") for name in AMOUNTS]
    relief = s.result["payments"]["emergency_relief"].as_string()  # of the stored result, only what a rule reads
    out: list[tuple[ClaimFacts, str | None]] = []
    for part in _chunks(seqs):
        rows = session.execute(
            select(s.seq, s.person_id, s.category, s.visit_type, s.admitted, s.discharged, s.pathway,
                   s.request_body, relief, *cols).where(one_of(session, s.seq, part))
        ).all()
        for row in rows:
            fen = {name: int(row[9 + i]) for i, name in enumerate(AMOUNTS)}
            facts = ClaimFacts(
                seq=row.seq, category=row.category, visit_type=row.visit_type, admitted=row.admitted,
                discharged=row.discharged, pathway=row.pathway, fen=fen, request_body=row.request_body,
                emergency_relief=row[8],
            )
            out.append((facts, row.person_id))
    return out


def _person_ids(values: Iterable[str | None]) -> list[str]:
    # an unidentified patient (no registry person) has no person rules
    return sorted({p for p in values if p and len(p) == 18})


def _stays(session: Session, person_ids: Sequence[str]) -> dict[str, list[Stay]]:
    s = Settlement
    out: dict[str, list[Stay]] = defaultdict(list)
    for part in _chunks(person_ids):
        for row in session.execute(
            select(s.seq, s.settlement_id, s.hospital_id, s.claim_id, s.status, s.visit_type, s.category,
                   s.admitted, s.discharged, s.settled_at, s.reversed_at, s.person_id)
            .where(one_of(session, s.person_id, part))
        ):
            out[row.person_id].append(Stay(
                seq=row.seq, settlement_id=row.settlement_id, hospital_id=row.hospital_id, claim_id=row.claim_id,
                status=row.status, visit_type=row.visit_type, category=row.category, admitted=row.admitted,
                discharged=row.discharged, settled_at=row.settled_at, reversed_at=row.reversed_at,
            ))
    return out


def _periods(session: Session, person_ids: Sequence[str]) -> dict[str, list[Period]]:
    out: dict[str, list[Period]] = {}
    for part in _chunks(person_ids):
        for pid in session.scalars(select(Person.person_id).where(one_of(session, Person.person_id, part))):
            out[pid] = []
        for row in session.execute(
            select(PersonCategory.person_id, PersonCategory.category, PersonCategory.valid_from,
                   PersonCategory.valid_to).where(one_of(session, PersonCategory.person_id, part))
        ):
            out.setdefault(row.person_id, []).append(Period(row.category, row.valid_from, row.valid_to))
    return out


# -- writing ---------------------------------------------------------------------

Desired = dict[tuple[int, str], tuple[dict[str, Any], dict[str, Any]]]


def _write_flags(
    session: Session, seqs: Sequence[int], rules_of: Sequence[str], desired: Desired, now: dt.datetime,
    stats: RefreshStats,
) -> None:
    """Makes the stored flags of these settlements and rules equal ``desired``, writing only the difference."""
    f = SettlementFlag
    existing: Desired = {}
    for part in _chunks(seqs):
        for row in session.execute(
            select(f.settlement_seq, f.rule, f.figures, f.threshold).where(
                one_of(session, f.settlement_seq, part), f.rule.in_(rules_of)
            )
        ):
            existing[(row.settlement_seq, row.rule)] = (row.figures, row.threshold)
    gone = [key for key, value in existing.items() if desired.get(key) != value]
    new = [key for key, value in desired.items() if existing.get(key) != value]
    for part in _chunks(gone):
        session.execute(delete(f).where(tuple_(f.settlement_seq, f.rule).in_(list(part))))
    if new:
        session.execute(
            insert(f),
            [{"settlement_seq": seq, "rule": rule, "figures": desired[(seq, rule)][0],
              "threshold": desired[(seq, rule)][1], "at": now} for seq, rule in new],
        )
    stats.removed += len(gone)
    stats.added += len(new)


def _mark_checked(session: Session, seqs: Sequence[int], digest: str, now: dt.datetime) -> None:
    if not seqs:
        return
    table = FlagCheck.__table__
    assert isinstance(table, Table)
    stmt = upsert(session, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["settlement_seq"], set_={"rules_digest": stmt.excluded.rules_digest, "at": stmt.excluded.at}
    )
    session.execute(stmt, [{"settlement_seq": seq, "rules_digest": digest, "at": now} for seq in seqs])


def _persons_pass(session: Session, rules: ReviewRules, person_ids: Sequence[str], now: dt.datetime,
                  stats: RefreshStats) -> None:
    """Re-evaluates the person rules of these persons on all their settlements."""
    if not person_ids:
        return
    stays = _stays(session, person_ids)
    periods = _periods(session, person_ids)
    desired: Desired = {}
    seqs: list[int] = []
    thresholds = {rule: rules.threshold(rule) for rule in PERSON_RULES}
    for pid in person_ids:
        mine = stays.get(pid, [])
        seqs.extend(s.seq for s in mine)
        for (seq, rule), figures in person_flags(rules, mine, periods.get(pid)).items():
            desired[(seq, rule)] = (figures, thresholds[rule])
    _write_flags(session, seqs, PERSON_RULES, desired, now, stats)
    stats.persons += len(person_ids)


def _settlements_batch(session: Session, rules: ReviewRules, seqs: Sequence[int], now: dt.datetime,
                       stats: RefreshStats) -> None:
    facts = _claim_facts(session, seqs)
    thresholds = {rule: rules.threshold(rule) for rule in CLAIM_RULES}
    desired: Desired = {}
    for fact, _pid in facts:
        for rule, figures in claim_flags(rules, fact).items():
            desired[(fact.seq, rule)] = (figures, thresholds[rule])
    _write_flags(session, seqs, CLAIM_RULES, desired, now, stats)
    _persons_pass(session, rules, _person_ids(pid for _f, pid in facts), now, stats)
    _mark_checked(session, seqs, rules.digest, now)
    stats.checked += len(seqs)


# -- a run -----------------------------------------------------------------------


def refresh(
    db: Database,
    rules: ReviewRules,
    *,
    margin: dt.timedelta,
    batch: int = 2000,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> RefreshStats:
    """One run of the refresher (see the module docstring); each batch is its own transaction."""
    stats = RefreshStats()
    started = clock()
    try:
        with db.write() as session:
            state = _lock_state(session, rules, started)
            after = state.settlement_wm
            event_wm = state.event_wm
            persons_since = state.persons_since
            mark_ripe = state.mark_at <= started - margin
            settlement_mark, event_mark = state.settlement_mark, state.event_mark
            session.commit()
        while True:  # A: settlements not checked under these rules
            with db.write() as session:
                _lock_state(session, rules, started)
                seqs = _candidates(session, rules.digest, after, batch)
                if not seqs:
                    break
                _settlements_batch(session, rules, seqs, clock(), stats)
                session.commit()
                after = seqs[-1]
        with db.write() as session:  # B: reversals and registry changes
            _lock_state(session, rules, started)
            s, e = Settlement, SettlementEvent
            reversed_persons = session.scalars(
                select(s.person_id).join(e, e.settlement_seq == s.seq).where(e.seq > event_wm, e.kind == "reversed")
            )
            changed = session.scalars(select(Person.person_id).where(Person.updated_at >= persons_since))
            person_ids = _person_ids([*reversed_persons, *changed])
            for part in _chunks(person_ids, batch):
                _persons_pass(session, rules, part, clock(), stats)
            session.commit()
        with db.write() as session:  # C: the watermarks
            state = _lock_state(session, rules, started)
            if mark_ripe:
                state.settlement_wm = max(state.settlement_wm, settlement_mark)
                state.event_wm = max(state.event_wm, event_mark)
                state.settlement_mark = session.scalar(select(func.coalesce(func.max(Settlement.seq), 0))) or 0
                state.event_mark = session.scalar(select(func.coalesce(func.max(SettlementEvent.seq), 0))) or 0
                state.mark_at = clock()
            state.persons_since = max(state.persons_since, started - margin)
            state.updated_at = clock()
            _mark_seq(session, clock)
            session.commit()
    except RefresherBusy:
        stats.busy = True
        return stats
    stats.blocks = rollup.refresh(db, margin=margin, clock=clock)  # D: the block totals the marks close
    return stats


MARK_EVERY = dt.timedelta(seconds=60)


def _mark_seq(session: Session, clock: Callable[[], dt.datetime]) -> None:
    """A seq mark (reviews.models.SeqMark), at most one a minute: the highest committed seq, read
    between at_lo (before this statement's snapshot) and at_hi (after it)."""
    last = session.scalar(select(func.max(SeqMark.at_hi)))
    at_lo = clock()
    if last is not None and last > at_lo - MARK_EVERY:
        return
    seq = session.scalar(select(func.coalesce(func.max(Settlement.seq), 0))) or 0
    at_hi = max(clock(), at_lo)
    if last is not None and at_hi <= last:
        return
    session.add(SeqMark(at_lo=at_lo, at_hi=at_hi, seq=seq))
    session.flush()


def reset(session: Session) -> None:
    """Forget the watermarks and checks: the next run evaluates every settlement again."""
    session.execute(delete(FlagCheck))
    session.execute(delete(FlagRefreshState))


def status(session: Session) -> dict[str, Any]:
    """The refresher's state and how many settlements wait for their first check."""
    state = session.get(FlagRefreshState, STATE)
    wm = state.settlement_wm if state is not None else 0
    s, c = Settlement.__table__, FlagCheck.__table__
    waiting = session.scalar(
        select(func.count()).select_from(s.outerjoin(c, c.c.settlement_seq == s.c.seq))
        .where(s.c.seq > wm, c.c.settlement_seq.is_(None))
    )
    return {
        "rules_digest": state.rules_digest if state else None,
        "settlement_watermark": wm,
        "updated_at": state.updated_at.isoformat() if state else None,
        "unchecked": int(waiting or 0),
    }


class BackgroundRefresher:
    """Runs :func:`refresh` every ``interval`` seconds in a daemon thread of the service (not a request thread)."""

    def __init__(self, run: Callable[[], RefreshStats], interval: float) -> None:
        self._run = run
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="flags-refresher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                stats = self._run()
                if stats.checked or stats.added or stats.removed or stats.blocks:
                    log.info("flags refreshed: %s", stats.as_dict())
            except Exception as exc:  # the database may be down: try again next time
                if is_unavailable(exc):
                    log.warning("flags refresh: the database is unavailable; next try in %s s", self._interval)
                else:
                    log.exception("flags refresh failed")


__all__ = ["BackgroundRefresher", "RefreshStats", "refresh", "reset", "status"]


def start_refresher(ctx: Any) -> BackgroundRefresher | None:
    """The service's background refresher (None when ``flags_refresh_seconds`` is 0): :func:`refresh`, the
    flags and the queue's block totals, every ``flags_refresh_seconds``."""
    from .rules import rules_at

    settings = ctx.settings
    if settings.flags_refresh_seconds <= 0:
        return None
    rules = rules_at(str(settings.review_rules) if settings.review_rules else None)
    margin = dt.timedelta(seconds=settings.flags_refresh_margin_seconds)

    def run() -> RefreshStats:
        return refresh(ctx.db, rules, margin=margin)

    refresher = BackgroundRefresher(run, settings.flags_refresh_seconds)
    refresher.start()
    return refresher
