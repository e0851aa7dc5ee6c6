"""Database plumbing: the declarative base, engines, sessions, transactions with retry.

Transactions. A request owns its transaction: routes open a session, call
services (which only ``flush``), and commit — through :func:`run_transaction`
for writes, so a deadlock or serialization failure re-runs the whole unit of
work on a fresh session. Nothing is committed by a dependency's teardown, so a
client never sees success for a commit that failed.

SQLite (the embedded default) has no row locks: a write session opens its
transaction with ``BEGIN IMMEDIATE``, taking the database write lock before its
first read, so read-compute-write units serialize exactly as they do under the
PostgreSQL row locks. Reads use deferred transactions and, in WAL mode, never
wait for writers.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import select
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import (
    ARRAY,
    BigInteger,
    DateTime,
    Dialect,
    Engine,
    Integer,
    MetaData,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

from .config import Settings

log = logging.getLogger("settlement.service.db")

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Money is integer fen: BigInteger everywhere. An autoincrementing BigInteger
# key is INTEGER on SQLite, the only type SQLite will number by itself.
Fen = BigInteger
SerialKey = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and always read back time-zone aware (SQLite keeps none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[dt.datetime]:
        """datetime (a TypeDecorator's own is ``object``): the queue's cursor of a settled_at sort reads it."""
        return dt.datetime

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: timestamps must be time-zone aware")
        return value.astimezone(dt.UTC)

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


@dataclass
class Database:
    engine: Engine
    read: sessionmaker[Session]
    """Sessions for reads (and for writes that need no serialization on SQLite)."""
    write: sessionmaker[Session]
    """Sessions for read-compute-write units (``BEGIN IMMEDIATE`` on SQLite)."""

    counter_pool_size: int = 16
    connect_options: str = ""
    checkout_timeout: float = 0.5
    """Seconds a request waits for a counter connection: an outage is a 503 within a second."""
    _counter_pool: Any = field(default=None, repr=False)
    _counter_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _down_at: float | None = field(default=None, repr=False)
    """time.monotonic() of the last failed connection attempt while the database is down, else None."""

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def counter(self) -> Iterator[Any]:
        """PostgreSQL: a plain psycopg connection in autocommit mode, for the counter's hot routes.

        Each statement on it is its own transaction (settlements.pgcounter: one read,
        one write function), so no session, no BEGIN/COMMIT round trips and no lock
        held between statements. Kept in psycopg's own pool apart from the ORM's,
        opened on first use; its errors become SQLAlchemy's through pg_execute.

        Outages (docs/RELIABILITY.md): a connection the server closed while it sat in
        the pool is never handed out (:func:`closed_by_server`: a poll of its socket,
        no round trip); a request waits at most :attr:`checkout_timeout` for a
        connection; when none can be opened the pool is closed and the database is
        known down: requests answer 503 at once, one at a time trying a fresh
        connection and, if it opens, a new pool: the first settle after the database
        is back succeeds.
        """
        pool = self._counter_pool or self._open_counter_pool()
        conn = self._checkout(pool)
        if closed_by_server(conn):
            # the server ended it while it was idle (pg_terminate_backend, a restart): the others
            # in the pool were most likely ended with it, so every idle one is tested (a round trip
            # each, only now) and the dead ones replaced before the request takes another
            conn.close()
            pool.putconn(conn)  # a closed connection is discarded and a new one opened at once
            self._after_loss(pool)
            conn = self._checkout(pool)
        try:
            yield conn
        finally:
            pool.putconn(conn)  # a broken one too: the pool discards it and opens another

    def on_counter(self, work: Callable[[Any], T]) -> T:
        """``work(conn)`` on a counter connection; run once more, on another connection, if the
        connection was lost under it (``connection_invalidated``). ``work`` must be safe to repeat:
        the caller says why (settlements.pgcounter)."""
        try:
            with self.counter() as conn:
                return work(conn)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            log.warning("a counter connection was lost under a statement, once more on another: %s", exc.orig)
            pool = self._counter_pool
            if pool is not None:
                self._after_loss(pool)
        with self.counter() as conn:
            return work(conn)

    def _after_loss(self, pool: Any) -> None:
        """After a connection was found dead: the others that died with it replaced (psycopg_pool's
        check(): a round trip per idle connection, only now), and if no new connection can be opened
        the database is known down at once (503 now, not after checkout_timeout)."""
        _check_idle(pool)
        if not self._reachable():
            self._mark_down(pool)
            raise OperationalError("connect", {}, Exception("the database is unavailable"))

    def _checkout(self, pool: Any) -> Any:
        """A connection of ``pool``. After checkout_timeout without one, a fresh connection is tried:
        refused, the database is down (503 now); opened, the pool is only growing or busy, and the
        request waits on, up to BUSY_TIMEOUT in all."""
        import psycopg

        try:
            return pool.getconn(timeout=self.checkout_timeout)
        except psycopg.OperationalError as exc:  # PoolTimeout, or PoolClosed by another request
            if self._counter_pool is not pool or not self._reachable():
                if self._counter_pool is pool:
                    self._mark_down(pool)
                raise OperationalError("connect", {}, exc) from exc
        try:
            return pool.getconn(timeout=BUSY_TIMEOUT - self.checkout_timeout)
        except psycopg.OperationalError as exc:
            raise OperationalError("connect", {}, exc) from exc

    def _reachable(self) -> bool:
        """A fresh connection opens (the pool may have waited for its own, backing off)."""
        import psycopg

        try:
            psycopg.connect(self.counter_conninfo(), **{**self.counter_kwargs(), "connect_timeout": 2}).close()
        except Exception:
            return False
        return True

    def _mark_down(self, pool: Any) -> None:
        with self._counter_lock:
            self._down_at = time.monotonic()
            if self._counter_pool is pool:
                self._counter_pool = None
        log.warning("the database is unavailable: counter connections closed, reopened when it answers")
        pool.close(timeout=0)  # its own reconnection attempts stop; connections out are closed on return

    def _open_counter_pool(self) -> Any:
        """The counter pool, opened now: on the first request, or after an outage (one request at a
        time tries a fresh connection, the others answer 503 meanwhile; a refused one costs ~1 ms)."""
        down_at = self._down_at
        if not self._counter_lock.acquire(blocking=down_at is None):
            raise OperationalError("connect", {}, Exception("the database is unavailable; a reconnection is under way"))
        try:
            if self._counter_pool is not None:
                return self._counter_pool
            if down_at is not None and not self._reachable():  # refused: known at once, no pool to wait for
                self._down_at = time.monotonic()
                raise OperationalError("connect", {}, Exception("the database is unavailable"))
            from psycopg_pool import ConnectionPool

            pool = ConnectionPool(
                self.counter_conninfo(),
                # one connection opened before the pool is used, three more then in the background,
                # the rest as requests wait for one (app.lifespan opens all of them at the start);
                # all of them count against max_connections
                min_size=1,
                max_size=self.counter_pool_size,
                kwargs=self.counter_kwargs(),
                timeout=self.checkout_timeout,
                open=False,
                configure=_configure_counter_connection,
            )
            try:
                pool.open(wait=True, timeout=1.0)  # a database that is down: 503 now, not later
            except Exception as exc:
                pool.close(timeout=0)
                self._down_at = time.monotonic()
                raise OperationalError("connect", {}, exc) from exc
            pool.resize(min_size=min(4, self.counter_pool_size), max_size=self.counter_pool_size)
            if self._down_at is not None:
                log.warning("the database answers again: counter connections reopened")
            self._down_at = None
            self._counter_pool = pool
            return pool
        finally:
            self._counter_lock.release()

    def ping(self) -> None:
        """Readiness: the ORM's connections and the counter's own (PostgreSQL) answer a statement."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        if self.dialect == "postgresql":
            with self.counter() as conn:
                pg_execute(conn, "SELECT 1")

    def counter_conninfo(self) -> str:
        return str(self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False))

    def counter_kwargs(self) -> dict[str, Any]:
        return {
            "autocommit": True,
            "connect_timeout": 5,
            "options": self.connect_options,
            "application_name": "settlement-counter",
        }

    def open_counter(self) -> None:
        """At the service's start: all db_pool_size counter connections, before the first request
        (opening them under load made the first seconds' requests wait for connections)."""
        with self.counter():
            pass
        self._counter_pool.resize(min_size=self.counter_pool_size, max_size=self.counter_pool_size)
        self._counter_pool.wait(timeout=10)

    def dispose(self) -> None:
        with self._counter_lock:
            if self._counter_pool is not None:
                self._counter_pool.close()
                self._counter_pool = None
        self.engine.dispose()


