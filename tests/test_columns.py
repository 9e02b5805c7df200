"""Exactness guard for the columnar tick path.

Many pairs with random settings hold positions in one symbol; random signals and random tick
batches (gaps, flat runs, spikes) go through (1) the columnar path and (2) plain per-tick scalar
processing of every pair (which itself equals the naive reference, see test_pair_vs_reference).
Trades (exact prices, P&L, MFE/MAE, order), signal outcomes and, after folding, every pair's
full state (excursions, stops, targets, DCA levels, trailing) must be identical.
"""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.instruments import spec_for
from actors.recorder.book import LONG, SHORT, Money, Position, Trade
from actors.recorder.columns import SymbolColumns, excursion_bounds, excursion_bounds_exact
from actors.recorder.config import RecorderSettings
from actors.recorder.pair import MinuteBars, Pair
from tests.test_pair_vs_reference import recorder_settings

SYMBOL = "MNQZ5"

batch = st.lists(
    st.one_of(st.just(0), st.integers(-3, 3), st.integers(-30, 30), st.sampled_from([-120, 120])),
    min_size=1,
    max_size=25,
)
signal = st.tuples(
    st.integers(0, 11),  # which pair
    st.sampled_from(["buy", "sell", "buy", "sell", "close", "add", "target"]),
    st.one_of(st.none(), st.integers(-15, 15)),
    st.one_of(st.none(), st.integers(1, 4)),
    st.integers(-5, 5),
)
events = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), batch),
        st.tuples(st.just("signal"), signal),
        st.tuples(st.just("check"), st.none()),  # fold and compare every pair's full state
    ),
    min_size=5,
    max_size=80,
)


def same_state(scalar: list[Pair], column: list[Pair]) -> None:
    for s, c in zip(scalar, column, strict=True):
        assert s.snapshot(SYMBOL)["pos"] == c.snapshot(SYMBOL)["pos"]
        assert s.snapshot(SYMBOL)["exits"] == c.snapshot(SYMBOL)["exits"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfgs=st.lists(recorder_settings(), min_size=1, max_size=12),
    start=st.integers(20000, 90000),
    evs=events,
)
def test_columnar_path_equals_per_tick_processing(
    cfgs: list[RecorderSettings], start: int, evs: list[tuple]
) -> None:
    shared = MinuteBars(500)
    scalar = [Pair(f"s{i}", c, spec_for) for i, c in enumerate(cfgs)]
    column = [Pair(f"c{i}", c, spec_for, shared_bars=lambda _s: shared) for i, c in enumerate(cfgs)]
    cols = SymbolColumns(SYMBOL, capacity=2)  # small: exercises growth
    money = scalar[0].book(SYMBOL).money
    trades_s: dict[int, list[Trade]] = defaultdict(list)
    trades_c: dict[int, list[Trade]] = defaultdict(list)
    px, ts = start, 1_000_000.0
    for ev in evs:
        if ev[0] == "check":
            cols.fold_all()
            same_state(scalar, column)
        elif ev[0] == "batch":
            tss, ticks = [], []
            for move in ev[1]:
                px = max(1, px + move)
                ts += 7.0
                tss.append(ts)
                ticks.append(px)
            for i, pair in enumerate(scalar):
                for t, p in zip(tss, ticks, strict=True):
                    trades_s[i].extend(pair.on_tick(SYMBOL, t, float(money.price(p))).trades)
            for t, p in zip(tss, ticks, strict=True):
                shared.add(t, p)
            for row, out in cols.apply(tss, np.asarray(ticks, dtype=np.int64)):
                trades_c[int(row.pair.key[1:])].extend(out.trades)
        else:
            k, action, offset, qty, target = ev[1]
            k %= len(cfgs)
            ts += 0.5
            price = None if offset is None else float(money.price(max(1, px + offset)))
            tgt = target if action == "target" else None
            out_s = scalar[k].on_signal(SYMBOL, ts, action, price, qty, tgt)
            cols.fold_pair(column[k].key)
            # like the host: a signal without a price fills at the symbol's last tick
            last = None if cols.last is None else float(money.price(cols.last))
            out_c = column[k].on_signal(
                SYMBOL, ts, action, last if price is None else price, qty, tgt
            )
            cols.sync(column[k], column[k].book(SYMBOL))
            assert out_s.status == out_c.status
            trades_s[k].extend(out_s.trades)
            trades_c[k].extend(out_c.trades)
        assert {k: v for k, v in trades_s.items() if v} == {k: v for k, v in trades_c.items() if v}
    cols.fold_all()
    same_state(scalar, column)
    assert len(cols) == sum(p.book(SYMBOL).pos is not None for p in column)


