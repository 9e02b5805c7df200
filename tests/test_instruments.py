"""Contract table, symbol parsing, roll rules and tick arithmetic (actors/instruments.py)."""

from __future__ import annotations

import pickle
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.instruments import (
    CONTRACTS,
    MONTH_CODES,
    ContractSpec,
    ParsedSymbol,
    UnknownSymbol,
    front_month,
    last_trade_date,
    normalize,
    parse_symbol,
    price_to_ticks,
    roll_date,
    round_to_tick,
    spec_for,
    ticks_to_price,
)

ON = date(2026, 11, 22)
ROOTS = sorted(CONTRACTS)
REQUIRED_ROOTS = [
    *("MNQ", "MES", "M2K", "MYM", "NQ", "ES", "RTY", "YM"),
    *("CL", "MCL", "GC", "MGC", "SI", "6E", "ZB", "ZN"),
]

# --------------------------------------------------------------------------- contract table

# root: (tick size, tick value, point value, decimals, exchange, months)
EXPECTED_SPECS = {
    "MNQ": (0.25, 0.5, 2.0, 2, "CME_MINI", "HMUZ"),
    "MES": (0.25, 1.25, 5.0, 2, "CME_MINI", "HMUZ"),
    "M2K": (0.1, 0.5, 5.0, 1, "CME_MINI", "HMUZ"),
    "MYM": (1.0, 0.5, 0.5, 0, "CBOT_MINI", "HMUZ"),
    "NQ": (0.25, 5.0, 20.0, 2, "CME_MINI", "HMUZ"),
    "ES": (0.25, 12.5, 50.0, 2, "CME_MINI", "HMUZ"),
    "RTY": (0.1, 5.0, 50.0, 1, "CME_MINI", "HMUZ"),
    "YM": (1.0, 5.0, 5.0, 0, "CBOT_MINI", "HMUZ"),
    "CL": (0.01, 10.0, 1000.0, 2, "NYMEX", "FGHJKMNQUVXZ"),
    "MCL": (0.01, 1.0, 100.0, 2, "NYMEX", "FGHJKMNQUVXZ"),
    "GC": (0.1, 10.0, 100.0, 1, "COMEX", "GJMQVZ"),
    "MGC": (0.1, 1.0, 10.0, 1, "COMEX", "GJMQVZ"),
    "SI": (0.005, 25.0, 5000.0, 3, "COMEX", "HKNUZ"),
    "6E": (0.00005, 6.25, 125000.0, 5, "CME", "HMUZ"),
    "ZB": (0.03125, 31.25, 1000.0, 5, "CBOT", "HMUZ"),
    "ZN": (0.015625, 15.625, 1000.0, 6, "CBOT", "HMUZ"),
}


def test_contract_table_covers_the_required_roots() -> None:
    assert set(REQUIRED_ROOTS) <= set(CONTRACTS)
    assert set(EXPECTED_SPECS) == set(CONTRACTS)


@pytest.mark.parametrize("root", REQUIRED_ROOTS)
def test_contract_spec_values(root: str) -> None:
    spec = CONTRACTS[root]
    tick, value, point, decimals, exchange, months = EXPECTED_SPECS[root]
    assert spec.root == root
    assert spec.name
    assert spec.tick_size == tick
    assert spec.tick_value == value
    assert spec.point_value == point
    assert spec.decimals == decimals
    assert spec.exchange == exchange
    assert spec.months == months


@pytest.mark.parametrize("root", ROOTS)
def test_decimals_are_exactly_the_tick_size_decimals(root: str) -> None:
    spec = CONTRACTS[root]
    exponent = Decimal(str(spec.tick_size)).normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    assert spec.decimals == max(0, -exponent)


def test_contract_spec_is_frozen() -> None:
    spec = CONTRACTS["MNQ"]
    with pytest.raises(AttributeError):
        spec.tick_size = 1.0  # type: ignore[misc]
    assert isinstance(spec, ContractSpec)


# --------------------------------------------------------------------------- parsing

