"""Tests for the pure feed sources: tick grid, simulated walk, CSV replay and bar expansion."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.feed.sources import (
    Bar,
    ReplaySource,
    SimulatedSource,
    Tick,
    TickSource,
    expand_bar,
    expand_bars,
    load_ticks,
    parse_bar_csv,
    parse_tick_csv,
    price_to_ticks,
    snap_price,
    ticks_to_price,
)
from actors.feed.sources.replay import detect_kind, parse_ts, snap_ticks

TICK_SIZES = [0.25, 0.1, 0.01, 0.03125, 0.5, 1.0, 0.005, 0.0001, 5.0]
T0 = 1_704_205_800.0  # 2024-01-02T14:30:00Z


def dec(x: float) -> Decimal:
    """The decimal a float's shortest repr denotes — an independent view of 'on the grid'."""
    return Decimal(repr(x))


def on_grid(price: float, tick: float) -> bool:
    return dec(price) % dec(tick) == 0


def prices(ticks: list[Tick]) -> list[float]:
    return [t.price for t in ticks]


# ------------------------------------------------------------------------------------- tick grid


def test_grid_helpers_round_half_up_and_avoid_float_noise() -> None:
    assert price_to_ticks(100.75, 0.25) == 403
    assert price_to_ticks(100.125, 0.25) == 401  # exact half rounds up
    assert price_to_ticks(-100.125, 0.25) == -400  # … towards +inf, the one project-wide rule
    assert price_to_ticks(4500.3, 0.1) == 45003  # 4500.3 / 0.1 is 45002.99999… in floats
    assert ticks_to_price(45003, 0.1) == 4500.3
    assert snap_price(4500.1 + 0.2, 0.1) == 4500.3
    assert snap_price(100.1, 0.25) == 100.0
    with pytest.raises(ValueError):
        price_to_ticks(1.0, 0.0)
    with pytest.raises(ValueError):
        price_to_ticks(float("nan"), 0.25)


# ----------------------------------------------------------------------------------- tick parsing


def test_parse_ts_formats() -> None:
    assert parse_ts("1704205800") == T0
    assert parse_ts("1704205800.5") == T0 + 0.5
    assert parse_ts("1704205800500") == T0 + 0.5  # ms
    assert parse_ts("1704205800500000") == T0 + 0.5  # µs
    assert parse_ts("1704205800500000000") == T0 + 0.5  # ns
    assert parse_ts("2024-01-02T14:30:00Z") == T0
    assert parse_ts("2024-01-02T14:30:00") == T0  # naive = UTC
    assert parse_ts("2024-01-02 14:30:00.250") == T0 + 0.25
    assert parse_ts("2024-01-02T09:30:00-05:00") == T0
    for bad in ("", "yesterday", "nan", "inf"):
        with pytest.raises(ValueError):
            parse_ts(bad)


def test_parse_tick_csv_each_ts_format() -> None:
    text = (
        "\ufeffTimestamp , PRICE,Symbol\n"
        "1704205800,4750.25,ESH4\n"
        "1704205800250,4750.5,ESH4\n"  # epoch ms
        "2024-01-02T14:30:00.5Z,4750.75,ESH4\n"  # ISO with zone
        "\n"  # blank lines are skipped
        "2024-01-02 14:30:01,4750.5,ESH4\n"  # naive ISO = UTC
        "2024-01-02T09:30:01.5-05:00,4750.25,\n"  # empty symbol -> default
    )
    ticks = parse_tick_csv(text, default_symbol="ESH4")
    assert ticks == [
        Tick("ESH4", T0, 4750.25),
        Tick("ESH4", T0 + 0.25, 4750.5),
        Tick("ESH4", T0 + 0.5, 4750.75),
        Tick("ESH4", T0 + 1.0, 4750.5),
        Tick("ESH4", T0 + 1.5, 4750.25),
    ]


