"""What-if simulation (政策测算): the same claims settled under a baseline and a draft schedule set.

Both sides run the one engine in claim order from empty accumulators, batch
by batch (``batchrun``'s reader and ``StreamSettler.settle_chunk``), and sum,
per side, every payer of ``settlement.layers.SHARES`` and every charity fund
over the claims the side settled without error, overall and per group
(``--by`` category, level, month, visit_type, pathway: each side groups its
claims by its own pathway). The core, :class:`Simulation`, takes blocks or
prepared chunks in order, so another executor can read and prepare the
blocks and feed them here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from settlement.batchrun import PreparedChunk, StreamSettler, prepare_block, prepare_chunk
from settlement.engine import BatchResult, ClaimBatch, Tables
from settlement.layers import SHARES
from settlement.money import format_fen
from settlement.schedules.types import CATEGORIES, VISIT_TYPES

I64 = npt.NDArray[np.int64]
GROUP_KEYS = ("category", "level", "month", "visit_type", "pathway")
SIDES = ("baseline", "draft")
BLOCK_BYTES = 8 << 20


def _share(result: BatchResult, name: str) -> I64:
    """A payer's column; zeros for a payer this engine does not compute (emergency_relief before SPEC §5.5 lands)."""
    column = getattr(result, name, None)
    if column is None:
        return np.zeros(len(result), dtype=np.int64)
    return np.asarray(column, dtype=np.int64)


