"""Exact tick arithmetic for exit and add levels.

Prices are integer tick counts and averages are exact rationals, so a level never depends on float
noise (a CL average of 70.005 is exactly 7000.5 ticks, and rounds the same way every time). The
rules are in ``docs/recording-semantics.md`` ("Prices and units").
"""

from __future__ import annotations

import math
from fractions import Fraction

from actors.recorder.config import DcaUnit, Unit


def exact(x: float) -> Fraction:
    """The decimal a user or feed meant by a float (``0.1`` is one tenth, not its binary twin)."""
    return Fraction(repr(x))


def round_half_up(x: Fraction) -> int:
    """``floor(x + 1/2)``: halves go up (towards +∞), the same for longs and shorts."""
    return math.floor(x + Fraction(1, 2))


def to_ticks(price: float, tick_size: Fraction) -> int:
    """A price on (or snapped to) the tick grid, as a tick count."""
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


def level(ref: Fraction, side: int, distance: Fraction) -> int:
    """The tick-grid level ``distance`` away from ``ref`` in the direction ``side`` (+1 up)."""
    return round_half_up(ref + side * distance)
