"""Exactness guard: the production pair equals the naive per-tick reference, event by event.

Random recorder settings (TP ladders, fixed/trailing/break-even stops, DCA in every unit, sizing
flags) and random streams of signals and ticks (gaps, flat runs, spikes, adds, reversals,
strategy targets) go through both; after every event the outcome, every new trade (exact
fractions: prices, P&L, MFE/MAE) and the open position (side, quantity, average, worst/best
unrealised, effective stop, target levels, DCA levels fired) must be identical.
"""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.instruments import spec_for
from actors.recorder.config import (
    BreakEven,
    Dca,
    RecorderSettings,
    Sizing,
    StopLoss,
    TakeProfit,
    TakeProfitTarget,
    TrailingStop,
)
from actors.recorder.pair import Pair
from tests.reference.naive import NaiveRecorder

CONTRACTS = ["MNQZ5", "ESZ5", "CLZ5", "ZNZ5", "6EZ5", "YMZ5"]

# distance magnitudes per unit that give levels a few to a few hundred ticks away
UNIT_RANGES = {
    "ticks": (1, 30),
    "points": (0.25, 15.0),
    "percent": (0.01, 1.5),
    "dollars": (5.0, 300.0),
}


def distance(unit: str) -> st.SearchStrategy[float]:
    lo, hi = UNIT_RANGES[unit]
    if unit == "ticks":
        return st.integers(int(lo), int(hi)).map(float)
    return st.floats(lo, hi, allow_nan=False).map(lambda x: max(lo, round(x, 2)))


units = st.sampled_from(list(UNIT_RANGES))


@st.composite
def take_profits(draw: st.DrawFn) -> TakeProfit | None:
    if draw(st.booleans()):
        return None
    unit = draw(units)
    n = draw(st.integers(1, 3))
    values = sorted(set(draw(st.lists(distance(unit), min_size=n, max_size=n))))
    trims = draw(
        st.lists(
            st.sampled_from([25.0, 33.0, 50.0, 100.0]), min_size=len(values), max_size=len(values)
        )
    )
    return TakeProfit(
        unit=unit,
        targets=[TakeProfitTarget(value=v, trim=t) for v, t in zip(values, trims, strict=True)],
    )


@st.composite
def recorder_settings(draw: st.DrawFn) -> RecorderSettings:
    initial = draw(st.integers(1, 4))
    sizing = Sizing(
        initial_size=initial,
        add_size=draw(st.integers(1, 3)),
        allow_add=draw(st.booleans()),
        close_only=draw(st.booleans()),
    )
    sl = None
    if draw(st.booleans()):
        u = draw(units)
        sl = StopLoss(unit=u, value=draw(distance(u)))
    trail = None
    if draw(st.booleans()):
        u = draw(units)
        trail = TrailingStop(unit=u, trigger=draw(distance(u)), distance=draw(distance(u)))
    be = None
    if draw(st.booleans()):
        u = draw(units)
        be = BreakEven(
            unit=u, trigger=draw(distance(u)), offset=draw(st.sampled_from([0.0, 1.0, 2.0]))
        )
    dca = None
    if draw(st.booleans()):
        u = draw(st.sampled_from(["ticks", "points", "percent", "atr"]))
        step = draw(st.floats(0.5, 3.0).map(lambda x: round(x, 2)) if u == "atr" else distance(u))
        dca = Dca(
            unit=u,
            step=step,
            add_size=draw(st.integers(1, 2)),
            max_quantity=initial + draw(st.integers(0, 4)),
            atr_period=draw(st.integers(1, 5)),
        )
    return RecorderSettings(
        sizing=sizing,
        take_profit=draw(take_profits()),
        stop_loss=sl,
        trailing_stop=trail,
        break_even=be,
        dca=dca,
    )


tick_move = st.one_of(
    st.just(0),  # flat runs
    st.sampled_from([-1, 1]),  # one tick at a time: every level gets touched exactly
    st.integers(-3, 3),  # ordinary trading
    st.integers(-40, 40),  # gaps
    st.sampled_from([-150, 150]),  # spikes
)

signal_event = st.tuples(
    st.just("signal"),
    st.sampled_from(["buy", "sell", "buy", "sell", "close", "add", "target"]),
    st.one_of(st.none(), st.integers(-20, 20)),  # price offset from the last tick, or no price
    st.one_of(st.none(), st.integers(1, 4)),  # quantity
    st.integers(-5, 5),  # target
)
tick_event = st.tuples(st.just("tick"), tick_move, st.floats(0.2, 45.0))
events = st.lists(
    st.one_of(tick_event, tick_event, tick_event, tick_event, signal_event),
    min_size=10,
    max_size=200,
)


