"""The integer shortcut of claims.models._scaled gives what the exact Decimal way gives, errors included."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from settlement.claims.models import MAX_QUANTITY, MAX_UNIT_PRICE, _scaled, _scaled_exact

BOUNDS = [(0, MAX_QUANTITY, False), (0, MAX_UNIT_PRICE, True)]


def outcome(f: Any, value: Any, low: int, high: int, inclusive: bool) -> tuple[str, Any]:
    try:
        return "ok", f(value, low, high, inclusive)
    except ValueError as exc:
        return "error", str(exc)


decimal_strings = st.builds(
    lambda whole, frac: whole + ("." + frac if frac is not None else ""),
    st.from_regex(r"[0-9]{1,12}", fullmatch=True),
    st.none() | st.from_regex(r"[0-9]{1,7}", fullmatch=True),
)
values = (
    st.integers(min_value=-10, max_value=2 * MAX_UNIT_PRICE)
    | decimal_strings
    | st.sampled_from(["0", "0.0", "0.0000", "1.50000", "10000", "10000.0001", "1000000", "1000000.00", "", "1.", ".5",
                       "-1", "1e3", " 1", "１", True, False, 1.5, Decimal("2.25")])
)


@given(values, st.sampled_from(BOUNDS))
def test_shortcut_equals_the_exact_way(value: Any, bounds: tuple[int, int, bool]) -> None:
    low, high, inclusive = bounds
    assert outcome(_scaled, value, low, high, inclusive) == outcome(_scaled_exact, value, low, high, inclusive)


def test_the_common_shapes() -> None:
    assert _scaled("35.00", 0, MAX_UNIT_PRICE, True) == 350_000
    assert _scaled("0.0001", 0, MAX_UNIT_PRICE, True) == 1
    assert _scaled(3, 0, MAX_QUANTITY, False) == 30_000
    assert _scaled("0", 0, MAX_UNIT_PRICE, True) == 0  # the inclusive bound, by the exact way
    assert outcome(_scaled, "0", 0, MAX_QUANTITY, False)[0] == "error"
