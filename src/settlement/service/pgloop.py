"""PostgreSQL's previews: their one read awaited on the event loop, on psycopg's AsyncConnectionPool.

A preview is one read and the engine's batch of one; awaited on the loop it
pays no hand-over to a counter thread and no queue for the GIL behind them
(docs/PERFORMANCE.md §3, session 4). The read is pgdirect's ``$n`` statement, prepared, text
in and text out, sent through the pool's connection's ``pgconn`` (:func:`run`).

A preview waits for a connection up to ``timeout`` s (Database.checkout_timeout);
then, unless a read of the pool answered within ANSWERED_WITHIN s (busy, not down),
a fresh connection is tried (one at a time, its answer shared for
PROBE_TTL s): refused, the database is down (503 now);
opened, the pool is busy or still reconnecting after an outage, and the preview
waits on, up to ``busy_timeout`` s in all. A connection the server ended while
idle is never used (db.closed_by_server, no round trip); one lost under the read
has the idle ones checked and the read sent once more on another (a read is safe
to repeat), then 503.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, OperationalError

from . import pgdirect
from .db import as_dbapi_error, closed_by_server

log = logging.getLogger("settlement.service")

RECONNECT_TIMEOUT = 2.0
"""psycopg_pool's reconnect_timeout (s): a connection that cannot be reopened is given up after this
long (a few attempts, backing off), and the next preview that waits has the pool open one at once;
with the default (5 min, backing off to minutes) previews would wait long after an outage."""

PROBE_TTL = 0.25
"""Seconds a probe's answer (the database reachable or not) serves the previews that time out."""

ANSWERED_WITHIN = 1.0
"""Seconds after a read of the pool answered in which the database counts as reachable without a
probe: under a sustained overload every preview waits past ``timeout``, and a probe's fresh
connection every PROBE_TTL s cost ~0.8 ms of service CPU a preview (docs/PERFORMANCE.md §5.5)."""

Rows = list[list[bytes | None]]


class Reader(Protocol):
    """Where a preview sends its read: the worker's :class:`LoopConnections`, or an :class:`OwnConnection`."""

    async def execute(self, sql: str, params: Sequence[Any]) -> Rows: ...


