"""Accumulators.interleaved (one row per person-year, for the kernel's random access) settles exactly
as seven separate arrays do, and grow/copy keep both the layout and the totals."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from settlement.engine import compile_tables, settle
from settlement.engine.batch import PERSON_COLUMNS, Accumulators
from settlement.schedules import load_region
from settlement.service.config import bundled_schedules
from settlement.synth import columnar_batch

TOTALS = ("basic_paid", "critical_base", "critical_paid", "assistance_base", "assistance_paid", "charity_paid",
          "pool_used")


def _separate(acc: Accumulators) -> Accumulators:
    return Accumulators(*(np.ascontiguousarray(getattr(acc, name)) for name in TOTALS))


def test_interleaved_and_separate_arrays_settle_alike() -> None:
    tables = compile_tables(load_region(bundled_schedules()))
    batch = columnar_batch(3000, tables, 400)  # ~7 claims a person: the totals carry from claim to claim
    rng = np.random.default_rng(7)
    start = Accumulators.zeros(int(batch.person_year.max()) + 1, int(batch.year_index.max()) + 1, tables.n_funds)
    assert start.person is not None and start.basic_paid.base is start.person  # views, not copies
    for name in TOTALS[:-1]:  # some person-years start part-way through their caps
        view = getattr(start, name)
        view[...] = rng.integers(0, 2_000_000, size=view.shape) * (rng.random(view.shape) < 0.3)
    separate = _separate(start)
    assert separate.person is None and separate.critical_base.base is not start.person
    a, b = settle(batch, tables, start), settle(batch, tables, separate)
    for f in fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert np.array_equal(x, y), f.name
    for name in TOTALS:
        assert np.array_equal(getattr(a.accumulators, name), getattr(b.accumulators, name)), name
    assert not np.array_equal(a.accumulators.person, start.person)  # it settled something
    assert np.array_equal(start.basic_paid, separate.basic_paid)  # and left its input alone


def test_grow_and_copy_keep_the_layout_and_the_totals() -> None:
    acc = Accumulators.zeros(2, 1, 2)
    acc.critical_paid[1] = 5
    acc.charity_paid[1, 1] = 7
    acc.pool_used[0, 0] = 9
    acc.pool_used[0, 2] = 3  # the emergency relief pool: the column after the funds'
    grown = acc.grow(4, 2)
    assert grown.person is not None and grown.person.shape == (4, PERSON_COLUMNS + 2)
    assert grown.critical_paid.tolist() == [0, 5, 0, 0] and grown.charity_paid[1].tolist() == [0, 7]
    assert grown.pool_used.tolist() == [[9, 0, 3], [0, 0, 0]]
    assert grown.emergency_pool_used.tolist() == [3, 0]
    copied = grown.copy()
    copied.charity_paid[1, 1] = 8
    assert grown.charity_paid[1, 1] == 7 and copied.person is not None and copied.person[1, PERSON_COLUMNS + 1] == 8
