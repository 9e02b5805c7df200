"""Performance statistics of a recorder's closed trades (SPEC §7 metric cards and P&L calendar).

Pure: no I/O, no Ray, no database. The store hands over :class:`TradeRow` values and the API
serialises the resulting :class:`Stats` (``dataclasses.asdict`` works; every field is a plain
number, ``None``, a string or a list of those, never ``inf``/``nan``, so it is JSON-safe).

Money conventions
-----------------
* Every sum goes through :func:`math.fsum` (or the exact running sum below for the equity curve),
  so the result does not depend on summation order and does not drift over thousands of trades.
* Every *reported* money figure is rounded to cents once, at the very end, with Python's
  :func:`round` — round-half-even on the exact binary value of the float — never along the way.
  ``-0.0`` is normalised to ``0.0``.
* A trade is a win, loss or breakeven by its P&L *rounded to cents*: float dust such as ``1e-12``
  left by ``price × multiplier − fees`` arithmetic is breakeven, not a tiny win. Breakeven trades
  count as trades (so they lower the win rate) but add to neither gross profit nor gross loss.
* Ratios (``win_rate``, ``profit_factor``) are not money and are not rounded; ``win_rate`` is a
  fraction in ``[0, 1]``, not a percentage.

Ordering
--------
Trades are sorted by ``closed_at`` with a *stable* sort, so trades closed at the same instant keep
the caller's order (pass them in id order). Only the equity curve and the drawdown can depend on
that order among ties; every other figure is independent of input order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from actors.sessions import trading_day

__all__ = ["DailyPnl", "Stats", "TradeRow", "compute_stats", "trade_date"]

CME_TZ = ZoneInfo("America/Chicago")
# The CME Globex session opens at 17:00 Chicago time and belongs to the next day's trade date;
# shifting the wall clock by 7 hours maps 17:00 onto midnight of that next day.


@dataclass(frozen=True, slots=True)
class TradeRow:
    """What the statistics need of one closed trade.

    ``mae_usd``/``mfe_usd`` are per contract (maximum adverse / favourable excursion while the
    trade was open); they are multiplied by ``|quantity|`` so a signed quantity also works.
    """

    pnl: float  # USD, net of fees
    closed_at: float  # epoch seconds UTC
    quantity: int
    mae_usd: float = 0.0  # per contract, <= 0
    mfe_usd: float = 0.0  # per contract, >= 0

    def __post_init__(self) -> None:
        # A single NaN/inf would poison every sum and cannot be carried by JSON; fail at the
        # boundary where the bad row is identifiable instead of returning garbage stats.
        for name in ("pnl", "closed_at", "mae_usd", "mfe_usd"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"TradeRow.{name} must be finite, got {value!r}")
        if self.mae_usd > 0:
            raise ValueError(f"TradeRow.mae_usd must be <= 0, got {self.mae_usd!r}")
        if self.mfe_usd < 0:
            raise ValueError(f"TradeRow.mfe_usd must be >= 0, got {self.mfe_usd!r}")


@dataclass(frozen=True, slots=True)
class DailyPnl:
    """Net P&L and trade count of one CME trade date (``date`` is ISO ``YYYY-MM-DD``)."""

    date: str
    pnl: float
    trades: int


@dataclass(frozen=True, slots=True)
class Stats:
    """Metric cards of a set of closed trades. Money in USD, rounded to cents.

    ``None`` means "undefined" (no trades, no wins, no losses): ``profit_factor`` is ``None``
    when there is no losing trade, because the true value (``inf``, or ``0/0``) cannot be carried
    by JSON. ``max_drawdown`` is measured on the closed-trade equity curve starting from a 0 peak,
    so a first losing trade is already a drawdown. ``max_open_drawdown`` is the worst open-trade
    excursion of any single trade (``min(mae_usd × |quantity|)``), 0 with no trades.
    """

    trades: int
    wins: int
    losses: int
    breakeven: int
    net_pnl: float
    gross_profit: float  # >= 0
    gross_loss: float  # <= 0
    win_rate: float | None  # wins / trades
    profit_factor: float | None  # gross_profit / |gross_loss|
    avg_win: float | None
    avg_loss: float | None  # <= 0
    largest_win: float | None
    largest_loss: float | None  # <= 0
    expectancy: float | None  # net_pnl / trades
    max_drawdown: float  # <= 0
    max_open_drawdown: float  # <= 0
    daily: list[DailyPnl]  # in trade date order, only dates with trades
    equity: list[tuple[float, float]]  # (closed_at, cumulative pnl) per trade in close order


def trade_date(ts: float) -> date:
    """CME trade date of epoch seconds ``ts`` (the rule lives in :func:`actors.sessions.trading_day`:
    from 17:00 CT a timestamp belongs to the next day's session; weekends roll to Monday)."""
    return trading_day(datetime.fromtimestamp(ts, tz=UTC))


class _RunningSum:
    """Exact running sum (Shewchuk partials, as in :func:`math.fsum`).

    The equity curve needs every prefix sum; calling ``fsum`` on each prefix would be O(n²), and
    a plain ``+=`` accumulates rounding error. Keeping the non-overlapping partials makes each
    prefix value the correctly rounded exact sum, identical to ``math.fsum(prefix)``.
    """

    __slots__ = ("_partials",)

    def __init__(self) -> None:
        self._partials: list[float] = []

    def add(self, x: float) -> None:
        partials = self._partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    @property
    def value(self) -> float:
        return math.fsum(self._partials)


def _cents(x: float) -> float:
    """Round a money figure to cents (half-even on the binary value); ``-0.0`` becomes ``0.0``."""
    return round(x, 2) + 0.0


def _cents_or_none(x: float | None) -> float | None:
    return None if x is None else _cents(x)


def compute_stats(trades: Sequence[TradeRow]) -> Stats:
    """Compute the metric cards, equity curve and daily calendar of closed ``trades``.

    ``trades`` may come in any order; they are stably sorted by ``closed_at`` (see module doc).
    """
    ordered = sorted(trades, key=lambda t: t.closed_at)
    n = len(ordered)

    win_pnls: list[float] = []
    loss_pnls: list[float] = []
    breakeven = 0
    for t in ordered:
        rounded = round(t.pnl, 2)
        if rounded > 0:
            win_pnls.append(t.pnl)
        elif rounded < 0:
            loss_pnls.append(t.pnl)
        else:
            breakeven += 1

    net = math.fsum(t.pnl for t in ordered)
    gross_profit = math.fsum(win_pnls)
    gross_loss = math.fsum(loss_pnls)
    wins, losses = len(win_pnls), len(loss_pnls)

    # Equity curve and max drawdown in one pass. The curve starts at an implicit 0 point that is
    # also the initial peak, so losing from the start counts as a drawdown.
    running = _RunningSum()
    peak = 0.0
    max_dd = 0.0
    equity: list[tuple[float, float]] = []
    for t in ordered:
        running.add(t.pnl)
        level = running.value
        peak = max(peak, level)
        max_dd = min(max_dd, level - peak)
        equity.append((t.closed_at, _cents(level)))

    max_open_dd = min((t.mae_usd * abs(t.quantity) for t in ordered), default=0.0)

    by_day: dict[date, list[float]] = {}
    for t in ordered:
        by_day.setdefault(trade_date(t.closed_at), []).append(t.pnl)
    daily = [
        DailyPnl(date=day.isoformat(), pnl=_cents(math.fsum(pnls)), trades=len(pnls))
        for day, pnls in sorted(by_day.items())
    ]

    return Stats(
        trades=n,
        wins=wins,
        losses=losses,
        breakeven=breakeven,
        net_pnl=_cents(net),
        gross_profit=_cents(gross_profit),
        gross_loss=_cents(gross_loss),
        win_rate=wins / n if n else None,
        # A loss is at least half a cent, so gross_loss is never 0 when there are losses.
        profit_factor=gross_profit / -gross_loss if losses else None,
        avg_win=_cents_or_none(gross_profit / wins if wins else None),
        avg_loss=_cents_or_none(gross_loss / losses if losses else None),
        largest_win=_cents_or_none(max(win_pnls, default=None)),
        largest_loss=_cents_or_none(min(loss_pnls, default=None)),
        expectancy=_cents_or_none(net / n if n else None),
        max_drawdown=_cents(max_dd),
        max_open_drawdown=_cents(min(max_open_dd, 0.0)),
        daily=daily,
        equity=equity,
    )