@dataclass
class Side:
    """One schedule set's run: its settler (the accumulators in claim order) and its sums."""

    tables: Tables
    by: tuple[str, ...]
    settler: StreamSettler = field(init=False)
    settled: int = 0
    errors: int = 0
    sums: I64 = field(init=False)
    groups: dict[tuple[Any, ...], I64] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.settler = StreamSettler(self.tables)
        self.sums = np.zeros(self.width, dtype=np.int64)

    @property
    def funds(self) -> tuple[str, ...]:
        return tuple(self.tables.schedules.fund_ids)

    @property
    def width(self) -> int:
        """Columns of a sum: claims, each payer of SHARES, each charity fund."""
        return 1 + len(SHARES) + len(self.funds)

    def add(self, chunk: PreparedChunk) -> None:
        """Settles a prepared chunk after every earlier one and adds it to the sums."""
        self.errors += len(chunk.errors)
        result = self.settler.settle_chunk(chunk)
        if result is None or chunk.batch is None:
            return
        self.add_settled(chunk.batch, result, chunk.discharged)

    def add_settled(self, batch: ClaimBatch, result: BatchResult, discharged: I64 | None) -> None:
        """Adds claims settled elsewhere (in order, e.g. by settlement.distributed) to the sums."""
        ok = result.error == 0
        self.errors += int((~ok).sum())
        n = int(ok.sum())
        self.settled += n
        values = np.empty((len(result), self.width), dtype=np.int64)
        values[:, 0] = 1
        for j, name in enumerate(SHARES, start=1):
            values[:, j] = _share(result, name)
        if self.funds:
            values[:, 1 + len(SHARES) :] = result.charity_by_fund[:, : len(self.funds)]
        values = values[ok]
        self.sums += values.sum(axis=0)
        if self.by:
            self._group(batch, discharged, result, ok, values)

    def _group(
        self, batch: ClaimBatch, discharged: I64 | None, result: BatchResult, ok: npt.NDArray[np.bool_], values: I64
    ) -> None:
        month = discharged // 100 if discharged is not None else np.zeros(len(batch), np.int64)
        columns = {
            "category": (batch.category, len(CATEGORIES)),
            "level": (batch.level, 4),
            "month": (month // 100 * 12 + month % 100 - 1, 12 * 10_000),
            "visit_type": (batch.visit_type, len(VISIT_TYPES)),
            "pathway": (result.pathway_fixed.astype(np.int64), 2),
        }
        key = np.zeros(int(ok.sum()), dtype=np.int64)
        for name in self.by:  # one int64 key in mixed radix: one 1-D unique instead of rows
            column, radix = columns[name]
            key = key * radix + column[ok]
        if key.shape[0] == 0:
            return
        unique, inverse = np.unique(key, return_inverse=True)
        sums = np.empty((unique.shape[0], values.shape[1]), dtype=np.int64)
        for j in range(values.shape[1]):  # float64 sums of int64 fen are exact below 2^53 (a block is far below)
            sums[:, j] = np.bincount(inverse, weights=values[:, j], minlength=unique.shape[0]).astype(np.int64)
        radices = [columns[name][1] for name in self.by]
        for code, row in zip(unique.tolist(), sums, strict=True):
            parts = []
            for radix in reversed(radices):
                code, part = divmod(code, radix)
                parts.append(part)
            group = tuple(_label(k, v) for k, v in zip(self.by, reversed(parts), strict=True))
            if group in self.groups:
                self.groups[group] += row
            else:
                self.groups[group] = row.copy()


def _label(key: str, value: int) -> Any:
    if key == "category":
        return CATEGORIES[value]
    if key == "visit_type":
        return VISIT_TYPES[value]
    if key == "month":
        return f"{value // 12:04d}-{value % 12 + 1:02d}"
    if key == "pathway":
        return "single_disease" if value else "standard"
    return int(value)


class Simulation:
    """Both sides fed the same claims, in order."""

    def __init__(self, baseline: Tables, draft: Tables, by: Sequence[str] = ()) -> None:
        unknown = [k for k in by if k not in GROUP_KEYS]
        if unknown:
            raise ValueError(f"cannot group by {', '.join(unknown)}; choose from {', '.join(GROUP_KEYS)}")
        self.by = tuple(by)
        self.sides = (Side(baseline, self.by), Side(draft, self.by))
        self.claims = 0
        self.shared = same_reading(baseline, draft)
        """The two sets read claims alike (same versions' dates, same catalog codes): claims are read once."""

    def add_prepared(self, baseline: PreparedChunk, draft: PreparedChunk) -> None:
        """The same lines prepared for each side (another executor may prepare them in parallel)."""
        if baseline.size != draft.size:
            raise ValueError("the two chunks are not the same lines")
        self.claims += baseline.size
        self.sides[0].add(baseline)
        self.sides[1].add(draft)

    def add_block(self, block: bytes) -> None:
        """A block of whole JSON lines (blank lines skipped)."""
        base = prepare_block(block, self.sides[0].tables)
        self.add_prepared(base, _twin(base) if self.shared else prepare_block(block, self.sides[1].tables))

    def add_lines(self, lines: list[bytes]) -> None:
        """A list of claims, one JSON text each."""
        base = prepare_chunk(lines, self.sides[0].tables)
        self.add_prepared(base, _twin(base) if self.shared else prepare_chunk(lines, self.sides[1].tables))

    def report(self) -> dict[str, Any]:
        """The summary: claims, errors per side, each payer per side in yuan and the deltas, the groups."""
        base, draft = self.sides
        out: dict[str, Any] = {
            "claims": self.claims,
            "errors": {"baseline": base.errors, "draft": draft.errors},
            "baseline": _payers(base.sums),
            "draft": _payers(draft.sums),
            "delta": _payers(draft.sums - base.sums),
            "groups": [],
        }
        empty = (np.zeros(base.width, np.int64), np.zeros(draft.width, np.int64))
        for key in sorted(set(base.groups) | set(draft.groups), key=lambda k: tuple(str(v) for v in k)):
            b = base.groups.get(key, empty[0])
            d = draft.groups.get(key, empty[1])
            funds_b = dict(zip(base.funds, b[1 + len(SHARES) :].tolist(), strict=True))
            funds_d = dict(zip(draft.funds, d[1 + len(SHARES) :].tolist(), strict=True))
            names = list(dict.fromkeys([*base.funds, *draft.funds]))
            out["groups"].append(
                {
                    **dict(zip(self.by, key, strict=True)),
                    "claims": {"baseline": int(b[0]), "draft": int(d[0])},
                    "baseline": _payers(b),
                    "draft": _payers(d),
                    "delta": _payers(d - b),
                    "charity_by_fund": {
                        "baseline": {f: format_fen(funds_b.get(f, 0)) for f in names},
                        "draft": {f: format_fen(funds_d.get(f, 0)) for f in names},
                        "delta": {f: format_fen(funds_d.get(f, 0) - funds_b.get(f, 0)) for f in names},
                    },
                }
            )
        return out


def same_reading(a: Tables, b: Tables) -> bool:
    """Whether a claim reads the same under both sets: the checks before the engine and the batch depend only
    on the versions' effective dates and each version's catalog codes (their rows), not on any rate or amount."""
    dates_a = [v.effective_from for v in a.schedules.versions]
    dates_b = [v.effective_from for v in b.schedules.versions]
    return dates_a == dates_b and a.catalog_rows == b.catalog_rows


def _twin(chunk: PreparedChunk) -> PreparedChunk:
    """The chunk for the other side: the batch's arrays shared, its own object (settling renumbers rows)."""
    return replace(chunk, batch=None if chunk.batch is None else replace(chunk.batch))


def _payers(row: I64) -> dict[str, str]:
    return {name: format_fen(int(row[j])) for j, name in enumerate(SHARES, start=1)}


def blocks(path: str | Path, size: int = BLOCK_BYTES) -> Iterator[bytes]:
    """The claims of a JSON-lines file in blocks of whole lines, or of a Parquet file's ``claim`` column
    (one JSON claim per row) in blocks of its row groups."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        if "claim" not in source.schema_arrow.names:
            raise ValueError(f"{path}: a Parquet file of claims has a string column 'claim' (one JSON claim a row)")
        for group in source.iter_batches(columns=["claim"], batch_size=20_000):
            texts = [t for t in group.column(0).to_pylist() if t]
            yield ("\n".join(texts) + "\n").encode()
        return
    with open(path, "rb") as handle:
        rest = b""
        while data := handle.read(size):
            data = rest + data
            cut = data.rfind(b"\n") + 1
            rest = data[cut:]
            if cut:
                yield data[:cut]
        if rest:
            yield rest


def simulate(source: Iterable[bytes], baseline: Tables, draft: Tables, by: Sequence[str] = ()) -> dict[str, Any]:
    """Runs blocks of JSON lines through both sides in order; the report."""
    sim = Simulation(baseline, draft, by)
    for block in source:
        sim.add_block(block)
    return sim.report()


__all__ = ["GROUP_KEYS", "Simulation", "blocks", "simulate"]
