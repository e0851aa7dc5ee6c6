"""Integer money and exact rates.

Money is integer fen everywhere; rates are integer basis points (1/10,000).
There is exactly one rounding rule in the product, :func:`round_half_up_div`;
every other helper here is built on it so that the counter, the batch and the
compiled kernels can never disagree: `jit.helper` leaves these functions
plain Python (they work on ints and on numpy arrays alike) and lets the
compiled kernels call the very same source.
"""

from __future__ import annotations

from decimal import Decimal

from settlement.jit import helper

RATE_SCALE = 10_000
"""Rates are held in basis points: 0.85 is 8500."""

FEN_PER_YUAN = 100
QTY_SCALE = 10_000
"""Quantities and unit prices are read with at most 4 decimals, held scaled by 10^4."""


@helper(inline=True)
def round_half_up_div(numerator: int, denominator: int) -> int:
    """round(numerator / denominator), half up, for numerator >= 0 and even denominator.

    The one rounding function of SPEC §2. Integer only: every product is exact
    before it is rounded, and the result is exact for any int64 numerator.
    """
    return (numerator + denominator // 2) // denominator


DIRECT_LIMIT = (2**63 - 1) // RATE_SCALE
"""Below this, amount × rate fits int64 and needs no split."""


@helper(inline=True)
def mul_rate(amount_fen: int, rate_bp: int) -> int:
    """round(amount × rate) in fen for a rate in basis points.

    Line amounts and every realistic bill multiply directly; an amount above
    DIRECT_LIMIT (9.2e14 fen) is split at 10^4 so the product never leaves
    int64: amount × rate = hi·rate + lo·rate/10^4 with lo < 10^4. Both give
    the same exact result.
    """
    if amount_fen <= DIRECT_LIMIT:
        return round_half_up_div(amount_fen * rate_bp, RATE_SCALE)
    hi = amount_fen // RATE_SCALE
    lo = amount_fen - hi * RATE_SCALE
    return hi * rate_bp + round_half_up_div(lo * rate_bp, RATE_SCALE)


@helper(inline=True)
def mul_rate_exact(amount_fen: int, rate_bp: int) -> tuple[int, int]:
    """amount × rate as (whole fen, remainder in 1/10^4 fen), unrounded.

    Lets a sum of products (the critical-illness bands) be rounded once.
    """
    hi = amount_fen // RATE_SCALE
    lo = amount_fen - hi * RATE_SCALE
    return hi * rate_bp, lo * rate_bp


def decimal_places(value: Decimal) -> int:
    """Decimals counted by value: 1.50000 has one."""
    if value == 0:
        return 0
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def decimal_to_scaled(value: Decimal, scale: int) -> int:
    """Exact Decimal → integer units of 1/scale; caller has checked the decimals."""
    scaled = value * scale
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more decimals than 1/{scale}")
    return int(scaled)


_CENTS = tuple(f".{c:02d}" for c in range(100))


def format_fen(fen: int) -> str:
    """Fen as the JSON money string of SPEC §2: yuan with exactly two decimals."""
    if fen < 0:
        return "-" + format_fen(-fen)
    yuan, cents = divmod(int(fen), 100)
    return f"{yuan}{_CENTS[cents]}"


def format_rate(rate_bp: int) -> str:
    """Basis points as a plain percentage for traces: 8500 → '85%'."""
    whole, frac = divmod(int(rate_bp), 100)
    return f"{whole}%" if frac == 0 else f"{whole}.{frac:02d}".rstrip("0") + "%"
