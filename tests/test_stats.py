"""Tests for :mod:`actors.recorder.stats` (SPEC §7 metric cards and daily P&L calendar)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.recorder.stats import (
    CME_TZ,
    DailyPnl,
    Stats,
    TradeRow,
    compute_stats,
    trade_date,
)


def utc(*args: int) -> float:
    """Epoch seconds of a UTC wall-clock time."""
    return datetime(*args, tzinfo=UTC).timestamp()


def ct(*args: int) -> float:
    """Epoch seconds of an America/Chicago wall-clock time."""
    return datetime(*args, tzinfo=CME_TZ).timestamp()


def rows(*pnls: float, start: float = 1_767_600_000.0, step: float = 60.0) -> list[TradeRow]:
    """Trades with the given P&Ls, one minute apart, in that order."""
    return [TradeRow(pnl=p, closed_at=start + i * step, quantity=1) for i, p in enumerate(pnls)]


# --------------------------------------------------------------------------- hand-computed cases


def test_no_trades() -> None:
    s = compute_stats([])
    assert s == Stats(
        trades=0,
        wins=0,
        losses=0,
        breakeven=0,
        net_pnl=0.0,
        gross_profit=0.0,
        gross_loss=0.0,
        win_rate=None,
        profit_factor=None,
        avg_win=None,
        avg_loss=None,
        largest_win=None,
        largest_loss=None,
        expectancy=None,
        max_drawdown=0.0,
        max_open_drawdown=0.0,
        daily=[],
        equity=[],
    )
    json.dumps(asdict(s), allow_nan=False)


def test_all_wins() -> None:
    trades = rows(100.0, 25.5, 12.5)
    s = compute_stats(trades)
    assert (s.trades, s.wins, s.losses, s.breakeven) == (3, 3, 0, 0)
    assert s.net_pnl == 138.0
    assert s.gross_profit == 138.0
    assert s.gross_loss == 0.0
    assert s.win_rate == 1.0
    assert s.profit_factor is None  # infinite: JSON cannot carry it
    assert s.avg_win == 46.0
    assert s.avg_loss is None
    assert s.largest_win == 100.0
    assert s.largest_loss is None
    assert s.expectancy == 46.0
    assert s.max_drawdown == 0.0
    assert [e for _, e in s.equity] == [100.0, 125.5, 138.0]
    json.dumps(asdict(s), allow_nan=False)


def test_mixed_sequence_known_drawdown() -> None:
    trades = rows(100, -50, -70, 30, -200, 500)
    s = compute_stats(trades)
    assert [e for _, e in s.equity] == [100, 50, -20, 10, -190, 310]
    assert [t for t, _ in s.equity] == [t.closed_at for t in trades]
    assert s.max_drawdown == -290.0  # peak 100 -> trough -190
    assert (s.trades, s.wins, s.losses, s.breakeven) == (6, 3, 3, 0)
    assert s.net_pnl == 310.0
    assert s.gross_profit == 630.0
    assert s.gross_loss == -320.0
    assert s.win_rate == 0.5
    assert s.profit_factor == pytest.approx(630 / 320)
    assert s.avg_win == 210.0
    assert s.avg_loss == -106.67
    assert s.largest_win == 500.0
    assert s.largest_loss == -200.0
    assert s.expectancy == 51.67


def test_first_losing_trade_is_a_drawdown() -> None:
    s = compute_stats(rows(-40, 10, -5))
    assert s.max_drawdown == -40.0
    assert s.profit_factor == pytest.approx(10 / 45)


def test_all_losses() -> None:
    s = compute_stats(rows(-10, -20))
    assert s.profit_factor == 0.0
    assert s.win_rate == 0.0
    assert s.max_drawdown == -30.0
    assert s.avg_loss == -15.0
    assert s.largest_loss == -20.0


def test_breakeven_trades() -> None:
    # 0.004 and -0.004 round to 0.00: float dust is breakeven, not a tiny win/loss.
    s = compute_stats(rows(50, 0.0, -25, 0.004, -0.004))
    assert (s.trades, s.wins, s.losses, s.breakeven) == (5, 1, 1, 3)
    assert s.win_rate == pytest.approx(1 / 5)  # breakeven counts as a trade, not a win
    assert s.gross_profit == 50.0
    assert s.gross_loss == -25.0
    assert s.profit_factor == 2.0
    assert s.avg_win == 50.0
    assert s.avg_loss == -25.0
    assert s.net_pnl == 25.0
    assert s.expectancy == 5.0


def test_only_breakeven() -> None:
    s = compute_stats(rows(0.0, -0.001))
    assert (s.trades, s.wins, s.losses, s.breakeven) == (2, 0, 0, 2)
    assert s.win_rate == 0.0
    assert s.profit_factor is None
    assert s.avg_win is None and s.avg_loss is None
    assert s.net_pnl == 0.0
    assert math.copysign(1.0, s.net_pnl) == 1.0  # no "-0.0" in the JSON
    assert math.copysign(1.0, s.max_drawdown) == 1.0


def test_sums_are_exact_and_rounded_at_the_end() -> None:
    s = compute_stats(rows(*([0.1] * 10)))
    assert s.net_pnl == 1.0
    assert s.equity[-1][1] == 1.0
    # Rounding happens once at the end: three 0.004 trades are breakeven each but sum to 0.01.
    s = compute_stats(rows(0.004, 0.004, 0.004))
    assert s.breakeven == 3
    assert s.net_pnl == 0.01
    # Half-even on the exact binary value: 0.125 is exactly representable -> 0.12.
    assert compute_stats(rows(0.125)).net_pnl == 0.12


def test_max_open_drawdown() -> None:
    trades = [
        TradeRow(pnl=10, closed_at=1.0, quantity=2, mae_usd=-50.0, mfe_usd=80.0),  # -100
        TradeRow(pnl=-5, closed_at=2.0, quantity=5, mae_usd=-30.0),  # -150
        TradeRow(pnl=1, closed_at=3.0, quantity=-3, mae_usd=-40.0),  # signed qty: -120
    ]
    assert compute_stats(trades).max_open_drawdown == -150.0
    assert compute_stats(rows(5, -5)).max_open_drawdown == 0.0


def test_unsorted_input_is_sorted_by_close_time() -> None:
    trades = rows(100, -50, -70, 30, -200, 500)
    s = compute_stats(list(reversed(trades)))
    assert [e for _, e in s.equity] == [100, 50, -20, 10, -190, 310]
    assert s.max_drawdown == -290.0


def test_ties_keep_input_order() -> None:
    # Same close time: the stable sort keeps the caller's order, which decides the curve.
    a = TradeRow(pnl=100, closed_at=10.0, quantity=1)
    b = TradeRow(pnl=-100, closed_at=10.0, quantity=1)
    c = TradeRow(pnl=-100, closed_at=10.0, quantity=1)
    first = TradeRow(pnl=1, closed_at=5.0, quantity=1)
    s = compute_stats([a, b, c, first])
    assert [e for _, e in s.equity] == [1, 101, 1, -99]
    assert s.max_drawdown == -200.0
    s = compute_stats([b, a, c, first])
    assert [e for _, e in s.equity] == [1, -99, 1, -99]
    assert s.max_drawdown == -100.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"pnl": math.nan},
        {"pnl": math.inf},
        {"closed_at": math.nan},
        {"mae_usd": 1.0},
        {"mfe_usd": -1.0},
        {"mae_usd": -math.inf},
    ],
)
def test_trade_row_rejects_bad_values(kwargs: dict[str, float]) -> None:
    base = {"pnl": 1.0, "closed_at": 0.0, "quantity": 1}
    with pytest.raises(ValueError):
        TradeRow(**(base | kwargs))


# --------------------------------------------------------------------------- CME trade dates


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        # Winter (CST = UTC-6), Tuesday 2026-01-13.
        (utc(2026, 1, 13, 22, 59, 59), date(2026, 1, 13)),  # 16:59:59 CT
        (utc(2026, 1, 13, 23, 0, 0), date(2026, 1, 14)),  # 17:00:00 CT -> next day
        (utc(2026, 1, 14, 5, 59, 59), date(2026, 1, 14)),  # 23:59:59 CT
        (utc(2026, 1, 14, 6, 0, 0), date(2026, 1, 14)),  # 00:00 CT
        # Friday evening and the weekend roll forward to Monday.
        (utc(2026, 1, 16, 22, 0, 0), date(2026, 1, 16)),  # Fri 16:00 CT
        (utc(2026, 1, 16, 23, 30, 0), date(2026, 1, 19)),  # Fri 17:30 CT -> Sat -> Mon
        (utc(2026, 1, 17, 18, 0, 0), date(2026, 1, 19)),  # Sat noon CT
        (utc(2026, 1, 18, 23, 0, 0), date(2026, 1, 19)),  # Sun 17:00 CT -> Mon
        (utc(2026, 1, 18, 16, 0, 0), date(2026, 1, 19)),  # Sun 10:00 CT -> Mon
        # March 2026: DST starts Sunday 2026-03-08 02:00 CT (UTC-6 -> UTC-5).
        (utc(2026, 3, 2, 22, 30, 0), date(2026, 3, 2)),  # Mon 16:30 CST
        (utc(2026, 3, 9, 22, 30, 0), date(2026, 3, 10)),  # Mon 17:30 CDT: same UTC, next day
        (utc(2026, 3, 9, 21, 59, 59), date(2026, 3, 9)),  # Mon 16:59:59 CDT
        (utc(2026, 3, 9, 22, 0, 0), date(2026, 3, 10)),  # Mon 17:00 CDT
        (utc(2026, 3, 8, 22, 0, 0), date(2026, 3, 9)),  # Sun 17:00 CDT (DST day) -> Mon
        (utc(2026, 3, 6, 22, 59, 59), date(2026, 3, 6)),  # Fri 16:59:59 CST
        # November 2026: DST ends Sunday 2026-11-01 02:00 CT (UTC-5 -> UTC-6).
        (utc(2026, 10, 26, 22, 30, 0), date(2026, 10, 27)),  # Mon 17:30 CDT
        (utc(2026, 11, 2, 22, 30, 0), date(2026, 11, 2)),  # Mon 16:30 CST: same UTC, same day
        (utc(2026, 11, 2, 22, 59, 59), date(2026, 11, 2)),  # Mon 16:59:59 CST
        (utc(2026, 11, 2, 23, 0, 0), date(2026, 11, 3)),  # Mon 17:00 CST
        (utc(2026, 11, 1, 6, 30, 0), date(2026, 11, 2)),  # Sun 01:30 CDT (first) -> Mon
        (utc(2026, 11, 1, 7, 30, 0), date(2026, 11, 2)),  # Sun 01:30 CST (repeat) -> Mon
        (utc(2026, 11, 1, 23, 0, 0), date(2026, 11, 2)),  # Sun 17:00 CST -> Mon
        (utc(2026, 10, 30, 21, 59, 59), date(2026, 10, 30)),  # Fri 16:59:59 CDT
    ],
)
def test_trade_date(ts: float, expected: date) -> None:
    assert trade_date(ts) == expected


def test_trade_date_matches_chicago_wall_clock() -> None:
    assert trade_date(ct(2026, 3, 9, 16, 59, 59)) == date(2026, 3, 9)
    assert trade_date(ct(2026, 3, 9, 17, 0, 0)) == date(2026, 3, 10)
    assert trade_date(ct(2026, 11, 3, 16, 59, 59)) == date(2026, 11, 3)
    assert trade_date(ct(2026, 11, 3, 17, 0, 0)) == date(2026, 11, 4)
    assert trade_date(int(ct(2026, 11, 3, 17, 0, 0))) == date(2026, 11, 4)


def test_daily_grouping_across_session_boundary_and_weekend() -> None:
    trades = [
        TradeRow(pnl=10, closed_at=ct(2026, 1, 13, 16, 59), quantity=1),  # Tue 13
        TradeRow(pnl=-4, closed_at=ct(2026, 1, 13, 17, 0), quantity=1),  # -> Wed 14
        TradeRow(pnl=1, closed_at=ct(2026, 1, 14, 10, 0), quantity=1),  # Wed 14
        TradeRow(pnl=7, closed_at=ct(2026, 1, 16, 15, 0), quantity=1),  # Fri 16
        TradeRow(pnl=2, closed_at=ct(2026, 1, 16, 17, 30), quantity=1),  # Fri eve -> Mon 19
        TradeRow(pnl=5, closed_at=ct(2026, 1, 18, 18, 0), quantity=1),  # Sun eve -> Mon 19
        TradeRow(pnl=3, closed_at=ct(2026, 1, 19, 9, 0), quantity=1),  # Mon 19
    ]
    s = compute_stats(trades[::-1])
    assert s.daily == [
        DailyPnl(date="2026-01-13", pnl=10.0, trades=1),
        DailyPnl(date="2026-01-14", pnl=-3.0, trades=2),
        DailyPnl(date="2026-01-16", pnl=7.0, trades=1),
        DailyPnl(date="2026-01-19", pnl=10.0, trades=3),
    ]


def test_daily_grouping_across_dst_changes() -> None:
    trades = [
        # March: 22:30 UTC is 16:30 CST before the change and 17:30 CDT after it.
        TradeRow(pnl=1, closed_at=utc(2026, 3, 2, 22, 30), quantity=1),  # Mon 2
        TradeRow(pnl=2, closed_at=utc(2026, 3, 8, 22, 0), quantity=1),  # Sun 17:00 CDT -> Mon 9
        TradeRow(pnl=4, closed_at=utc(2026, 3, 9, 21, 59), quantity=1),  # Mon 9 16:59 CDT
        TradeRow(pnl=8, closed_at=utc(2026, 3, 9, 22, 30), quantity=1),  # -> Tue 10
        # November: 22:30 UTC is 17:30 CDT before the change and 16:30 CST after it.
        TradeRow(pnl=16, closed_at=utc(2026, 10, 26, 22, 30), quantity=1),  # -> Tue Oct 27
        TradeRow(pnl=32, closed_at=utc(2026, 11, 1, 23, 0), quantity=1),  # Sun 17:00 CST -> Mon 2
        TradeRow(pnl=64, closed_at=utc(2026, 11, 2, 22, 30), quantity=1),  # Mon 2 16:30 CST
        TradeRow(pnl=128, closed_at=utc(2026, 11, 2, 23, 0), quantity=1),  # -> Tue 3
    ]
    s = compute_stats(trades)
    assert s.daily == [
        DailyPnl(date="2026-03-02", pnl=1.0, trades=1),
        DailyPnl(date="2026-03-09", pnl=6.0, trades=2),
        DailyPnl(date="2026-03-10", pnl=8.0, trades=1),
        DailyPnl(date="2026-10-27", pnl=16.0, trades=1),
        DailyPnl(date="2026-11-02", pnl=96.0, trades=2),
        DailyPnl(date="2026-11-03", pnl=128.0, trades=1),
    ]


# --------------------------------------------------------------------------- properties

# Timestamps 2020-01-01 .. 2035-01-01 UTC.
_TS = st.floats(min_value=1_577_836_800.0, max_value=2_051_222_400.0, allow_nan=False)
_CENTS = st.integers(min_value=-5_000_000, max_value=5_000_000)


@st.composite
def cent_trade(draw: st.DrawFn) -> TradeRow:
    """A trade whose P&L is a whole number of cents, as real money is."""
    return TradeRow(
        pnl=draw(_CENTS) / 100,
        closed_at=draw(_TS),
        quantity=draw(st.integers(min_value=1, max_value=50)),
        mae_usd=-draw(st.integers(min_value=0, max_value=1_000_000)) / 100,
        mfe_usd=draw(st.integers(min_value=0, max_value=1_000_000)) / 100,
    )


@st.composite
def float_trade(draw: st.DrawFn) -> TradeRow:
    """A trade with an arbitrary float P&L (sub-cent dust included)."""
    return TradeRow(
        pnl=draw(
            st.one_of(
                st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
                st.floats(min_value=-0.02, max_value=0.02, allow_nan=False),
            )
        ),
        closed_at=draw(_TS),
        quantity=draw(st.integers(min_value=-50, max_value=50)),
        mae_usd=draw(st.floats(min_value=-1e5, max_value=0.0, allow_nan=False)),
    )


cent_trades = st.lists(cent_trade(), max_size=60)
float_trades = st.lists(float_trade(), max_size=60)
unique_cent_trades = st.lists(cent_trade(), max_size=60, unique_by=lambda t: t.closed_at)


def in_cents(x: float) -> int:
    return round(x * 100)


def brute_force_max_drawdown(pnls: list[Fraction]) -> Fraction:
    """min(equity[j] - equity[i]) over all i <= j, equity starting at an explicit 0 point."""
    equity = [Fraction(0)]
    for p in pnls:
        equity.append(equity[-1] + p)
    return min(equity[j] - equity[i] for i in range(len(equity)) for j in range(i, len(equity)))


def close_order(trades: list[TradeRow]) -> list[TradeRow]:
    return sorted(trades, key=lambda t: t.closed_at)


@given(cent_trades)
def test_prop_cent_trades(trades: list[TradeRow]) -> None:
    s = compute_stats(trades)
    cents = [in_cents(t.pnl) for t in close_order(trades)]

    assert in_cents(s.net_pnl) == sum(cents)
    assert s.net_pnl == round(math.fsum(t.pnl for t in trades), 2)
    assert s.wins + s.losses + s.breakeven == s.trades == len(trades)
    assert s.wins == sum(c > 0 for c in cents)
    assert s.losses == sum(c < 0 for c in cents)
    assert in_cents(s.gross_profit) + in_cents(s.gross_loss) == sum(cents)

    assert s.max_drawdown <= 0
    assert in_cents(s.max_drawdown) >= -sum(-c for c in cents if c < 0)
    assert in_cents(s.max_drawdown) == brute_force_max_drawdown([Fraction(c) for c in cents])

    assert sum(in_cents(d.pnl) for d in s.daily) == sum(cents)
    assert sum(d.trades for d in s.daily) == len(trades)
    assert [d.date for d in s.daily] == sorted({d.date for d in s.daily})

    running = 0
    assert len(s.equity) == len(trades)
    for (ts, level), t, c in zip(s.equity, close_order(trades), cents, strict=True):
        running += c
        assert ts == t.closed_at
        assert in_cents(level) == running

    worst = min((in_cents(t.mae_usd) * t.quantity for t in trades), default=0)
    assert in_cents(s.max_open_drawdown) == worst
    json.dumps(asdict(s), allow_nan=False)


@given(float_trades)
def test_prop_float_trades(trades: list[TradeRow]) -> None:
    s = compute_stats(trades)
    exact = [Fraction(t.pnl) for t in close_order(trades)]
    half_cent = 0.005 + 1e-9

    assert s.net_pnl == round(math.fsum(t.pnl for t in trades), 2)
    assert abs(s.net_pnl - float(sum(exact))) <= half_cent
    assert s.wins + s.losses + s.breakeven == s.trades == len(trades)
    assert s.max_drawdown <= 0
    assert s.max_drawdown >= -float(sum(-p for p in exact if p < 0)) - half_cent
    assert abs(s.max_drawdown - float(brute_force_max_drawdown(exact))) <= half_cent
    # Each day is rounded separately, so allow half a cent per day (and per total).
    assert abs(math.fsum(d.pnl for d in s.daily) - s.net_pnl) <= half_cent * (len(s.daily) + 1)
    assert sum(d.trades for d in s.daily) == len(trades)
    if s.losses:
        assert s.gross_loss < 0 and s.profit_factor is not None and s.profit_factor >= 0
    else:
        assert s.profit_factor is None
    if s.trades:
        assert s.win_rate is not None and 0 <= s.win_rate <= 1
    assert s.avg_loss is None or s.avg_loss <= 0
    assert s.avg_win is None or s.avg_win >= 0
    assert s.max_open_drawdown <= 0
    json.dumps(asdict(s), allow_nan=False)


@given(st.data(), unique_cent_trades)
def test_prop_order_independent(data: st.DataObject, trades: list[TradeRow]) -> None:
    shuffled = data.draw(st.permutations(trades))
    assert compute_stats(shuffled) == compute_stats(trades)


@settings(max_examples=50)
@given(st.data(), st.lists(cent_trade(), max_size=30))
def test_prop_order_independent_with_ties(data: st.DataObject, trades: list[TradeRow]) -> None:
    # Force some identical close times; then only the curve/drawdown may depend on tie order.
    times = data.draw(st.lists(_TS, min_size=1, max_size=3))
    trades = [replace(t, closed_at=times[i % len(times)]) for i, t in enumerate(trades)]
    shuffled = data.draw(st.permutations(trades))
    a, b = compute_stats(trades), compute_stats(shuffled)
    assert replace(a, equity=[], max_drawdown=0.0) == replace(b, equity=[], max_drawdown=0.0)
    # The curve passes through the same close times and ends at the same total.
    assert sorted(ts for ts, _ in a.equity) == sorted(ts for ts, _ in b.equity)
    assert a.equity[-1:] == b.equity[-1:]


@given(float_trades)
def test_prop_float_order_independent_aggregates(trades: list[TradeRow]) -> None:
    a, b = compute_stats(trades), compute_stats(trades[::-1])
    assert (a.net_pnl, a.gross_profit, a.gross_loss, a.daily) == (
        b.net_pnl,
        b.gross_profit,
        b.gross_loss,
        b.daily,
    )
