"""Exact tick arithmetic for exit and add levels.

Prices are integer tick counts and averages are exact rationals, so a level never depends on float
noise (a CL average of 70.005 is exactly 7000.5 ticks, and rounds the same way every time). The
rules are in ``docs/recording-semantics.md`` ("Prices and units").
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

from actors.recorder.config import DcaUnit, Unit


@functools.lru_cache(maxsize=4096)
def exact(x: float) -> Fraction:
    """The decimal a user or feed meant by a float (``0.1`` is one tenth, not its binary twin).

    Cached: the arguments are mostly a recorder's settings (distances, trims, limits), the
    same few values for every position, and parsing the decimal string cost ~4 µs a call, a
    few times per signal. Equal floats give equal fractions, so a hit is the same value."""
    return Fraction(repr(x))


def round_half_up(x: Fraction | int) -> int:
    """``floor(x + 1/2)``: halves go up (towards +∞), the same for longs and shorts.

    For a fraction n/d (d > 0) that is ``(2n + d) // 2d`` in integers, without building the
    two intermediate Fractions (called for every level of every position)."""
    if type(x) is int:
        return x
    if type(x) is Fraction:
        return half_up(x.numerator, x.denominator)
    return math.floor(x + Fraction(1, 2))


def half_up(n: int, d: int) -> int:
    """``floor(n/d + 1/2)`` for ``d > 0``, in integers (``n/d`` need not be in lowest terms)."""
    return (2 * n + d) // (2 * d)


#: The exact number types the integer fast paths take apart (numerator, denominator).
RATIONAL = (int, Fraction)


#: Below this many ticks a float quotient is within 1e-3 ticks of the exact one (and NaN fails).
FLOAT_EXACT_TICKS = 2.0**40


def to_ticks(price: float, tick_size: Fraction) -> int:
    """A price on (or snapped to) the tick grid, as a tick count.

    A price within 1e-6 ticks of the grid (every real one) is converted in floats: the exact
    quotient then lies within far less than half a tick of the same integer, so round half up
    gives that integer too (the rule :func:`~actors.recorder.columns.to_tick_array` applies to
    whole batches). Anything else takes the exact path. Building the Fractions cost 50 µs a
    call, and a signal's fill price, a live tick and every position row went through here."""
    q = price / (tick_size.numerator / tick_size.denominator)
    if abs(q) < FLOAT_EXACT_TICKS:
        r = round(q)
        if abs(q - r) < 1e-6:
            return r
    return round_half_up(exact(price) / tick_size)


def distance_ticks(
    unit: Unit | DcaUnit,
    value: float,
    ref_ticks: Fraction,
    tick_size: Fraction,
    tick_value: Fraction,
    atr_ticks: Fraction | None = None,
) -> Fraction | None:
    """Convert a distance in ``unit`` to (fractional) ticks.

    ``percent`` is a percentage of the reference price; ``dollars`` is USD per contract; ``atr``
    is a multiple of ``atr_ticks`` and yields ``None`` while no ATR is known.
    """
    v = exact(value)
    match unit:
        case "ticks":
            return v
        case "points":
            return v / tick_size
        case "percent":
            return ref_ticks * v / 100
        case "dollars":
            return v / tick_value
        case "atr":
            return None if atr_ticks is None else v * atr_ticks
    raise ValueError(f"unknown unit {unit!r}")


def level(ref: Fraction | int, side: int, distance: Fraction | int) -> int:
    """The tick-grid level ``distance`` away from ``ref`` in the direction ``side`` (+1 up).

    :func:`round_half_up` of ``ref + side * distance`` worked out on numerators and
    denominators (a/b + side·c/d = (ad + side·cb)/bd; bd > 0), without the two Fractions
    that sum builds: every exit level of every position, on each signal."""
    if type(ref) in RATIONAL and type(distance) in RATIONAL:
        a, b = ref.numerator, ref.denominator
        c, d = distance.numerator, distance.denominator
        return half_up(a * d + side * c * b, b * d)
    return round_half_up(ref + side * distance)
