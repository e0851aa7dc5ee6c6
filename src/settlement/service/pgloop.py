"""The previews' reads awaited on the event loop, on psycopg's AsyncConnectionPool.

A preview is one read and the engine's batch of one. In a counter thread each
preview paid the hand-over to the thread and back and queued for the worker's
GIL against the loop and the other threads at every step; at 1,600 previews/s
those queues, not the work, made the p99 (docs/PERFORMANCE.md §3, session 4).
Here the read is awaited on the loop (psycopg's AsyncConnection, a raw cursor:
the same ``$n`` statement and text rows as pgdirect's, prepared) and the rest
runs between other requests.

The pool (``size`` connections a worker, apart from the counter's) is never
waited on: a preview that finds no connection free, or whose connection broke
under the read, gets None and takes the thread way (a read is safe to repeat).
A connection the server ended while idle is never handed out (the pool's
``check``: db.closed_by_server, no round trip); the pool opens the replacements
itself, and keeps trying while the database is down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from . import pgdirect
from .db import as_dbapi_error, closed_by_server

log = logging.getLogger("settlement.service")

NO_WAIT = 0.001
"""getconn's timeout (s): psycopg_pool refuses a timeout of 0 even with a connection free."""


class LoopConnections:
    """An AsyncConnectionPool of ``size`` autocommit connections, used from one event loop only
    (created, opened and closed on it: the worker's lifespan)."""

    def __init__(self, conninfo: str, kwargs: dict[str, Any], size: int) -> None:
        from psycopg_pool import AsyncConnectionPool

        self._size = size
        self._pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
            conninfo, kwargs=kwargs, min_size=size, max_size=size, open=False, check=_check, name="previews"
        )

    @property
    def free(self) -> int:
        return self.stats().get("pool_available", 0)

    def stats(self) -> dict[str, int]:
        """psycopg_pool's figures (pool_available, connections_lost: found ended by the check, …)."""
        return self._pool.get_stats()

    async def open(self, timeout: float = 10.0) -> None:
        """Start the pool, and wait up to ``timeout`` s for all its connections (not an error: a
        database down at the start is tried again by the pool, and previews take the thread way)."""
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

    async def execute(self, sql: str, params: Sequence[Any]) -> list[list[bytes | None]] | None:
        """pgdirect.execute's rows, awaited on the running loop.

        None when no connection is free, or when the connection broke under the
        statement (the thread way reads on a connection of its own). The
        statement's own errors become SQLAlchemy's, as :func:`db.pg_direct` makes them.
        """
        import psycopg
        from psycopg_pool import PoolTimeout

        for _ in range(self._size):  # at most every connection tried once
            if not self.free:
                return None
            try:
                conn = await self._pool.getconn(timeout=NO_WAIT)
                break
            except PoolTimeout:  # the one it took was ended by the server (_check): being replaced
                continue
        else:
            return None
        try:
            async with psycopg.AsyncRawCursor(conn) as cur:
                await cur.execute(sql, params, prepare=True)
                return pgdirect.rows(cur.pgresult, conn)
        except psycopg.Error as exc:
            if conn.broken:  # lost under the statement: the pool replaces it, the thread way reads
                return None
            raise as_dbapi_error(sql, params, exc) from exc
        finally:  # a broken one, or one left mid-statement (cancelled), is discarded by the pool
            await self._pool.putconn(conn)


async def _check(conn: Any) -> None:
    """The pool's check before handing a connection out: not one the server ended while idle."""
    if closed_by_server(conn):
        await conn.close()  # closed: the pool discards it and opens another (an idle one it would keep)
        raise OSError("the server ended this connection")
