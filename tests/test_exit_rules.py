"""Exit rules without booked trades (a live pair's, ``book_trades=False``) decide exactly what
the rules with trades decide: the same exits, the same position and exit state after every
tick. Property test over random tick walks, exit settings and position sizes."""

from __future__ import annotations

import copy
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.recorder.book import LONG, SHORT, Money, Position
from actors.recorder.config import (
    BreakEven,
    Dca,
    RecorderSettings,
    StopLoss,
    TakeProfit,
    TakeProfitTarget,
    TrailingStop,
)
from actors.recorder.exits import ExitRules

MONEY = Money(Fraction(1, 4), Fraction(1, 2))
START = 80_000  # ticks


@st.composite
def exit_settings(draw: st.DrawFn) -> RecorderSettings:
    values = draw(st.lists(st.integers(1, 12), min_size=1, max_size=3, unique=True))
    targets = [
        TakeProfitTarget(value=v, trim=draw(st.sampled_from([25, 50, 100]))) for v in sorted(values)
    ]
    return RecorderSettings(
        take_profit=TakeProfit(targets=targets) if draw(st.booleans()) else None,
        stop_loss=StopLoss(value=draw(st.integers(1, 12))) if draw(st.booleans()) else None,
        trailing_stop=TrailingStop(
            trigger=draw(st.integers(0, 6)), distance=draw(st.integers(1, 6))
        )
        if draw(st.booleans())
        else None,
        break_even=BreakEven(trigger=draw(st.integers(1, 8)), offset=draw(st.integers(0, 2)))
        if draw(st.booleans())
        else None,
        dca=Dca(step=draw(st.integers(1, 6)), add_size=1, max_quantity=draw(st.integers(1, 6)))
        if draw(st.booleans())
        else None,
    )


@settings(max_examples=300, deadline=None)
@given(
    cfg=exit_settings(),
    side=st.sampled_from([LONG, SHORT]),
    qty=st.integers(1, 5),
    steps=st.lists(st.integers(-3, 3), min_size=1, max_size=80),
)
def test_rules_without_trades_decide_the_same_exits(
    cfg: RecorderSettings, side: int, qty: int, steps: list[int]
) -> None:
    booked, light = ExitRules(cfg, MONEY), ExitRules(cfg, MONEY, book_trades=False)
    pos_a = Position.open("MNQZ6", side, qty, START, 0.0)
    pos_b = copy.copy(pos_a)
    st_a, st_b = booked.start(pos_a, None), light.start(pos_b, None)
    p = START
    for i, step in enumerate(steps):
        p += step
        a = booked.on_tick(pos_a, st_a, p, float(i))
        b = light.on_tick(pos_b, st_b, p, float(i))
        assert a.exits == b.exits
        assert [(t.quantity, t.reason) for t in a.trades] == [
            (e.quantity, e.reason) for e in a.exits
        ]
        assert not b.trades
        assert a.dca == b.dca
        assert pos_a == pos_b
        assert st_a == st_b
        if pos_a.qty == 0:
            break
