"""statements.service._lines' merge of the late entries into a period's lines: the hand-written loop of
80fe3f9 against heapq.merge + islice (PERFORMANCE.md §5.7), and the cost of building one line (_line).

    PYTHONPATH=src .venv/bin/python benchmarks/bench_statement_merge.py
"""
import datetime as dt
import heapq
import time
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from settlement.service.statements.service import Closes, _line

Line = dict[str, Any]


def loop(late: Iterable[Line], rows: Iterable[Line], limit: int | None) -> Iterator[Line]:
    out = 0
    pending = iter(late)
    nxt = next(pending, None)
    for line in rows:
        while nxt is not None and nxt["entry_id"] < line["entry_id"]:
            if limit is not None and out >= limit:
                return
            yield nxt
            out += 1
            nxt = next(pending, None)
        if limit is not None and out >= limit:
            return
        yield line
        out += 1
    while nxt is not None and (limit is None or out < limit):
        yield nxt
        out += 1
        nxt = next(pending, None)


def merge(late: Iterable[Line], rows: Iterable[Line], limit: int | None) -> Iterator[Line]:
    yield from islice(heapq.merge(late, rows, key=lambda line: line["entry_id"]), limit)


def main() -> None:
    n = 1_000_000
    rows = [{"entry_id": i} for i in range(0, 2 * n, 2)]
    for n_late in (0, 100):
        late = [{"entry_id": i} for i in range(1, 2 * n_late, 2)]
        for limit in (None, 501):
            assert list(loop(late, rows, limit)) == list(merge(late, rows, limit))
        for f in (loop, merge, merge, loop, loop, merge):
            start = time.process_time()
            count = sum(1 for _ in f(late, rows, None))
            print(f"late={n_late} {f.__name__}: {(time.process_time() - start) * 1000:.0f} ms CPU, {count} lines")
    closes = Closes("basic", {})
    row = (1, "00000000-0000-0000-0000-000000000000", "H0002", "C1", "23010219560312041X", "settled",
           dt.datetime(2026, 1, 5, tzinfo=dt.UTC), dt.date(2026, 1, 5), 12345, None)
    for _ in range(3):
        start = time.process_time()
        for _ in range(200_000):
            _line(closes, row, False)
        print(f"_line: {(time.process_time() - start) / 200_000 * 1e9:.0f} ns CPU a line")


if __name__ == "__main__":
    main()
