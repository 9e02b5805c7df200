"""Tick and bar value types, the source protocol, and tick-grid arithmetic.

Prices are handled internally as *integer tick counts* and converted to floats only at the edge.
That is what makes "exactly one tick apart" and "on the grid" checkable with ``==``: a float such as
``4500.1 + 0.1`` drifts, but ``ticks_to_price(45002, 0.1)`` is always the float nearest to the exact
decimal 4500.2, so two paths that reach the same level produce bit-identical prices.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Protocol, runtime_checkable

from actors.instruments import price_to_ticks

__all__ = [
    "Bar",
    "Tick",
    "TickSource",
    "price_to_ticks",
    "snap_price",
    "ticks_to_price",
]


@dataclass(frozen=True, slots=True)
class Tick:
    """One trade/quote print."""

    symbol: str
    ts: float  # epoch seconds (UTC)
    price: float  # on the tick grid


@dataclass(frozen=True, slots=True)
class Bar:
    """One OHLC bar; ``ts`` is the bar's *open* time and the bar covers ``[ts, ts + duration_s)``."""

    symbol: str
    ts: float  # epoch seconds (UTC), bar open time
    open: float
    high: float
    low: float
    close: float
    duration_s: float = 60.0


@runtime_checkable
class TickSource(Protocol):
    """Yields ticks in time order. A source is a plain iterator so the feed actor can pace it."""

    def __iter__(self) -> Iterator[Tick]: ...


@lru_cache(maxsize=256)
def _dec_tick(tick_size: float) -> Decimal:
    """Tick size as the decimal its shortest repr denotes (0.1 -> Decimal('0.1'), not 0.1000…0555)."""
    if not tick_size > 0:  # also rejects NaN
        raise ValueError(f"tick_size must be > 0, got {tick_size!r}")
    return Decimal(repr(float(tick_size)))


def ticks_to_price(n: int, tick_size: float) -> float:
    """Float nearest to the exact decimal ``n * tick_size``."""
    return float(n * _dec_tick(tick_size))


def snap_price(price: float, tick_size: float) -> float:
    """``price`` rounded to the tick grid (half up, as everywhere)."""
    return ticks_to_price(price_to_ticks(price, tick_size), tick_size)