CONTINUOUS_FORMS = [
    ("MNQ1!", "MNQ", 1, None),
    ("MNQ2!", "MNQ", 2, None),
    ("CME_MINI:MNQ1!", "MNQ", 1, "CME_MINI"),
    ("CME_MINI_DL:MNQ1!", "MNQ", 1, "CME_MINI"),
    ("MNQ", "MNQ", 1, None),
    ("  mnq1!  ", "MNQ", 1, None),
    ("cbot_mini:mym1!", "MYM", 1, "CBOT_MINI"),
    ("COMEX_MINI:MGC1!", "MGC", 1, "COMEX_MINI"),
    ("NYMEX:CL2!", "CL", 2, "NYMEX"),
    ("CME:6E1!", "6E", 1, "CME"),
    ("CBOT_DL:ZN1!", "ZN", 1, "CBOT"),
]


@pytest.mark.parametrize(("raw", "root", "index", "exchange"), CONTINUOUS_FORMS)
def test_parse_continuous_forms(raw: str, root: str, index: int, exchange: str | None) -> None:
    assert parse_symbol(raw) == ParsedSymbol(root, None, None, index, exchange)
    assert parse_symbol(raw).is_continuous


EXPLICIT_FORMS = [
    ("MNQZ5", "MNQ", "Z", 2025, None),
    ("MNQZ25", "MNQ", "Z", 2025, None),
    ("MNQZ2025", "MNQ", "Z", 2025, None),
    ("CME_MINI:MNQZ2025", "MNQ", "Z", 2025, "CME_MINI"),
    ("mnqh6", "MNQ", "H", 2026, None),
    ("CLF27", "CL", "F", 2027, None),
    ("6EM2026", "6E", "M", 2026, None),
]


@pytest.mark.parametrize(("raw", "root", "month", "year", "exchange"), EXPLICIT_FORMS)
def test_parse_explicit_forms(
    raw: str, root: str, month: str, year: int, exchange: str | None
) -> None:
    parsed = parse_symbol(raw, on=ON)
    assert parsed == ParsedSymbol(root, month, year, None, exchange)
    assert not parsed.is_continuous


@pytest.mark.parametrize(
    ("raw", "root"),
    [
        ("MCL1!", "MCL"),
        ("CL1!", "CL"),
        ("MGCZ5", "MGC"),
        ("GCZ5", "GC"),
        ("MESZ5", "MES"),
        ("ESZ5", "ES"),
        ("MYMZ5", "MYM"),
        ("YMZ5", "YM"),
        ("M2KZ5", "M2K"),
        ("RTYZ5", "RTY"),
        ("MNQZ5", "MNQ"),
        ("NQZ5", "NQ"),
        ("SIZ5", "SI"),
    ],
)
def test_longest_root_wins(raw: str, root: str) -> None:
    assert parse_symbol(raw, on=ON).root == root
    assert spec_for(raw).root == root


@pytest.mark.parametrize(
    ("digit", "on", "year"),
    [
        (5, date(2026, 11, 22), 2025),  # Dec 2025 expired < 1 year ago: still 2025
        (6, date(2026, 11, 22), 2026),
        (7, date(2026, 11, 22), 2027),
        (4, date(2026, 11, 22), 2034),  # 2024 is more than a year back: next decade
        (5, date(2026, 1, 1), 2025),
        (5, date(2027, 1, 1), 2035),
        (0, date(2029, 6, 1), 2030),
        (9, date(2030, 6, 1), 2029),
        (9, date(2031, 1, 1), 2039),
        (9, date(2029, 12, 31), 2029),
    ],
)
def test_one_digit_year_rule(digit: int, on: date, year: int) -> None:
    assert parse_symbol(f"MNQZ{digit}", on=on).year == year


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "FOO1!",
        "XYZZ5",
        "MNQ0!",
        "MNQ1",  # missing "!"
        "MNQ!",
        "MNQA5",  # A is not a month code
        "MNQZ",  # no year
        "MNQZ205",  # 3-digit year
        "MNQZ5!",
        "BINANCE:MNQ1!",  # not a CME Group prefix
        "CME_MINI:",
        "MNQF6",  # equity index lists no January contract
        "ZNG6",  # Treasuries: quarterly only
        "MNQ 1!",
    ],
)
def test_bad_symbols_raise_unknown_symbol(raw: str) -> None:
    with pytest.raises(UnknownSymbol) as info:
        parse_symbol(raw, on=ON)
    assert info.value.symbol == raw
    with pytest.raises(ValueError):
        spec_for(raw)