@pytest.mark.parametrize(
    ("ts_col", "price_col"), [("ts", "price"), ("time", "last"), ("TIME", "Close")]
)
def test_parse_tick_csv_column_aliases(ts_col: str, price_col: str) -> None:
    text = f"{ts_col},{price_col}\n1,10.5\n2,10.75\n"
    assert parse_tick_csv(text, default_symbol="X") == [Tick("X", 1.0, 10.5), Tick("X", 2.0, 10.75)]


def test_parse_tick_csv_decreasing_ts_raises_with_line() -> None:
    text = "ts,price,symbol\n10,1.0,A\n11,1.25,A\n10.5,1.5,A\n"
    with pytest.raises(ValueError, match=r"line 4: A timestamp"):
        parse_tick_csv(text)


def test_parse_tick_csv_keeps_file_order_and_allows_equal_ts() -> None:
    # Time order is per symbol: B may be behind A, and equal timestamps are several prints.
    text = "ts,price,symbol\n10,1.0,A\n5,2.0,B\n10,1.25,A\n6,2.0,B\n"
    assert [(t.symbol, t.ts) for t in parse_tick_csv(text)] == [
        ("A", 10.0),
        ("B", 5.0),
        ("A", 10.0),
        ("B", 6.0),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "header"),
        ("1704205800,4750.25\n", "header"),  # no header row
        ("ts,price\n1,2\n", "no symbol"),  # no symbol anywhere
        ("ts,time,price,symbol\n1,1,2,A\n", "ambiguous"),
        ("ts,price,last,symbol\n1,2,2,A\n", "ambiguous"),
        ("ts,price,symbol\n1,abc,A\n", "line 2: price"),
        ("ts,price,symbol\n1,nan,A\n", "finite"),
        ("ts,price,symbol\nnoon,1,A\n", "line 2: unrecognised timestamp"),
        ("ts,symbol,price\n1,A\n", "line 2: missing price"),
    ],
)
def test_parse_tick_csv_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_tick_csv(text)


def test_snap_ticks_absorbs_float_noise_but_rejects_off_grid() -> None:
    noisy = [Tick("CL", 1.0, 75.10000000000001), Tick("CL", 2.0, 75.12999999999999)]
    assert prices(snap_ticks(noisy, lambda s: 0.01)) == [75.1, 75.13]
    with pytest.raises(ValueError, match=r"not on the 0\.25 tick grid"):
        snap_ticks([Tick("ES", 1.0, 4750.1)], lambda s: 0.25)


# ------------------------------------------------------------------------------------ bar parsing


