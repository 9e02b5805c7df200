"""Tick arithmetic: the float fast path of ``to_ticks`` against the exact rule."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from actors.instruments import CONTRACTS
from actors.recorder.levels import exact, round_half_up, to_ticks

TICK_SIZES = sorted({Fraction(repr(c.tick_size)) for c in CONTRACTS.values()})


def exact_rule(price: float, tick: Fraction) -> int:
    return round_half_up(exact(price) / tick)


@given(
    st.sampled_from(TICK_SIZES),
    st.integers(-(10**9), 10**9),
    st.sampled_from(
        [Fraction(0), Fraction(1, 2), Fraction(-1, 2), Fraction(1, 3), Fraction(499, 1000)]
    ),
)
def test_on_and_near_the_grid_as_the_exact_rule(tick: Fraction, n: int, off: Fraction) -> None:
    """Grid prices (the fast path), halves (round up) and off-grid prices, as floats a feed or
    a user would send."""
    price = float((n + off) * tick)
    assert to_ticks(price, tick) == exact_rule(price, tick)


@given(st.sampled_from(TICK_SIZES), st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_any_float_as_the_exact_rule(tick: Fraction, price: float) -> None:
    assert to_ticks(price, tick) == exact_rule(price, tick)


def test_float_noise_and_halves() -> None:
    assert to_ticks(4500.3, Fraction(1, 10)) == 45003  # 45002.99999… in floats
    assert to_ticks(100.125, Fraction(1, 4)) == 401  # a half goes up
    assert to_ticks(-100.125, Fraction(1, 4)) == -400  # … towards +inf
    assert to_ticks(0.1 + 0.2, Fraction(1, 10)) == 3
    assert to_ticks(1e300, Fraction(1, 4)) == exact_rule(1e300, Fraction(1, 4))