def test_non_string_symbol_raises_unknown_symbol() -> None:
    with pytest.raises(UnknownSymbol):
        parse_symbol(123)  # type: ignore[arg-type]


def test_serial_months_accepted_where_they_are_listed() -> None:
    # CL lists every month; GC/SI/6E also list nearby serial months, so explicit contracts pass.
    assert normalize("CLG6", ON) == "CLG6"
    assert normalize("GCX6", ON) == "GCX6"
    assert normalize("SIF7", ON) == "SIF7"
    assert normalize("6EF7", ON) == "6EF7"


def test_unknown_symbol_carries_symbol_and_pickles() -> None:
    err = UnknownSymbol("FOO1!", "nope")
    assert err.symbol == "FOO1!"
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is UnknownSymbol
    assert (clone.symbol, clone.reason, str(clone)) == ("FOO1!", "nope", str(err))


@pytest.mark.parametrize(
    "raw",
    ["MNQ1!", "MNQ2!", "CME_MINI:MNQ1!", "MNQZ5", "MNQZ25", "MNQZ2025", "CME_MINI_DL:MNQ1!", "MNQ"],
)
def test_spec_for_every_form(raw: str) -> None:
    assert spec_for(raw) is CONTRACTS["MNQ"]


# --------------------------------------------------------------------------- normalize


@pytest.mark.parametrize(
    ("raw", "on", "expected"),
    [
        ("MNQ1!", date(2026, 11, 22), "MNQZ6"),
        ("MNQ2!", date(2026, 11, 22), "MNQH7"),
        ("CME_MINI:MNQ1!", date(2026, 11, 22), "MNQZ6"),
        ("CME_MINI_DL:MNQ2!", date(2026, 11, 22), "MNQH7"),
        ("MNQ", date(2026, 11, 22), "MNQZ6"),
        ("MNQZ5", date(2026, 11, 22), "MNQZ5"),
        ("MNQZ25", date(2026, 11, 22), "MNQZ5"),
        ("MNQZ2025", date(2026, 11, 22), "MNQZ5"),
        ("CME_MINI:MNQZ2025", date(2026, 11, 22), "MNQZ5"),
        ("mnq1!", date(2025, 12, 10), "MNQZ5"),
        ("MNQ1!", date(2025, 12, 11), "MNQH6"),
        ("MNQ1!", date(2026, 12, 9), "MNQZ6"),
        ("MNQ1!", date(2026, 12, 10), "MNQH7"),
        ("ES1!", date(2025, 12, 11), "ESH6"),
        ("NYMEX:CL1!", date(2025, 11, 12), "CLZ5"),
        ("NYMEX:CL1!", date(2025, 11, 13), "CLF6"),
        ("MCL1!", date(2025, 11, 11), "MCLZ5"),
        ("MCL1!", date(2025, 11, 12), "MCLF6"),
        ("COMEX:GC1!", date(2025, 11, 27), "GCZ5"),
        ("COMEX:GC1!", date(2025, 11, 28), "GCG6"),
        ("SI1!", date(2025, 11, 28), "SIH6"),
        ("CBOT:ZN1!", date(2025, 11, 27), "ZNZ5"),
        ("CBOT:ZN1!", date(2025, 11, 28), "ZNH6"),
        ("CME:6E1!", date(2025, 12, 6), "6EZ5"),
        ("CME:6E1!", date(2025, 12, 7), "6EH6"),
        ("MNQZ2035", date(2026, 11, 22), "MNQZ5"),  # the one-digit form loses the decade
    ],
)
def test_normalize_examples(raw: str, on: date, expected: str) -> None:
    assert normalize(raw, on) == expected


def test_normalize_accepts_a_datetime_as_the_reference_day() -> None:
    assert normalize("MNQ1!", datetime(2025, 12, 11, 9, 30)) == "MNQH6"


# --------------------------------------------------------------------------- roll rules