def test_parse_bar_csv_duration_default_and_columns() -> None:
    text = (
        "time,open,high,low,close,Volume\n"
        "2024-01-02T14:30:00Z,100,101,99.5,100.75,1200\n"
        "2024-01-02T14:31:00Z,100.75,100.75,100,100.25,900\n"
    )
    bars = parse_bar_csv(text, default_symbol="ES")
    assert bars == [
        Bar("ES", T0, 100.0, 101.0, 99.5, 100.75, 60.0),
        Bar("ES", T0 + 60, 100.75, 100.75, 100.0, 100.25, 60.0),
    ]
    text = "ts,symbol,open,high,low,close,Interval\n0,NQ,1,2,1,2,300\n300,NQ,2,2,1,1,\n"
    assert [b.duration_s for b in parse_bar_csv(text)] == [300.0, 60.0]
    text = "ts,symbol,open,high,low,close,duration\n0,NQ,1,2,1,2,5\n5,NQ,2,2,1,1,5\n"
    assert [b.duration_s for b in parse_bar_csv(text)] == [5.0, 5.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("ts,open,high,low,close\n0,100,99,98,99.5\n", "line 2: .*inconsistent OHLC"),
        ("ts,open,high,low,close\n0,100,101,100.25,100.5\n", "line 2: .*inconsistent OHLC"),
        ("ts,open,high,low,close\n60,1,1,1,1\n0,1,1,1,1\n", "line 3: .*before the previous"),
        ("ts,open,high,low,close\n0,1,1,1,1\n30,1,1,1,1\n", "overlap"),  # 30 s bars, no duration
        ("ts,open,high,low,close,duration\n0,1,1,1,1,0\n", "duration must be > 0"),
        ("ts,open,high,close\n0,1,1,1\n", "no low column"),
    ],
)
def test_parse_bar_csv_errors(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_bar_csv(text, default_symbol="ES")


def test_detect_kind() -> None:
    assert detect_kind("Time,Open,High,Low,Close\n") == "bars"
    assert detect_kind("ts,close\n") == "ticks"  # 'close' alone is a tick price column
    assert detect_kind("ts,price,symbol\n") == "ticks"


# ---------------------------------------------------------------------------------- bar expansion


def test_expand_up_bar_exact_path() -> None:
    ticks = expand_bar(Bar("ES", T0, 100, 101, 99.5, 100.75), 0.25)
    # open -> low -> high -> close, every tick level visited.
    assert prices(ticks) == [100, 99.75, 99.5, 99.75, 100, 100.25, 100.5, 100.75, 101, 100.75]
    assert [t.ts for t in ticks] == [T0 + 6 * i for i in range(10)]
    assert {t.symbol for t in ticks} == {"ES"}


def test_expand_down_bar_exact_path() -> None:
    ticks = expand_bar(Bar("ES", T0, 100.75, 101, 99.5, 99.75), 0.25)
    # open -> high -> low -> close.
    assert prices(ticks) == [100.75, 101, 100.75, 100.5, 100.25, 100, 99.75, 99.5, 99.75]


@pytest.mark.parametrize(
    ("high", "low", "expected"),
    [
        # High nearer (2 ticks vs 3): high first.
        (100.5, 99.25, [100, 100.25, 100.5, 100.25, 100, 99.75, 99.5, 99.25, 99.5, 99.75, 100]),
        # Low nearer (1 tick vs 4): low first.
        (101, 99.75, [100, 99.75, 100, 100.25, 100.5, 100.75, 101, 100.75, 100.5, 100.25, 100]),
        # Tie: high first.
        (100.5, 99.5, [100, 100.25, 100.5, 100.25, 100, 99.75, 99.5, 99.75, 100]),
        # Open at the low: nothing to visit below, no duplicate open.
        (100.5, 100, [100, 100.25, 100.5, 100.25, 100]),
        # Flat bar: at least the open.
        (100, 100, [100]),
    ],
)
def test_expand_doji(high: float, low: float, expected: list[float]) -> None:
    ticks = expand_bar(Bar("ES", T0, 100, high, low, 100), 0.25)
    assert prices(ticks) == expected
    assert ticks[0].ts == T0


def test_expand_bar_snaps_and_validates() -> None:
    # 100.1 -> 100, 100.125 -> 100.25 (half up), 100.9 -> 101; up bar after snapping.
    ticks = expand_bar(Bar("ES", 0.0, 100.1, 100.9, 100.1, 100.125), 0.25)
    assert prices(ticks) == [100, 100.25, 100.5, 100.75, 101, 100.75, 100.5, 100.25]
    # Ten-cent grid without float drift.
    assert prices(expand_bar(Bar("CL", 0.0, 75.1, 75.13, 75.1, 75.12), 0.01)) == [
        75.1,
        75.11,
        75.12,
        75.13,
        75.12,
    ]
    with pytest.raises(ValueError, match="inconsistent OHLC"):
        expand_bar(Bar("ES", 0.0, 100, 100.5, 100.25, 100.5), 0.25)  # low above open
    with pytest.raises(ValueError, match="inconsistent OHLC"):
        expand_bar(Bar("ES", 0.0, 100, 100.5, 99, 101), 0.25)  # close above high
    with pytest.raises(ValueError, match="duration_s"):
        expand_bar(Bar("ES", 0.0, 100, 100, 100, 100, 0.0), 0.25)


def test_expand_bar_timestamps_strictly_increasing_inside_window() -> None:
    bar = Bar("NQ", T0, 17000, 17050, 16950, 17025, duration_s=60)
    ticks = expand_bar(bar, 0.25)
    ts = [t.ts for t in ticks]
    assert len(ts) == 1 + 200 + 400 + 100
    assert ts[0] == T0
    assert all(a < b for a, b in pairwise(ts))
    assert ts[-1] < T0 + 60


def test_expand_bars_merges_symbols_in_time_order() -> None:
    bars = [
        Bar("ES", 0.0, 100, 100.5, 100, 100.5),
        Bar("CL", 0.0, 75.0, 75.02, 75.0, 75.02),
        Bar("ES", 60.0, 100.5, 100.5, 100.25, 100.25),
    ]
    sizes = {"ES": 0.25, "CL": 0.01}
    ticks = expand_bars(bars, sizes.__getitem__)
    assert [(t.symbol, t.ts, t.price) for t in ticks] == [
        ("ES", 0.0, 100.0),
        ("CL", 0.0, 75.0),
        ("ES", 20.0, 100.25),
        ("CL", 20.0, 75.01),
        ("ES", 40.0, 100.5),
        ("CL", 40.0, 75.02),
        ("ES", 60.0, 100.5),
        ("ES", 90.0, 100.25),
    ]


# -------------------------------------------------------------------------------- bar properties


@st.composite
def grid_bars(draw: st.DrawFn) -> tuple[Bar, float, tuple[int, int, int, int]]:
    """A valid bar whose prices are exactly on the grid, with its levels in ticks."""
    tick = draw(st.sampled_from(TICK_SIZES))
    low = draw(st.integers(1, 2_000_000))
    high = low + draw(st.integers(0, 400))
    o = draw(st.integers(low, high))
    c = draw(st.integers(low, high))
    duration = draw(st.sampled_from([1.0, 5.0, 60.0, 300.0, 3600.0, 86400.0]))
    ts = draw(st.floats(1e9, 2e9))
    p = [float(Decimal(n) * dec(tick)) for n in (o, high, low, c)]
    return Bar("X", ts, p[0], p[1], p[2], p[3], duration), tick, (o, high, low, c)


def check_path(
    ticks: list[Tick], bar: Bar, tick: float, o: float, h: float, lo: float, c: float
) -> None:
    ps = prices(ticks)
    assert ps[0] == o
    assert ps[-1] == c
    assert min(ps) == lo
    assert max(ps) == h
    assert all(on_grid(p, tick) for p in ps)
    assert all(abs(dec(b) - dec(a)) == dec(tick) for a, b in pairwise(ps))
    ts = [t.ts for t in ticks]
    assert ts[0] == bar.ts
    assert all(a < b for a, b in pairwise(ts))
    assert ts[-1] < bar.ts + bar.duration_s


@given(grid_bars())
@settings(max_examples=300, deadline=None)
def test_expand_bar_properties_on_grid(case: tuple[Bar, float, tuple[int, int, int, int]]) -> None:
    bar, tick, (o, h, lo, c) = case
    ticks = expand_bar(bar, tick)
    check_path(ticks, bar, tick, bar.open, bar.high, bar.low, bar.close)
    # Path length is fixed by the rule: both legs to the extremes and back to the close.
    up_first = c > o or (c == o and h - o > o - lo)
    expected_len = 1 + (
        (o - lo) + (h - lo) + (h - c) if up_first else (h - o) + (h - lo) + (c - lo)
    )
    assert len(ticks) == expected_len


@st.composite
def raw_bars(draw: st.DrawFn) -> tuple[Bar, float]:
    """A valid bar with arbitrary (off-grid) float prices."""
    tick = draw(st.sampled_from(TICK_SIZES))
    low = draw(st.floats(1.0, 10_000.0))
    high = low + draw(st.floats(0.0, 300.0)) * tick
    o = draw(st.floats(low, high))
    c = draw(st.floats(low, high))
    return Bar("X", T0, o, high, low, c), tick


@given(raw_bars())
@settings(max_examples=300, deadline=None)
def test_expand_bar_properties_off_grid(case: tuple[Bar, float]) -> None:
    bar, tick = case
    ticks = expand_bar(bar, tick)
    snapped = [snap_price(p, tick) for p in (bar.open, bar.high, bar.low, bar.close)]
    check_path(ticks, bar, tick, *snapped)


# -------------------------------------------------------------------------------------- replay


def test_replay_source_tick_file(tmp_path: Path) -> None:
    path = tmp_path / "ticks.csv"
    path.write_text(
        "\ufeffsymbol,ts,price\nESH4,1704205800,4750.25\nCLG4,1704205800000,72.1\n"
        "ESH4,2024-01-02T14:30:01Z,4750.5\n",
        encoding="utf-8",
    )
    sizes = {"ESH4": 0.25, "CLG4": 0.01}
    src = ReplaySource(path, sizes.__getitem__)
    assert isinstance(src, TickSource)
    assert src.kind == "ticks"
    assert len(src) == 3
    expected = [Tick("ESH4", T0, 4750.25), Tick("CLG4", T0, 72.1), Tick("ESH4", T0 + 1, 4750.5)]
    assert list(src) == expected
    assert list(src) == expected  # re-iterable: each iter() replays from the start


def test_replay_source_bar_file(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "time,open,high,low,close\n0,100,101,99.5,100.75\n60,100.75,100.75,100.75,100.75\n"
    )
    src = ReplaySource(str(path), lambda s: 0.25, default_symbol="ES")
    assert src.kind == "bars"
    assert prices(list(src)) == [
        100,
        99.75,
        99.5,
        99.75,
        100,
        100.25,
        100.5,
        100.75,
        101,
        100.75,
        100.75,
    ]
    assert [t.ts for t in src][-2:] == [54.0, 60.0]


def test_replay_source_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("ts,price\n2,4750.25\n1,4750.5\n")
    with pytest.raises(ValueError, match=r"bad\.csv: line 3"):
        ReplaySource(path, lambda s: 0.25, default_symbol="ES")
    path.write_text("ts,price\n1,4750.1\n")
    with pytest.raises(ValueError, match=r"not on the 0\.25 tick grid"):
        ReplaySource(path, lambda s: 0.25, default_symbol="ES")


def test_load_ticks_auto_detects() -> None:
    assert load_ticks("ts,close\n1,10\n", lambda s: 1.0, "X") == [Tick("X", 1.0, 10.0)]
    assert len(load_ticks("ts,open,high,low,close\n0,10,12,10,12\n", lambda s: 1.0, "X")) == 3


# ----------------------------------------------------------------------------------- simulated

SYMBOLS = {"ESH4": (4750.0, 0.25), "CLG4": (72.1, 0.01), "ZBH4": (120.0, 0.03125)}


def test_simulated_is_a_tick_source_and_interleaves() -> None:
    src = SimulatedSource(SYMBOLS, seed=1, start_ts=T0)
    assert isinstance(src, TickSource)
    ticks = src.take(3000)
    counts = Counter(t.symbol for t in ticks)
    assert set(counts) == set(SYMBOLS)
    assert all(800 < n < 1200 for n in counts.values())  # equal rates
    ts = [t.ts for t in ticks]
    assert all(a <= b for a, b in pairwise(ts))  # globally time-ordered
    # First print of each symbol is its start price.
    first = {}
    for t in ticks:
        first.setdefault(t.symbol, t.price)
    assert first == {sym: start for sym, (start, _) in SYMBOLS.items()}


def test_simulated_rate_and_step_distribution() -> None:
    src = SimulatedSource({"ES": (4750.0, 0.25)}, seed=3, rate_hz=20.0, start_ts=0.0)
    ticks = src.take(20_000)
    assert ticks[-1].ts == pytest.approx(1000.0, rel=0.03)  # 20 ticks/s on average
    steps = Counter(round((b.price - a.price) / 0.25) for a, b in pairwise(ticks))
    n = sum(steps.values())
    small = steps[0] + steps[1] + steps[-1]
    assert small / n > 0.8  # mostly 0 / ±1
    assert any(abs(k) >= 3 for k in steps)  # occasional larger jumps
    assert 0.3 < steps[0] / n < 0.5


def test_simulated_never_below_one_tick() -> None:
    src = SimulatedSource({"X": (0.25, 0.25)}, seed=0, start_ts=0.0, volatility_ticks=5.0)
    ps = prices(src.take(5000))
    assert min(ps) == 0.25
    assert all(p >= 0.25 for p in ps)


def test_simulated_symbols_are_independent() -> None:
    alone = SimulatedSource({"ESH4": SYMBOLS["ESH4"]}, seed=9, start_ts=0.0).take(500)
    mixed = [
        t for t in SimulatedSource(SYMBOLS, seed=9, start_ts=0.0).take(1600) if t.symbol == "ESH4"
    ]
    assert len(mixed) >= 400
    assert mixed[:400] == alone[:400]


def test_simulated_wall_clock_origin_is_fixed_at_construction() -> None:
    before = datetime.now(UTC).timestamp()
    src = SimulatedSource(SYMBOLS, seed=2)
    first = src.take(50)
    assert before <= first[0].ts < before + 60
    assert src.take(50) == first


def test_simulated_zero_volatility_is_flat() -> None:
    assert set(
        prices(SimulatedSource({"X": (10.0, 0.5)}, start_ts=0.0, volatility_ticks=0).take(200))
    ) == {10.0}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"symbols": {}},
        {"symbols": {"X": (10.0, 0.0)}},
        {"symbols": {"X": (0.0, 0.25)}},
        {"symbols": {"X": (10.0, 0.25)}, "rate_hz": 0.0},
        {"symbols": {"X": (10.0, 0.25)}, "volatility_ticks": -1.0},
    ],
)
def test_simulated_rejects_bad_config(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SimulatedSource(**kwargs)


@given(
    seed=st.integers(0, 2**32),
    rate=st.floats(0.5, 500.0),
    vol=st.floats(0.0, 8.0),
    symbols=st.dictionaries(
        st.sampled_from(["ES", "NQ", "CL", "ZB", "6E", "GC"]),
        st.tuples(st.integers(1, 100_000), st.sampled_from(TICK_SIZES)),
        min_size=1,
        max_size=4,
    ),
)
@settings(max_examples=60, deadline=None)
def test_simulated_properties(
    seed: int, rate: float, vol: float, symbols: dict[str, tuple[int, float]]
) -> None:
    spec = {sym: (float(Decimal(n) * dec(tick)), tick) for sym, (n, tick) in symbols.items()}
    a = SimulatedSource(spec, seed=seed, rate_hz=rate, start_ts=T0, volatility_ticks=vol).take(400)
    b = SimulatedSource(spec, seed=seed, rate_hz=rate, start_ts=T0, volatility_ticks=vol).take(400)
    assert a == b  # deterministic for a seed
    last_ts: dict[str, float] = defaultdict(lambda: T0)
    for t in a:
        tick = spec[t.symbol][1]
        assert t.price > 0
        assert t.price >= tick
        assert on_grid(t.price, tick)
        assert t.ts >= last_ts[t.symbol]  # non-decreasing per symbol
        last_ts[t.symbol] = t.ts


def test_simulated_different_seeds_differ() -> None:
    a = SimulatedSource(SYMBOLS, seed=1, start_ts=0.0).take(100)
    b = SimulatedSource(SYMBOLS, seed=2, start_ts=0.0).take(100)
    assert a != b
