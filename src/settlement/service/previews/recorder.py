"""Preview records written in batches from a thread of their own, off the counter's path.

A preview is one read at the counter (1,600/s on PostgreSQL, answered on the
event loop: service/pgloop.py); a write per preview would double its round
trips. :meth:`PreviewLog.record` only appends a tuple to a bounded buffer (a
deque: its append is atomic under the GIL); a daemon thread inserts what is
there every ``interval`` seconds, as one multi-row INSERT, in its own
transaction.

What can be lost: the records of the last ``interval`` (1 s) when the process
is killed; and, while the database cannot take them for longer than the buffer
lasts (``capacity`` records, 100,000 ≈ a minute of previews at the measured
peak), the newest ones, counted in ``settlement_preview_records_dropped_total``.
A failed insert is retried with the next batch; a stop (the app's lifespan)
writes what is left.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import deque
from typing import Any

from prometheus_client import Counter
from sqlalchemy import insert

from .models import PreviewRecord

log = logging.getLogger("settlement.service")

DROPPED = Counter(
    "settlement_preview_records_dropped_total", "Preview records dropped: the buffer was full (database down)"
)

Row = tuple[dt.datetime, str, str, str, str]


class PreviewLog:
    def __init__(self, db: Any, *, capacity: int = 100_000, interval: float = 1.0, batch: int = 5_000) -> None:
        self._db = db
        self._capacity = capacity
        self._interval = interval
        self._batch = batch
        self._rows: deque[Row] = deque()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()  # one writer thread, started on the first record
        self._write = threading.Lock()  # one flush at a time (the thread's, a test's, the stop's)
        self._stop = threading.Event()

    def record(self, at: dt.datetime, actor: str, hospital_id: str, person_id: str, claim_id: str) -> None:
        """Keeps the record for the next batch (called on the counter's path: no I/O)."""
        if len(self._rows) >= self._capacity:
            DROPPED.inc()
            return
        self._rows.append((at, actor, hospital_id, person_id, claim_id))
        if self._thread is None:
            self._start_thread()

    def _start_thread(self) -> None:
        with self._start:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="preview-records", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.flush()
            except Exception as exc:  # the database is down: the rows wait in the buffer
                log.warning("preview records not written yet: %s", exc)

    def flush(self) -> int:
        """Writes every buffered record now; returns how many. On an error the records stay buffered."""
        written = 0
        with self._write:
            while self._rows:
                rows = [self._rows.popleft() for _ in range(min(self._batch, len(self._rows)))]
                try:
                    with self._db.write() as session:
                        session.execute(
                            insert(PreviewRecord),
                            [
                                {"at": r[0], "actor": r[1], "hospital_id": r[2], "person_id": r[3], "claim_id": r[4]}
                                for r in rows
                            ],
                        )
                        session.commit()
                except BaseException:
                    self._rows.extendleft(reversed(rows))
                    raise
                written += len(rows)
        return written

    def close(self) -> None:
        """Stops the thread and writes what is left (best effort)."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        try:
            self.flush()
        except Exception as exc:
            log.warning("%d preview records not written at stop: %s", len(self._rows), exc)
