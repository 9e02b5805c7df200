"""Tick arithmetic: the float fast path of ``to_ticks`` against the exact rule."""

from __future__ import annotations

import math
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from actors.instruments import CONTRACTS
from actors.recorder.book import Money
from actors.recorder.exits import dca_level
from actors.recorder.levels import exact, level, round_half_up, to_ticks

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


@given(st.integers(-(10**12), 10**12), st.integers(1, 10**6))
def test_round_half_up_in_integers_is_floor_of_x_plus_a_half(n: int, d: int) -> None:
    """The integer form against the definition, for fractions (halves included) and ints."""
    x = Fraction(n, d)
    assert round_half_up(x) == math.floor(x + Fraction(1, 2))
    assert round_half_up(n) == n
    assert round_half_up(Fraction(2 * n + 1, 2)) == n + 1  # halves go up, either sign


@given(
    st.sampled_from(TICK_SIZES),
    st.one_of(
        st.integers(-(10**10), 10**10),
        st.fractions(min_value=-(10**8), max_value=10**8, max_denominator=10**6),
    ),
)
def test_price_float_is_the_float_of_the_exact_price(tick: Fraction, ticks: Fraction | int) -> None:
    money = Money(tick, Fraction(5))
    value = ticks if ticks.denominator != 1 else int(ticks)
    assert money.price_float(value) == float(money.price(value))


def test_exact_is_the_decimal_meant_cached_or_not() -> None:
    exact.cache_clear()
    assert exact(0.1) == Fraction(1, 10) and exact(0.1) == Fraction(1, 10)
    assert exact(70.005) == Fraction(70005, 1000)
    assert exact(1) == exact(1.0) == 1


@given(
    st.one_of(st.integers(-(10**9), 10**9), st.fractions(max_denominator=10**4)),
    st.sampled_from([1, -1]),
    st.one_of(st.integers(0, 10**6), st.fractions(min_value=0, max_denominator=10**4)),
)
def test_level_is_the_rounded_sum(ref: Fraction | int, side: int, distance: Fraction | int) -> None:
    expected = math.floor(Fraction(ref) + side * Fraction(distance) + Fraction(1, 2))
    assert level(ref, side, distance) == expected


@given(
    st.integers(-(10**7), 10**7),
    st.sampled_from([1, -1]),
    st.one_of(st.integers(1, 10**4), st.fractions(min_value=0, max_denominator=10**4)),
    st.integers(0, 10**3),
)
def test_dca_level_is_the_rounded_ladder_rung(
    first_entry: int, side: int, step: Fraction | int, i: int
) -> None:
    expected = math.floor(first_entry - side * i * Fraction(step) + Fraction(1, 2))
    assert dca_level(first_entry, side, step, i) == expected