@pytest.mark.parametrize(
    ("root", "month", "year", "last_trade", "roll"),
    [
        ("MNQ", "Z", 2025, date(2025, 12, 19), date(2025, 12, 11)),
        ("MNQ", "Z", 2026, date(2026, 12, 18), date(2026, 12, 10)),
        ("ES", "H", 2026, date(2026, 3, 20), date(2026, 3, 12)),
        ("ES", "H", 2022, date(2022, 3, 18), date(2022, 3, 10)),  # CME's published 2022 roll
        ("NQ", "M", 2024, date(2024, 6, 21), date(2024, 6, 13)),
        ("YM", "U", 2025, date(2025, 9, 19), date(2025, 9, 11)),
        ("6E", "Z", 2025, date(2025, 12, 15), date(2025, 12, 7)),
        ("6E", "H", 2026, date(2026, 3, 16), date(2026, 3, 8)),
        ("ZN", "Z", 2025, date(2025, 12, 22), date(2025, 11, 28)),
        ("ZB", "H", 2026, date(2026, 3, 20), date(2026, 2, 27)),
        ("CL", "Z", 2025, date(2025, 11, 20), date(2025, 11, 13)),
        ("CL", "F", 2026, date(2025, 12, 22), date(2025, 12, 15)),
        # 25 Jan 2026 is a Sunday: 3 business days before Friday 23 Jan.
        ("CL", "G", 2026, date(2026, 1, 20), date(2026, 1, 13)),
        ("MCL", "Z", 2025, date(2025, 11, 19), date(2025, 11, 12)),
        ("MCL", "G", 2026, date(2026, 1, 19), date(2026, 1, 12)),
        ("GC", "Z", 2025, date(2025, 12, 29), date(2025, 11, 28)),
        ("MGC", "G", 2026, date(2026, 2, 25), date(2026, 1, 30)),
        ("SI", "H", 2026, date(2026, 3, 27), date(2026, 2, 27)),
    ],
)
def test_last_trade_and_roll_dates(
    root: str, month: str, year: int, last_trade: date, roll: date
) -> None:
    assert last_trade_date(root, month, year) == last_trade
    assert roll_date(root, month, year) == roll


@pytest.mark.parametrize("root", ["MNQ", "MES", "M2K", "MYM", "NQ", "ES", "RTY", "YM"])
@pytest.mark.parametrize("year", range(2020, 2031))
@pytest.mark.parametrize("month", "HMUZ")
def test_equity_index_roll_is_a_thursday_eight_days_before_a_third_friday(
    root: str, year: int, month: str
) -> None:
    last = last_trade_date(root, month, year)
    assert last.weekday() == 4 and 15 <= last.day <= 21
    roll = roll_date(root, month, year)
    assert roll.weekday() == 3 and last - roll == timedelta(days=8)


def test_front_month_examples_from_the_brief() -> None:
    assert front_month("MNQ", date(2025, 12, 10)) == "MNQZ5"
    assert front_month("MNQ", date(2025, 12, 11)) == "MNQH6"
    assert front_month("MNQ", date(2026, 11, 22)) == "MNQZ6"
    assert front_month("MNQ", date(2026, 11, 22), nth=2) == "MNQH7"
    assert front_month("mnq", date(2026, 11, 22), nth=3) == "MNQM7"
    assert front_month("CL", date(2025, 11, 22), nth=2) == "CLG6"
    assert front_month("GC", date(2025, 11, 22), nth=2) == "GCG6"


@pytest.mark.parametrize("nth", [0, -1, 1.0, True])
def test_front_month_rejects_bad_nth(nth: object) -> None:
    with pytest.raises(ValueError):
        front_month("MNQ", ON, nth)  # type: ignore[arg-type]


def test_rule_functions_validate_inputs() -> None:
    with pytest.raises(UnknownSymbol):
        front_month("FOO", ON)
    with pytest.raises(UnknownSymbol):
        last_trade_date("FOO", "Z", 2025)
    with pytest.raises(ValueError):
        last_trade_date("MNQ", "A", 2025)
    with pytest.raises(ValueError):
        roll_date("MNQ", "Z", 25)
    assert last_trade_date("mnq", "z", 2025) == date(2025, 12, 19)