def frac_price(pair: Pair, symbol: str, ticks: int | Fraction | None) -> Fraction | None:
    return None if ticks is None else pair.book(symbol).money.price(ticks)


def compare_position(pair: Pair, ref: NaiveRecorder, symbol: str) -> None:
    b = pair.book(symbol)
    rp = ref.position()
    if rp is None:
        assert b.pos is None
        return
    pos, ex = b.pos, b.exits
    assert pos is not None and ex is not None
    assert (pos.side, pos.qty) == ({"long": 1, "short": -1}[rp.side], rp.quantity)
    assert b.money.price(pos.avg) == rp.avg_price
    assert pos.worst_unrealised == rp.worst_unrealised
    assert pos.best_unrealised == rp.best_unrealised
    assert frac_price(pair, symbol, ex.effective_stop(pos.side)[0]) == rp.stop_price
    assert [frac_price(pair, symbol, lv) for lv in ex.tp_levels] == rp.target_prices
    assert ex.dca_fired == rp.dca_levels_fired


def run_both(
    cfg: RecorderSettings, symbol: str, start: int, evs: list[tuple]
) -> tuple[Pair, NaiveRecorder]:
    spec = spec_for(symbol)
    pair = Pair("p", cfg, spec_for)
    ref = NaiveRecorder(cfg, spec.tick_size, spec.tick_value)
    money = pair.book(symbol).money
    px, ts, n_trades = start, 1_000_000.0, 0
    for ev in evs:
        if ev[0] == "tick":
            _, move, dt = ev
            px = max(1, px + move)
            ts += dt
            price = float(money.price(px))
            out = pair.on_tick(symbol, ts, price)
            ref.tick(ts, price)
            status = "applied"
        else:
            _, action, offset, qty, target = ev
            ts += 0.5
            price = None if offset is None else float(money.price(max(1, px + offset)))
            tgt = target if action == "target" else None
            out = pair.on_signal(symbol, ts, action, price, qty, tgt)
            status = ref.signal(ts, action, price, qty, tgt)
        assert out.status == status
        new = ref.trades[n_trades:]
        n_trades = len(ref.trades)
        assert len(out.trades) == len(new), (out.trades, new)
        for mine, theirs in zip(out.trades, new, strict=True):
            assert mine.side == {"long": 1, "short": -1}[theirs.side]
            assert (mine.quantity, mine.reason) == (theirs.quantity, theirs.reason)
            assert mine.entry_price == theirs.entry_price
            assert mine.exit_price == theirs.exit_price
            assert mine.pnl == theirs.pnl
            assert (mine.open_ts, mine.close_ts) == (theirs.open_ts, theirs.close_ts)
            assert (mine.mfe_points, mine.mae_points) == (theirs.mfe_points, theirs.mae_points)
            assert (mine.mfe_usd, mine.mae_usd) == (theirs.mfe_usd, theirs.mae_usd)
        compare_position(pair, ref, symbol)
    return pair, ref


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=recorder_settings(),
    symbol=st.sampled_from(CONTRACTS),
    start=st.integers(3000, 9000),
    evs=events,
)
def test_pair_matches_reference(
    cfg: RecorderSettings, symbol: str, start: int, evs: list[tuple]
) -> None:
    run_both(cfg, symbol, start, evs)


def test_restore_continues_identically() -> None:
    """A pair rebuilt from its snapshot mid-stream ends exactly where the original ends."""
    cfg = RecorderSettings(
        take_profit=TakeProfit(
            targets=[TakeProfitTarget(value=8, trim=50), TakeProfitTarget(value=20)]
        ),
        trailing_stop=TrailingStop(trigger=6, distance=4),
        dca=Dca(unit="atr", step=1.0, max_quantity=4, atr_period=3),
        sizing=Sizing(initial_size=2),
    )
    symbol = "MNQZ5"
    a = Pair("a", cfg, spec_for)
    moves = [0, 2, -3, 4, -6, 1, 0, -9, -14, -20, 3, 10, 18, 25, 30, 22, 12]
    prices = [21000 + 0.25 * k for k in moves]
    ts = 1000.0
    for p in prices[:6]:
        ts += 25
        a.on_tick(symbol, ts, p)
    a.on_signal(symbol, ts, "buy")
    for p in prices[6:10]:
        ts += 25
        a.on_tick(symbol, ts, p)
    b = Pair("b", cfg, spec_for)
    b.restore(symbol, a.snapshot(symbol))
    outs_a, outs_b = [], []
    for p in prices[10:]:
        ts += 25
        outs_a.append(a.on_tick(symbol, ts, p).trades)
        outs_b.append(b.on_tick(symbol, ts, p).trades)
    assert outs_a == outs_b
    assert any(outs_a)
    assert a.snapshot(symbol) == b.snapshot(symbol)
