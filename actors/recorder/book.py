"""One open position in one contract: fills, exact weighted average, partial closes, excursions.

Everything is in integer ticks and exact rationals (see ``levels.py``); money is an exact
``Fraction`` of USD and becomes a float only at the edges (API, store). The exit rules that
decide *when* to close live in ``exits.py``; this module only knows *how* a fill changes a
position and what a closed quantity earned.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from fractions import Fraction

from actors.instruments import ContractSpec

LONG, SHORT = 1, -1

Exact = Fraction | int
"""An exact number; whole ones are kept as ``int`` (:func:`whole`)."""


def whole(x: Exact) -> Exact:
    """``x`` as an ``int`` when it is whole. Most averages and moves are whole ticks, and int
    arithmetic and comparisons cost a tenth of ``Fraction``'s (which was ~40 % of a live exit's
    CPU); the values are equal either way, so the results are the same."""
    return x.numerator if x.denominator == 1 else x


def side_name(side: int) -> str:
    return "long" if side == LONG else "short"


def order_side(side: int, *, closing: bool) -> str:
    """Broker side of an order: opening a long or closing a short buys."""
    return "buy" if (side == LONG) != closing else "sell"


@dataclass(slots=True, frozen=True)
class Money:
    """Tick geometry of a contract as exact rationals."""

    tick_size: Fraction
    tick_value: Fraction
    #: tick_value as (numerator, denominator): excursions compare as integers (Position.observe)
    value_ratio: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ratio = (self.tick_value.numerator, self.tick_value.denominator)
        object.__setattr__(self, "value_ratio", ratio)

    @classmethod
    def of(cls, spec: ContractSpec) -> Money:
        """One (immutable) instance per tick geometry, shared by every book of the contract:
        one per book was three objects the garbage collector walked per open position."""
        return _money(spec.tick_size, spec.tick_value)

    def price(self, ticks: Fraction | int) -> Fraction:
        if type(ticks) is int:  # one Fraction built, not two and a product
            return Fraction(ticks * self.tick_size.numerator, self.tick_size.denominator)
        return Fraction(ticks) * self.tick_size

    def price_float(self, ticks: Fraction | int) -> float:
        """``float(self.price(ticks))`` without building the Fraction: Python divides two
        ints correctly rounded, so the same rational gives the same float however it is
        written (the API's and the store's prices: several per position row)."""
        size = self.tick_size
        if type(ticks) is int:
            return ticks * size.numerator / size.denominator
        if type(ticks) is Fraction:
            return ticks.numerator * size.numerator / (ticks.denominator * size.denominator)
        return float(self.price(ticks))  # numpy ints and the like


@functools.cache
def _money(tick_size: float, tick_value: float) -> Money:
    return Money(Fraction(repr(tick_size)), Fraction(repr(tick_value)))


@dataclass(slots=True, frozen=True)
class Trade:
    """One closed quantity. Prices in price units, money in USD, both exact."""

    symbol: str
    side: int
    quantity: int
    entry_price: Fraction
    exit_price: Fraction
    pnl: Fraction
    reason: str
    open_ts: float
    close_ts: float
    mfe_points: Fraction
    mae_points: Fraction
    mfe_usd: Fraction
    mae_usd: Fraction

    def row(self) -> dict[str, object]:
        return {
            "symbol": self.symbol,
            "side": side_name(self.side),
            "quantity": self.quantity,
            "entry_price": float(self.entry_price),
            "exit_price": float(self.exit_price),
            "pnl": float(self.pnl),
            "reason": self.reason,
            "opened_at": self.open_ts,
            "closed_at": self.close_ts,
            "mfe_points": float(self.mfe_points),
            "mae_points": float(self.mae_points),
            "mfe_usd": float(self.mfe_usd),
            "mae_usd": float(self.mae_usd),
        }


@dataclass(slots=True)
class Position:
    """An open position. ``avg`` is the exact average entry in ticks."""

    symbol: str
    side: int
    qty: int
    avg: Exact
    first_entry: int
    opened_ts: float
    last_price: int
    best_move: Exact = 0
    worst_move: Exact = 0
    best_unrealised: Exact = 0
    worst_unrealised: Exact = 0
    best_price: int = 0
    worst_price: int = 0

    @classmethod
    def open(cls, symbol: str, side: int, qty: int, price: int, ts: float) -> Position:
        if qty <= 0:
            raise ValueError("quantity must be positive")
        return cls(
            symbol=symbol,
            side=side,
            qty=qty,
            avg=price,
            first_entry=price,
            opened_ts=ts,
            last_price=price,
            best_price=price,
            worst_price=price,
        )

    def add(self, qty: int, price: int) -> None:
        """Add contracts on the same side: the average becomes the quantity-weighted mean."""
        if qty <= 0:
            raise ValueError("quantity must be positive")
        self.avg = whole(Fraction(self.avg * self.qty + price * qty, self.qty + qty))
        self.qty += qty

    def move(self, price: int) -> Exact:
        """Per-contract move in ticks, positive in the position's favour."""
        avg = self.avg
        if type(avg) is Fraction and type(price) is int:
            # an average after adds: one Fraction built, not two (n/d in lowest terms, so
            # gcd(price*d - n, d) = 1 and the quotient is already reduced)
            d = avg.denominator
            return Fraction(self.side * (price * d - avg.numerator), d)
        return self.side * (price - avg)

    def unrealised(self, price: int, money: Money) -> Exact:
        return self.move(price) * money.tick_value * self.qty

    def observe(self, price: int, money: Money) -> None:
        """Step (a): a price the position saw, with the quantity it holds now."""
        m = self.move(price)
        if m > self.best_move:
            self.best_move = m
        if m < self.worst_move:
            self.worst_move = m
        if type(m) is int or type(m) is Fraction:
            # u = m * qty * tick_value = n/d compared by cross-multiplying integers (denominators
            # are positive): a Fraction is only built for a new extreme, not for every price seen
            tn, td = money.value_ratio
            n, d = m.numerator * self.qty * tn, m.denominator * td
            best, worst = self.best_unrealised, self.worst_unrealised
            if n * best.denominator > best.numerator * d:
                self.best_unrealised = whole(Fraction(n, d))
            if n * worst.denominator < worst.numerator * d:
                self.worst_unrealised = whole(Fraction(n, d))
        else:
            u = m * money.tick_value * self.qty
            if u > self.best_unrealised:
                self.best_unrealised = u
            if u < self.worst_unrealised:
                self.worst_unrealised = u
        if self.side * (price - self.best_price) > 0:
            self.best_price = price
        if self.side * (price - self.worst_price) < 0:
            self.worst_price = price
        self.last_price = price

    def close(self, qty: int, price: Fraction | int, ts: float, reason: str, money: Money) -> Trade:
        """Remove ``qty`` contracts at ``price`` (ticks) at the current average."""
        self._check_close(qty)
        price = Fraction(price)
        trade = Trade(
            symbol=self.symbol,
            side=self.side,
            quantity=qty,
            entry_price=money.price(self.avg),
            exit_price=money.price(price),
            pnl=self.side * (price - self.avg) * money.tick_value * qty,
            reason=reason,
            open_ts=self.opened_ts,
            close_ts=ts,
            mfe_points=money.price(self.best_move),
            mae_points=money.price(self.worst_move),
            mfe_usd=self.best_move * money.tick_value,
            mae_usd=self.worst_move * money.tick_value,
        )
        self.qty -= qty
        return trade

    def cut(self, qty: int) -> None:
        """Remove ``qty`` contracts without booking a trade: what :meth:`close` does to the
        position, at a tenth of its cost (no exact money)."""
        self._check_close(qty)
        self.qty -= qty

    def _check_close(self, qty: int) -> None:
        if not 0 < qty <= self.qty:
            raise ValueError(f"cannot close {qty} of {self.qty}")