# --------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("price", "tick", "ticks"),
    [
        (21000.25, 0.25, 84001),
        (21000.125, 0.25, 84001),  # exactly half: up
        (21000.124, 0.25, 84000),
        (0.1 + 0.2, 0.1, 3),  # 0.30000000000000004
        (1.1 + 2.2, 0.1, 33),  # 3.3000000000000003
        (2.675, 0.01, 268),  # float(2.675) is below 2.675 but str() is exact
        (1.0850, 0.00005, 21700),
        (112.515625, 0.015625, 7201),
        (112.5078125, 0.015625, 7201),  # half of 1/64: up
        (-37.63, 0.01, -3763),  # CL, April 2020
        (-0.005, 0.01, 0),  # half up means towards +infinity also below zero
        (-0.015, 0.01, -1),
        (0, 0.25, 0),
        (100, 1, 100),
    ],
)
def test_price_to_ticks_examples(price: float, tick: float, ticks: int) -> None:
    assert price_to_ticks(price, tick) == ticks


def test_price_to_ticks_absorbs_noise_at_a_half_tick() -> None:
    # 4.5 ticks computed with noise either side still rounds the same way.
    assert price_to_ticks(1.1249999999999998, 0.25) == 5
    assert price_to_ticks(1.1250000000000002, 0.25) == 5


@pytest.mark.parametrize(
    ("price", "tick"),
    [(float("nan"), 0.25), (float("inf"), 0.25), (1.0, 0.0), (1.0, -0.25), (1.0, float("nan"))],
)
def test_price_to_ticks_rejects_non_numbers(price: float, tick: float) -> None:
    with pytest.raises(ValueError):
        price_to_ticks(price, tick)


@pytest.mark.parametrize(
    ("ticks", "root", "price"),
    [
        (84001, "MNQ", 21000.25),
        (21700, "6E", 1.085),
        (7201, "ZN", 112.515625),
        (3601, "ZB", 112.53125),
        (-3763, "CL", -37.63),
        (4201, "SI", 21.005),
        (40007, "YM", 40007.0),
    ],
)
def test_ticks_to_price_examples(ticks: int, root: str, price: float) -> None:
    assert ticks_to_price(ticks, CONTRACTS[root]) == price


@pytest.mark.parametrize(
    ("price", "root", "rounded"),
    [
        (21000.3, "MNQ", 21000.25),
        (21000.38, "MNQ", 21000.5),
        (21000.375, "MNQ", 21000.5),
        (2100.04, "M2K", 2100.0),
        (2100.05, "M2K", 2100.1),
        (40000.5, "YM", 40001.0),
        (1.08512, "6E", 1.0851),
        (1.085125, "6E", 1.08515),
        (112.52, "ZN", 112.515625),
        (30.0026, "SI", 30.005),
    ],
)
def test_round_to_tick_examples(price: float, root: str, rounded: float) -> None:
    assert round_to_tick(price, CONTRACTS[root]) == rounded


specs = st.sampled_from([CONTRACTS[r] for r in ROOTS])


@given(spec=specs, ticks=st.integers(min_value=-(10**7), max_value=10**9))
def test_ticks_round_trip_on_every_contract(spec: ContractSpec, ticks: int) -> None:
    price = ticks_to_price(ticks, spec)
    assert price_to_ticks(price, spec.tick_size) == ticks
    assert round_to_tick(price, spec) == price
    # The displayed string has no more decimals than the spec allows.
    assert Decimal(repr(price)).as_tuple().exponent >= -max(spec.decimals, 1)


@given(
    spec=specs,
    price=st.floats(min_value=-1e5, max_value=1e6, allow_nan=False, allow_infinity=False),
)
def test_round_to_tick_is_nearest_and_idempotent(spec: ContractSpec, price: float) -> None:
    rounded = round_to_tick(price, spec)
    assert round_to_tick(rounded, spec) == rounded
    distance = abs(Decimal(str(rounded)) - Decimal(str(price)))
    assert distance <= Decimal(str(spec.tick_size)) / 2 + Decimal("1e-9")


# --------------------------------------------------------------------------- properties

days = st.dates(min_value=date(2001, 1, 1), max_value=date(2098, 12, 31))
roots = st.sampled_from(ROOTS)