BUSY_TIMEOUT = 10.0
"""Seconds a request waits for a counter connection in all while the database answers (the pool
growing under a burst, or fewer connections than threads)."""


def _check_idle(pool: Any) -> None:
    """psycopg_pool's check(): every idle connection tried (a round trip each), the dead replaced."""
    try:
        pool.check()
    except Exception as exc:  # closed meanwhile by another request's _mark_down: nothing to check
        log.info("counter pool not checked: %s", exc)


def closed_by_server(conn: Any) -> bool:
    """An idle psycopg connection the server has ended: closed, or its socket readable.

    Nothing is sent to a connection that waits in a pool unless the server is ending
    it (pg_terminate_backend's FATAL 57P01, a shutdown, idle_session_timeout, then
    EOF), so a readable socket means gone: one poll(2), no round trip. A connection
    lost without a word (a network cut) is caught by its first statement instead
    (:func:`connection_lost`, :meth:`Database.on_counter`).
    """
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _sqlite_events(engine: Engine, busy_timeout_ms: int) -> None:
    # pysqlite's own transaction handling is switched off so that BEGIN is ours
    # (the SQLAlchemy documented recipe), with IMMEDIATE for write sessions.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _configure_counter_connection(conn: Any) -> None:
    """json columns read with orjson (the stored result and trace of a replay are ~4 KB)."""
    import orjson
    from psycopg.types.json import set_json_loads

    set_json_loads(orjson.loads, conn)