class LoopConnections:
    """An AsyncConnectionPool of ``size`` autocommit connections, used from one event loop only
    (created, opened and closed on it: the worker's lifespan)."""

    def __init__(
        self, conninfo: str, kwargs: dict[str, Any], size: int, *, timeout: float = 0.5, busy_timeout: float = 10.0
    ) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._conninfo, self._kwargs = conninfo, kwargs
        self._size = size
        self.timeout, self.busy_timeout = timeout, busy_timeout
        self._probe: asyncio.Future[bool] | None = None
        self._probe_at = 0.0
        self._answered_at = float("-inf")
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo, kwargs=kwargs, min_size=size, max_size=size, open=False, name="previews",
            reconnect_timeout=RECONNECT_TIMEOUT,
        )

    @property
    def free(self) -> int:
        return self.stats().get("pool_available", 0)

    def stats(self) -> dict[str, int]:
        """psycopg_pool's figures (pool_available, returns_bad: closed ones given back, …)."""
        return self._pool.get_stats()

    async def open(self, timeout: float = 10.0) -> None:
        """Start the pool, and wait up to ``timeout`` s for all its connections (not an error: a
        database down at the start is tried again when previews wait for a connection)."""
        await self._pool.open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.free < self._size and loop.time() < deadline:
            if self._pool.get_stats().get("connections_errors"):  # down: no waiting for it here
                break
            await asyncio.sleep(0.01)
        if self.free < self._size:
            log.warning("%d of %d loop connections open at the start", self.free, self._size)

    async def close(self) -> None:
        await self._pool.close()

    async def execute(self, sql: str, params: Sequence[Any]) -> Rows:
        """pgdirect.execute's rows, awaited on the running loop; errors as SQLAlchemy's (db.pg_direct's).

        A connection lost under the statement: the idle ones checked (psycopg_pool's check, a round
        trip each, only now) and the statement sent once more on another.
        """
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                rows = await run(conn, sql, params)
                self._answered_at = asyncio.get_running_loop().time()
                return rows
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:  # invalidated: lost under the statement
                    raise
                log.warning("a loop connection was lost under a statement, once more on another")
            finally:  # a closed one, or one left mid-statement (cancelled), is discarded by the pool
                await self._pool.putconn(conn)
            await self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connection(self) -> Any:
        """A live connection of the pool (see the module's docstring for the waits). A preview keeps
        its place in the pool's queue while the probe runs: under overload every preview waits past
        ``timeout``, and one queued again at the back waited twice (measured: p50 0.5 s → 1.2 s)."""
        from psycopg_pool import PoolTimeout

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.busy_timeout
        probed = False
        while True:
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise PoolTimeout("no connection free")
                if probed or self.free:
                    conn = await self._pool.getconn(timeout=left)
                else:
                    get = asyncio.ensure_future(self._pool.getconn(timeout=left))
                    try:
                        done, _ = await asyncio.wait((get,), timeout=self.timeout)
                        if not done:
                            probed = True
                            if not await self._reachable() and not get.done():
                                raise PoolTimeout("the database is unavailable")
                        conn = await get
                    except BaseException:
                        if not get.done():
                            get.cancel()  # psycopg_pool gives back a connection it was handing over
                        elif not get.cancelled() and get.exception() is None:
                            await self._pool.putconn(get.result())
                        raise
            except PoolTimeout as exc:
                raise OperationalError("connect", {}, exc) from exc
            if closed_by_server(conn):  # ended while idle: given back closed, the pool opens another
                await conn.close()
                await self._pool.putconn(conn)
                continue
            return conn

    async def _reachable(self) -> bool:
        """A read of the pool answered within ANSWERED_WITHIN s, or else a fresh connection opens: one
        probe at a time, its answer shared for PROBE_TTL s (under overload every preview waits past
        ``timeout``; a connection each would feed the overload)."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._answered_at <= ANSWERED_WITHIN:
            return True  # busy, not down: a read of the pool has just answered
        probe = self._probe
        if probe is None or (probe.done() and loop.time() - self._probe_at > PROBE_TTL):
            self._probe_at = loop.time()
            probe = self._probe = asyncio.ensure_future(self._connects())
        return await asyncio.shield(probe)

    async def _connects(self) -> bool:
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **{**self._kwargs, "connect_timeout": 2})
        except psycopg.Error:
            return False
        await conn.close()
        return True


class OwnConnection:
    """One connection for one preview, where no worker's pool is open (an application whose lifespan
    did not run, as the tests' TestClient without ``with``: each request on an event loop of its own)."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any]) -> None:
        self._conninfo, self._kwargs = conninfo, kwargs

    async def execute(self, sql: str, params: Sequence[Any]) -> Rows:
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, **self._kwargs)
        except psycopg.Error as exc:
            raise OperationalError("connect", {}, exc) from exc
        try:
            return await run(conn, sql, params)
        finally:
            await conn.close()


async def run(conn: Any, sql: str, params: Sequence[Any]) -> Rows:
    """The statement on ``conn`` (prepared once a connection, as pgdirect's), its text rows; psycopg's
    errors as SQLAlchemy's. Sent and read through ``conn.pgconn`` (psycopg's documented libpq access)
    on the loop's selector: less than half the CPU of an AsyncRawCursor a read (PERFORMANCE.md §5.7)."""
    import psycopg

    pgconn = conn.pgconn
    try:
        name, prepared = pgdirect.statement_name(sql), pgdirect.prepared_on(conn)
        if name not in prepared:
            pgconn.send_prepare(name, sql.encode())
            pgdirect.rows(await _result(pgconn), conn)
            prepared.add(name)
        pgconn.send_query_prepared(name, [pgdirect.text(v) for v in params])
        return pgdirect.rows(await _result(pgconn), conn)
    except psycopg.Error as exc:
        raise as_dbapi_error(sql, params, exc, conn) from exc


async def _result(pgconn: Any) -> Any:
    """The last result of what was just sent on this non-blocking connection: the rest of the query
    flushed, then its results read as the socket has them, on the running loop's selector."""
    loop = asyncio.get_running_loop()
    fd = pgconn.socket
    while pgconn.flush():  # 1: libpq could not write it all yet
        writable: asyncio.Future[None] = loop.create_future()
        loop.add_writer(fd, writable.set_result, None)
        try:
            await writable
        finally:
            loop.remove_writer(fd)
    done: asyncio.Future[Any] = loop.create_future()
    last: list[Any] = [None]

    def readable() -> None:
        if done.done():
            return
        try:
            while True:
                pgconn.consume_input()
                if pgconn.is_busy():
                    return  # more to come: wait for the socket again
                result = pgconn.get_result()
                if result is None:  # all of the statement's results are in
                    done.set_result(last[0])
                    return
                last[0] = result
        except Exception as exc:  # the connection broke: psycopg's OperationalError
            done.set_exception(exc)

    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)
