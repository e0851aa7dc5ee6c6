"""engine.totals is the one list of the person-year totals: the interleaved row, PersonYearTotals and the
values/JSON conversions all follow it, in its order."""

from __future__ import annotations

import pytest

from settlement.engine.batch import Accumulators
from settlement.engine.state import PersonYearTotals, one_row, read_row, totals_from_values, totals_json, totals_values
from settlement.engine.totals import COLUMNS, KEYS, LAYOUT, PERSON_COLUMNS, TOTALS, Total, _layout


def test_each_total_is_one_column_of_the_interleaved_row_in_declared_order() -> None:
    assert PERSON_COLUMNS == len(TOTALS) == len(set(COLUMNS))
    for i, total in enumerate(TOTALS):
        field, k = total.field, None if total.key is None else KEYS[total.field].index(total.key)
        acc = Accumulators.zeros(2, 1, 1)
        assert acc.person is not None
        acc.person[1, i] = 7
        view = getattr(acc, field)
        assert view.base is acc.person  # a view, not a copy
        assert (view[1] if k is None else view[1, k]) == 7
        assert int(acc.person.sum()) == 7 and acc.person_values(1)[i] == 7 and acc.person_values(0) == [0] * len(TOTALS)
    assert acc.charity_paid.tolist() == [[0], [0]]


def test_values_and_named_totals_round_trip() -> None:
    values = [11 * (i + 1) for i in range(len(TOTALS))]
    t = totals_from_values(values, {"f": 3})
    assert totals_values(t) == values and t.charity_paid == {"f": 3}
    basic = {total.key: v for total, v in zip(TOTALS, values, strict=True) if total.field == "basic_paid"}
    assert t.basic_paid == basic
    acc = one_row(t, {"f": 5, "emergency_relief": 9}, ("f",))
    assert acc.person is not None and acc.person[0].tolist() == [*values, 3]
    assert read_row(acc, ("f",)) == (t, {"f": 5, "emergency_relief": 9})
    assert totals_values(t.minus(PersonYearTotals())) == values
    named = totals_json(t, str)
    assert list(named) == list(LAYOUT) and named["basic_paid"]["inpatient"] == str(values[0])


def test_a_field_s_totals_must_be_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    from settlement.engine import totals

    a_x, a_y, b = Total("a_x", "a", "x", "l"), Total("a_y", "a", "y", "l"), Total("b", "b", None, "m")
    monkeypatch.setattr(totals, "TOTALS", (a_x, b, a_y))
    with pytest.raises(ValueError, match="a_y is not next to the other totals of 'a'"):
        _layout()
    monkeypatch.setattr(totals, "TOTALS", (a_x, a_y._replace(layer="m"), b))
    with pytest.raises(ValueError, match="the totals of 'a' belong to different layers"):
        _layout()
    monkeypatch.setattr(totals, "TOTALS", (a_x, a_y, b))
    assert _layout() == {"a": slice(0, 2), "b": 2}