def _pg_options(settings: Settings) -> str:
    return f"-c lock_timeout={int(settings.lock_timeout_ms)} -c statement_timeout={int(settings.statement_timeout_ms)}"


def make_engine(settings: Settings, *, pooled: bool = True) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            connect_args={
                "check_same_thread": False,
                "timeout": settings.sqlite_busy_timeout_ms / 1000,
            },
            poolclass=None if pooled else NullPool,
        )
        _sqlite_events(engine, settings.sqlite_busy_timeout_ms)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args = {
            "connect_timeout": 5,
            "options": _pg_options(settings),
            "application_name": "settlement",
        }
    if not pooled:
        return create_engine(url, connect_args=connect_args, poolclass=NullPool)
    return create_engine(
        url,
        connect_args=connect_args,
        pool_pre_ping=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=10,
    )


def make_database(settings: Settings) -> Database:
    engine = make_engine(settings)
    read = sessionmaker(engine, expire_on_commit=False)
    if engine.dialect.name == "sqlite":
        write = sessionmaker(
            engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False
        )
    else:
        write = read
    return Database(
        engine=engine,
        read=read,
        write=write,
        counter_pool_size=settings.db_pool_size,
        connect_options=_pg_options(settings),
    )


# -- errors ---------------------------------------------------------------

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization_failure, deadlock_detected


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_retryable(exc: BaseException) -> bool:
    """Deadlock or serialization failure (PostgreSQL), a busy database (SQLite)."""
    if not isinstance(exc, DBAPIError):
        return False
    if sqlstate(exc) in RETRYABLE_SQLSTATES:
        return True
    message = str(getattr(exc, "orig", exc)).lower()
    return "database is locked" in message or "database is busy" in message


def is_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached or did not answer in time: a 503, not a 500."""
    return isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and (exc.connection_invalidated or connection_lost(exc.orig))
    )


# SQLSTATEs that end a connection: class 08 (connection_exception), admin_shutdown,
# crash_shutdown, cannot_connect_now (psycopg.errors' documented classes, by code)
_LOST_SQLSTATES = ("08000", "57P01", "57P02", "57P03")


def connection_lost(exc: BaseException | None, conn: Any = None) -> bool:
    """The error ended the connection, so the statement may be sent again on another: the
    connection is closed now, or the error is a connection-level one — libpq's own ("server
    closed the connection unexpectedly", no SQLSTATE) or one of :data:`_LOST_SQLSTATES`."""
    import psycopg
    from psycopg import errors

    if conn is not None and conn.closed:
        return True
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(exc, tuple(errors.lookup(code) for code in _LOST_SQLSTATES)):
        return True
    return isinstance(exc, psycopg.OperationalError) and not exc.sqlstate


