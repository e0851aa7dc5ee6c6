"""Statements sent by the event loop itself, without a thread: the counter's previews.

A preview is one read and the engine's batch of one. Run in a counter thread
(counter_routes), each preview paid the hand-over to the thread and back —
run_in_executor's two futures and a wake-up of the loop through its self-pipe —
and then queued for the worker's one GIL against the loop and the other
threads at each step: the read's send, its answer, the engine, the return.
At 1,600 previews/s those queues, not the work, made the p99
(docs/PERFORMANCE.md §3, session 4).

Here the loop sends the read with libpq's asynchronous calls
(``PQsendQueryPrepared``; ``PQconsumeInput`` when the socket is readable, the
loop's own selector watching it) and does the rest itself, between other
requests. The statement is the same prepared one :mod:`pgdirect` sends, with
the same text values, rows and exceptions.

Each worker keeps ``size`` connections for this, apart from the counter's
pool; a connection is taken only while its statement is at the server. When
none is free, :meth:`LoopConnections.execute` returns None and the preview
takes the thread way: previews never queue on the loop for a connection. A
connection that broke under a statement is closed, a new one is opened in a
thread, and that preview too takes the thread way (a read is safe to repeat).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from . import pgdirect
from .db import as_dbapi_error, closed_by_server

log = logging.getLogger("settlement.service")


class LoopConnections:
    """psycopg connections in autocommit mode, used from one event loop only.

    Invariant: ``alive`` (free, or with a statement at the server) plus
    ``opening`` never exceeds ``size``. A connection lost, or one that could
    not be opened (at the start, or while the database was down), is opened
    again in a thread as previews come, one more a preview, and after a
    failed try not before ``retry_after`` seconds, so the pool fills up again
    once the database is back.
    """

    def __init__(
        self, connect: Callable[[], Any], size: int, statements: Sequence[str], *, retry_after: float = 1.0
    ) -> None:
        self._connect = connect
        self._size = size
        self._statements = tuple(statements)
        self._retry_after = retry_after
        self._free: deque[Any] = deque()  # taken from the left, given back on the right: all in turn
        self._alive = 0
        self._opening = 0
        self._retry_at = 0.0
        self._closed = False

    @property
    def free(self) -> int:
        return len(self._free)

    def open(self) -> None:
        """Blocking, in a thread at the worker's start: every connection, its statements prepared."""
        while self._alive + self._opening < self._size:
            self._free.append(self._open_one())
            self._alive += 1

    def _open_one(self) -> Any:
        conn = self._connect()
        try:
            for sql in self._statements:
                pgdirect.prepare(conn, sql)
        except BaseException:
            conn.close()
            raise
        return conn

    def close(self) -> None:
        self._closed = True
        while self._free:
            self._free.pop().close()
            self._alive -= 1

    async def execute(self, sql: str, params: Sequence[Any]) -> list[list[bytes | None]] | None:
        """pgdirect.execute's rows, sent from the running loop.

        None when no connection is free, or when the connection broke under the
        statement (nothing was read; the thread way reads on a connection of
        its own). The statement's own errors become SQLAlchemy's, as
        :func:`db.pg_direct` makes them.
        """
        import psycopg

        self._top_up()
        while True:
            if not self._free:
                return None
            conn = self._free.popleft()
            if not closed_by_server(conn):  # ended while idle (db.closed_by_server): never sent to
                break
            self._replace(conn)
        try:
            result = await _send(conn, pgdirect.prepare(conn, sql), [pgdirect.text(v) for v in params])
        except psycopg.OperationalError:
            self._replace(conn)
            return None
        except BaseException:  # cancelled with the statement at the server: the connection is not clean
            self._replace(conn)
            raise
        if self._closed or not _idle(conn):
            lost = conn.closed  # lost under the statement (its error is libpq's): the thread way reads
            self._replace(conn)
            if lost:
                return None
        else:
            self._free.append(conn)
        try:
            return pgdirect.rows(result, conn)
        except psycopg.Error as exc:
            raise as_dbapi_error(sql, params, exc) from exc

    def _replace(self, conn: Any) -> None:
        """Close a connection left in an unknown state; open its successor in a thread."""
        conn.close()
        self._alive -= 1
        self._retry_at = 0.0  # a lost connection is replaced at once
        self._top_up()

    def _top_up(self) -> None:
        """One more connection opened in a thread, if one is missing and the last try is old enough."""
        if self._closed or self._alive + self._opening >= self._size:  # the usual case: nothing missing
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self._retry_at:
            return
        self._opening += 1
        future = loop.run_in_executor(None, self._open_one)

        def opened(f: asyncio.Future[Any]) -> None:
            self._opening -= 1
            if f.cancelled():
                return
            exc = f.exception()
            if exc is not None:
                self._retry_at = loop.time() + self._retry_after
                log.warning("a loop connection could not be opened: %s", exc)
            elif self._closed:
                f.result().close()
            else:
                self._free.append(f.result())
                self._alive += 1

        future.add_done_callback(opened)


def _idle(conn: Any) -> bool:
    from psycopg import pq

    pgconn = conn.pgconn
    return bool(pgconn.status == pq.ConnStatus.OK and pgconn.transaction_status == pq.TransactionStatus.IDLE)


async def _send(conn: Any, name: bytes, values: list[bytes | None]) -> Any:
    """The last result of the prepared statement ``name``, waiting on the loop's selector."""
    pgconn = conn.pgconn
    # a blocking-mode connection: the call returns once the query is in the socket's buffer
    pgconn.send_query_prepared(name, values)
    loop = asyncio.get_running_loop()
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
                if result is None:  # the statement's results are all in
                    done.set_result(last[0])
                    return
                last[0] = result
        except Exception as exc:  # the connection broke: psycopg's OperationalError
            done.set_exception(exc)

    fd = pgconn.socket
    loop.add_reader(fd, readable)
    try:
        return await done
    finally:
        loop.remove_reader(fd)