@st.composite
def symbols(draw: st.DrawFn) -> str:
    root = draw(roots)
    prefix = draw(st.sampled_from(["", f"{CONTRACTS[root].exchange}:", "CME_MINI_DL:"]))
    form = draw(st.sampled_from(["continuous", "bare", "explicit"]))
    if form == "continuous":
        body = f"{root}{draw(st.integers(1, 6))}!"
    elif form == "bare":
        body = root
    else:
        month = draw(st.sampled_from(CONTRACTS[root].months))
        year = draw(st.integers(2000, 2099))
        digits = draw(st.sampled_from([f"{year}", f"{year % 100:02d}", f"{year % 10}"]))
        body = f"{root}{month}{digits}"
    text = prefix + body
    return draw(st.sampled_from([text, text.lower(), f" {text}\t"]))


@given(symbol=symbols(), on=days)
def test_normalize_is_idempotent(symbol: str, on: date) -> None:
    once = normalize(symbol, on)
    assert normalize(once, on) == once
    parsed = parse_symbol(once, on=on)
    assert once == f"{parsed.root}{parsed.month_code}{parsed.year % 10}"  # type: ignore[operator]
    assert spec_for(symbol) is CONTRACTS[parsed.root]


@settings(max_examples=300)
@given(root=roots, on=days, nth=st.integers(1, 4))
def test_front_month_is_never_expired_and_in_cycle(root: str, on: date, nth: int) -> None:
    contracts = [front_month(root, on, n) for n in range(1, nth + 1)]
    keys = []
    for code in contracts:
        parsed = parse_symbol(code, on=on)
        assert parsed.month_code is not None and parsed.year is not None
        assert parsed.month_code in CONTRACTS[root].months
        assert roll_date(root, parsed.month_code, parsed.year) > on
        assert last_trade_date(root, parsed.month_code, parsed.year) > on
        keys.append((parsed.year, MONTH_CODES.index(parsed.month_code)))
    assert keys == sorted(set(keys))  # strictly later contracts for larger nth
    # The front month's predecessor in the cycle has rolled by ``on``.
    year, month_index = keys[0]
    cycle = CONTRACTS[root].months
    prev_code = cycle[cycle.index(MONTH_CODES[month_index]) - 1]
    prev_year = year - 1 if MONTH_CODES.index(prev_code) >= month_index else year
    assert roll_date(root, prev_code, prev_year) <= on


@given(root=roots, year=st.integers(1950, 2150), month_index=st.integers(0, 11))
def test_roll_before_last_trade_and_rolls_increase(root: str, year: int, month_index: int) -> None:
    code = MONTH_CODES[month_index]
    last = last_trade_date(root, code, year)
    roll = roll_date(root, code, year)
    assert roll < last
    assert last.weekday() < 5
    next_code = MONTH_CODES[(month_index + 1) % 12]
    next_year = year + 1 if month_index == 11 else year
    assert roll_date(root, next_code, next_year) > roll
    assert last_trade_date(root, next_code, next_year) > last


@given(root=roots, on=days)
def test_front_month_changes_exactly_on_roll_dates(root: str, on: date) -> None:
    today, tomorrow = front_month(root, on), front_month(root, on + timedelta(days=1))
    if today != tomorrow:
        parsed = parse_symbol(today, on=on)
        assert parsed.month_code is not None and parsed.year is not None
        assert roll_date(root, parsed.month_code, parsed.year) == on + timedelta(days=1)
        assert front_month(root, on, 2) == tomorrow


def test_extreme_magnitudes_do_not_overflow_the_decimal_context() -> None:
    assert price_to_ticks(1e15, 0.00005) == 2 * 10**19
    assert price_to_ticks(5e-324, 0.25) == 0
    assert ticks_to_price(2 * 10**19, CONTRACTS["6E"]) == 1e15


def test_spec_for_refuses_what_it_cannot_parse_cached_or_not() -> None:
    """spec_for caches by symbol text: an unknown symbol still raises every time (it is not
    cached as an answer), and a non-string (a number in a webhook body) is refused as an
    unknown symbol, not by the cache's hashing."""
    for _ in range(2):
        with pytest.raises(UnknownSymbol):
            spec_for("NOPE1!")
    with pytest.raises(UnknownSymbol):
        spec_for(["MNQ"])  # type: ignore[arg-type]
    with pytest.raises(UnknownSymbol):
        spec_for(12)  # type: ignore[arg-type]
    assert spec_for("mnqz6") is spec_for("MNQZ6") is CONTRACTS["MNQ"]