def test_untouched_positions_are_not_walked() -> None:
    """A batch inside every position's bounds walks nobody; its range still reaches the
    excursions exactly when folded."""
    cfg = RecorderSettings.model_validate(
        {"take_profit": {"targets": [{"value": 40}]}, "stop_loss": {"value": 40}}
    )
    pairs = [Pair(f"c{i}", cfg, spec_for) for i in range(50)]
    cols = SymbolColumns(SYMBOL)
    for i, p in enumerate(pairs):
        p.on_signal(SYMBOL, 1.0, "buy" if i % 2 else "sell", 21000.0)
        cols.sync(p, p.book(SYMBOL))
    base = 84000  # 21000.00 in ticks
    assert cols.apply([2.0, 3.0, 4.0], np.array([base - 10, base + 12, base], dtype=np.int64)) == []
    cols.fold_all()
    long_ = pairs[1].book(SYMBOL).pos
    short = pairs[0].book(SYMBOL).pos
    assert long_ is not None and short is not None
    assert (long_.worst_unrealised, long_.best_unrealised) == (-5, 6)  # 10 and 12 ticks × $0.50
    assert (short.worst_unrealised, short.best_unrealised) == (-6, 5)
    out = cols.apply([5.0], np.array([base + 40], dtype=np.int64))  # longs' TP, shorts' stop
    assert len(out) == 50
    assert {t.reason for _, o in out for t in o.trades} == {"tp1", "stop_loss"}
    assert len(cols) == 0


def run_events(cfg: RecorderSettings, evs: list[tuple], mirror: bool = False) -> None:
    """Replay a fixed event list through both paths, checking full state after every event.
    ``mirror`` plays the same story for the other side (prices reflected, buy <-> sell)."""
    if mirror:
        swap = {"buy": "sell", "sell": "buy"}
        evs = [(swap.get(kind, kind), -arg) for kind, arg in evs]
    scalar, column = [Pair("s0", cfg, spec_for)], [Pair("c0", cfg, spec_for)]
    cols = SymbolColumns(SYMBOL)
    money = scalar[0].book(SYMBOL).money
    ts = 10.0
    for kind, arg in evs:
        ts += 1
        if kind == "tick":
            p = 84000 + arg
            scalar[0].on_tick(SYMBOL, ts, float(money.price(p)))
            cols.apply([ts], np.array([p], dtype=np.int64))
        else:
            price = float(money.price(84000 + arg))
            a = scalar[0].on_signal(SYMBOL, ts, kind, price)
            cols.fold_pair("c0")
            b = column[0].on_signal(SYMBOL, ts, kind, price)
            cols.sync(column[0], column[0].book(SYMBOL))
            assert a.status == b.status and a.trades == b.trades
        cols.fold_all()
        same_state(scalar, column)


@pytest.mark.parametrize("mirror", [False, True])
def test_excursion_one_tick_beyond_the_worst_is_kept(mirror: bool) -> None:
    story = [("buy", 0), ("tick", -3), ("tick", 1), ("tick", -4), ("tick", -5)]
    run_events(RecorderSettings(), story, mirror)


@pytest.mark.parametrize("mirror", [False, True])
def test_signal_raising_the_best_price_moves_the_trailing_stop_on_the_next_tick(
    mirror: bool,
) -> None:
    cfg = RecorderSettings.model_validate(
        {"trailing_stop": {"trigger": 1, "distance": 1}, "sizing": {"allow_add": False}}
    )
    run_events(cfg, [("buy", 0), ("tick", 1), ("buy", 3), ("tick", 1), ("tick", 0)], mirror)


@pytest.mark.parametrize("mirror", [False, True])
def test_one_tick_new_high_tightens_the_trailing_stop(mirror: bool) -> None:
    cfg = RecorderSettings.model_validate({"trailing_stop": {"trigger": 1, "distance": 1}})
    run_events(cfg, [("buy", 0), ("tick", 1), ("tick", 2), ("tick", 1), ("sell", 0)], mirror)


money = st.builds(
    Money,
    st.sampled_from([Fraction(1, 4), Fraction(1, 100), Fraction(1, 32), Fraction(5, 10000)]),
    st.sampled_from([Fraction(1, 2), Fraction(5), Fraction(25, 2), Fraction(31.25), Fraction(10)]),
)
history = st.lists(
    st.tuples(st.sampled_from(["observe", "add"]), st.integers(-60, 60), st.integers(1, 3)),
    max_size=12,
)


@given(
    m=money,
    side=st.sampled_from([LONG, SHORT]),
    entry=st.integers(100, 90000),
    qty=st.integers(1, 5),
    steps=history,
)
@settings(max_examples=400, deadline=None)
def test_integer_excursion_forms_equal_their_fraction_definitions(
    m: Money, side: int, entry: int, qty: int, steps: list[tuple[str, int, int]]
) -> None:
    """``excursion_bounds``, ``Position.move`` and ``Position.observe`` work on numerators and
    denominators; each must give exactly what its Fraction form gives, whole or fractional
    averages (adds) alike."""
    pos = Position.open("X", side, qty, entry, 0.0)
    shadow = {"best": Fraction(0), "worst": Fraction(0)}
    for kind, offset, n in steps:
        price = entry + offset
        if kind == "add":
            pos.add(n, price)
            continue
        u = side * (price - Fraction(pos.avg)) * m.tick_value * pos.qty
        shadow["best"], shadow["worst"] = max(shadow["best"], u), min(shadow["worst"], u)
        assert pos.move(price) == side * (price - Fraction(pos.avg))
        pos.observe(price, m)
        assert (pos.best_unrealised, pos.worst_unrealised) == (shadow["best"], shadow["worst"])
        assert excursion_bounds(pos, m.tick_value) == excursion_bounds_exact(pos, m.tick_value)
    assert excursion_bounds(pos, m.tick_value) == excursion_bounds_exact(pos, m.tick_value)