def violated_constraint(exc: IntegrityError) -> str | None:
    """The name of the violated constraint (PostgreSQL) or the SQLite message."""
    orig = getattr(exc, "orig", None)
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name:
        return str(name)
    return str(orig) if orig is not None else None


class RetriesExhausted(Exception):
    """Every attempt of a transaction ended in a deadlock or serialization failure."""


def run_transaction(
    factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    retries: int = 8,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Runs ``work`` in one transaction and commits; re-runs it on a retryable failure.

    ``work`` must be safe to repeat: it sees a fresh session each attempt and
    everything of a failed attempt is rolled back.
    """
    attempt = 0
    while True:
        session = factory()
        try:
            result = work(session)
            session.commit()
            return result
        except DBAPIError as exc:
            session.rollback()
            if not is_retryable(exc):
                raise
            attempt += 1
            if attempt > retries:
                raise RetriesExhausted(str(exc)) from exc
            if on_retry is not None:
                on_retry(exc)
            log.info("transaction retry %d after %s", attempt, sqlstate(exc) or type(exc).__name__)
            time.sleep(min(0.2, 0.002 * 2**attempt) * random.random())
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


# -- dialect helpers --------------------------------------------------------


def upsert(session: Session, table: Table) -> Any:
    """INSERT into ``table`` with its ON CONFLICT clauses, for the session's database (PostgreSQL or SQLite)."""
    return (postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert)(table)


def one_of(session: Session, column: Any, values: Sequence[Any]) -> Any:
    """``column IN values``: on PostgreSQL ``column = ANY(:array)``, one parameter, so the statement's text
    stays the same whatever the number of values (compiled and parsed once; an IN list of n values is
    rendered and split anew for every n); on SQLite an IN list."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def insert_ignore(
    session: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Iterable[str]
) -> None:
    """INSERT … ON CONFLICT (keys) DO NOTHING, on PostgreSQL and SQLite alike."""
    if rows:  # one statement with the rows as parameters: compiled once, cached, sent in batches
        session.execute(upsert(session, table).on_conflict_do_nothing(index_elements=list(keys)), list(rows))


# -- PostgreSQL: plain statements on the session's own connection --------------


def pg_connection(session: Session) -> Any | None:
    """The psycopg connection of the session's transaction on PostgreSQL; None on other databases.

    The hot paths (settle, preview, key checks) send hand-written SQL through
    it, inside the very transaction the session commits: the ORM's per-statement
    cost (~0.3-0.5 ms of CPU) was most of a settlement's time (docs/PERFORMANCE.md).
    psycopg prepares a statement it has seen 5 times, so these are planned once.
    """
    transaction = session.get_transaction()
    cached = session.info.get("pg_connection")
    if transaction is not None and cached is not None and cached[0] is transaction:
        return cached[1]  # asked ~10 times per settle: SQLAlchemy's connection() costs ~40 µs
    connection = session.connection()
    driver = connection.connection.driver_connection if connection.dialect.name == "postgresql" else None
    session.info["pg_connection"] = (session.get_transaction(), driver)
    return driver


def as_dbapi_error(sql: str, params: Any, exc: Exception, conn: Any = None) -> Exception:
    """A psycopg error as SQLAlchemy's, so the routes' handlers (409 replay, retry, 503) see it as
    they see the ORM's; ``connection_invalidated`` when it ended ``conn`` (:func:`connection_lost`)."""
    import psycopg

    return DBAPIError.instance(
        sql, params, exc, psycopg.Error, connection_invalidated=connection_lost(exc, conn)
    )


def pg_execute(pg: Any, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> Any:
    """Executes on the psycopg connection; its errors become SQLAlchemy's (retry, 503, 409 see them)."""
    import psycopg

    cursor = pg.cursor()
    try:
        cursor.execute(sql, params)
    except psycopg.Error as exc:
        raise as_dbapi_error(sql, params, exc, pg) from exc
    return cursor


def pg_direct(pg: Any, sql: str, params: Sequence[Any]) -> list[list[bytes | None]]:
    """pgdirect.execute (``$n`` placeholders, text values); its errors become SQLAlchemy's, as pg_execute's."""
    import psycopg

    from . import pgdirect

    try:
        return pgdirect.execute(pg, sql, params)
    except psycopg.Error as exc:
        raise as_dbapi_error(sql, params, exc, pg) from exc

