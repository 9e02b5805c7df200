"""Futures contract specs, TradingView symbol parsing and our front-month roll rule.

Pure module: no I/O, no Ray, no clock except where a caller omits a reference date.

Symbols
-------
Accepted forms (case-insensitive, surrounding whitespace ignored):

* continuous: ``MNQ1!``, ``MNQ2!``, ``CME_MINI:MNQ1!``, ``CME_MINI_DL:MNQ1!`` and the bare
  root ``MNQ`` (same as ``MNQ1!``);
* explicit contracts: ``MNQZ5``, ``MNQZ25``, ``MNQZ2025``, ``CME_MINI:MNQZ2025``.

The exchange prefix is optional and informational: it must be one of the CME Group prefixes
TradingView uses (``CME``, ``CME_MINI``, ``CBOT``, ``CBOT_MINI``, ``NYMEX``, ``NYMEX_MINI``,
``COMEX``, ``COMEX_MINI``, each optionally with TradingView's delayed-data suffix ``_DL``), but it
is *not* required to match the root's home exchange, because TradingView lists some products
under more than one prefix (micro gold appears as both ``COMEX:MGC1!`` and ``COMEX_MINI:MGC1!``).
The root decides the contract. Roots are matched longest first (``MCL`` before ``CL``).

Years: a 4-digit year is taken as is; a 2-digit year ``yy`` is ``2000 + yy``; a 1-digit year
``d`` (TradingView/broker style ``MNQZ5``) is resolved against a reference date ``on`` by
**our rule**: the smallest year ``Y`` ending in ``d`` with ``Y >= on.year - 1``. So on any day of
2026, ``5`` means 2025 (a contract expired at most about a year ago is still a valid reference for
historical data) and ``4`` means 2034. ``normalize`` always writes one year digit, so it is
idempotent for a fixed ``on``.

Explicit contracts pass through unchanged (even expired ones). For roots whose real listing has
no serial months (equity index and Treasuries) a month outside the quarterly cycle is rejected as
a contract that does not exist; for CL/MCL (all months), GC/MGC/SI and 6E (which also list
nearby serial months) any month code is accepted.

Business days below are Monday to Friday; exchange holidays are deliberately ignored so that the
rules stay pure and deterministic (holiday schedules live in :mod:`actors.sessions`). Around a
holiday a computed last trade date can therefore be a business day or two later than CME's
official one (ZNZ5, CLF6); the roll dates lie days to weeks before expiry, so the front-month
mapping is unaffected.

Our roll rules
--------------
``roll_date`` is the first calendar day on which the *next* listed contract is the front month;
``front_month(root, on)`` is the first listed contract whose ``roll_date`` is after ``on``.

* Equity index (MNQ MES M2K MYM NQ ES RTY YM): months H M U Z; last trade = 3rd Friday of the
  contract month; roll = 8 calendar days before the last trade (CME's roll date, a Thursday).
  Example: MNQZ5 last trade 2025-12-19, roll 2025-12-11.
* 6E: months H M U Z; last trade = 2 business days before the 3rd Wednesday of the contract month;
  roll = 8 calendar days before the last trade (6EZ5: last trade 2025-12-15, roll 2025-12-07).
* ZB/ZN: months H M U Z; last trade = 7th business day before the last business day of the
  contract month; roll = last business day of the month *before* the contract month, i.e. first
  notice day, when longs not wanting delivery must be out (ZNZ5: last trade 2025-12-22 by this
  rule, roll 2025-11-28; CME's real date was 2025-12-19 because Christmas is a holiday).
* CL: all 12 months; last trade = 3 business days before the 25th of the month before the
  contract month, or, if the 25th is not a business day, 3 business days before the last business
  day preceding the 25th. MCL: one business day before CL. Roll = 5 business days before the last
  trade (CLZ5: last trade 2025-11-20, roll 2025-11-13; MCLZ5: 2025-11-19, roll 2025-11-12).
* GC/MGC (months G J M Q V Z) and SI (months H K N U Z): last trade = third-to-last business day of
  the contract month; roll = last business day of the month before the contract month (first
  notice day, as for Treasuries) (GCZ5: last trade 2025-12-29, roll 2025-11-28).

Prices and ticks
----------------
``price_to_ticks`` converts through ``Decimal(str(x))`` so binary float noise does not shift a
price by one tick; the quotient is first rounded to 9 decimal places (far below any tick) and then
rounded half *up* (towards +infinity, which keeps the mapping translation invariant also for the
negative prices crude oil has printed).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext

__all__ = [
    "CONTRACTS",
    "MONTH_CODES",
    "ContractSpec",
    "ParsedSymbol",
    "UnknownSymbol",
    "front_month",
    "last_trade_date",
    "normalize",
    "parse_symbol",
    "price_to_ticks",
    "roll_date",
    "round_to_tick",
    "spec_for",
    "ticks_to_price",
]

#: Futures month codes, January to December.
MONTH_CODES = "FGHJKMNQUVXZ"
_MONTH_NUMBER = {code: i + 1 for i, code in enumerate(MONTH_CODES)}


@dataclass(frozen=True, slots=True)
class ContractSpec:
    """Static description of one futures product (outright tick, not the spread tick)."""

    root: str
    name: str
    exchange: str
    tick_size: float
    tick_value: float
    months: str
    decimals: int

    @property
    def point_value(self) -> float:
        """USD per one full point per contract (computed in Decimal: 6.25/0.00005 is 125000)."""
        return float(Decimal(str(self.tick_value)) / Decimal(str(self.tick_size)))


class UnknownSymbol(ValueError):
    """A symbol that is not one of our contracts (or not a contract that exists).

    Picklable with its attributes intact, because it crosses Ray process boundaries.
    """

    def __init__(self, symbol: str, reason: str = "not a known futures symbol") -> None:
        super().__init__(f"{symbol!r}: {reason}")
        self.symbol = symbol
        self.reason = reason

    def __reduce__(self) -> tuple[type[UnknownSymbol], tuple[str, str]]:
        return (type(self), (self.symbol, self.reason))


@dataclass(frozen=True, slots=True)
class ParsedSymbol:
    """Result of :func:`parse_symbol`.

    Exactly one of (``month_code`` and ``year``) or ``continuous_index`` is set. A bare root has
    ``continuous_index == 1``. ``exchange`` is the prefix as written, without ``_DL``, or None.
    """

    root: str
    month_code: str | None
    year: int | None
    continuous_index: int | None
    exchange: str | None = None

    @property
    def is_continuous(self) -> bool:
        return self.continuous_index is not None


def _spec(
    root: str, name: str, exchange: str, tick: str, value: str, months: str, decimals: int
) -> ContractSpec:
    return ContractSpec(root, name, exchange, float(tick), float(value), months, decimals)


# reference/tradingview.md §5.3 (outright ticks).
CONTRACTS: dict[str, ContractSpec] = {
    s.root: s
    for s in (
        _spec("MNQ", "Micro E-mini Nasdaq-100", "CME_MINI", "0.25", "0.50", "HMUZ", 2),
        _spec("MES", "Micro E-mini S&P 500", "CME_MINI", "0.25", "1.25", "HMUZ", 2),
        _spec("M2K", "Micro E-mini Russell 2000", "CME_MINI", "0.10", "0.50", "HMUZ", 1),
        _spec("MYM", "Micro E-mini Dow Jones", "CBOT_MINI", "1", "0.50", "HMUZ", 0),
        _spec("NQ", "E-mini Nasdaq-100", "CME_MINI", "0.25", "5.00", "HMUZ", 2),
        _spec("ES", "E-mini S&P 500", "CME_MINI", "0.25", "12.50", "HMUZ", 2),
        _spec("RTY", "E-mini Russell 2000", "CME_MINI", "0.10", "5.00", "HMUZ", 1),
        _spec("YM", "E-mini Dow Jones", "CBOT_MINI", "1", "5.00", "HMUZ", 0),
        _spec("CL", "Crude Oil WTI", "NYMEX", "0.01", "10.00", MONTH_CODES, 2),
        _spec("MCL", "Micro WTI Crude Oil", "NYMEX", "0.01", "1.00", MONTH_CODES, 2),
        _spec("GC", "Gold", "COMEX", "0.10", "10.00", "GJMQVZ", 1),
        _spec("MGC", "Micro Gold", "COMEX", "0.10", "1.00", "GJMQVZ", 1),
        _spec("SI", "Silver", "COMEX", "0.005", "25.00", "HKNUZ", 3),
        _spec("6E", "Euro FX", "CME", "0.00005", "6.25", "HMUZ", 5),
        _spec("ZB", "U.S. Treasury Bond", "CBOT", "0.03125", "31.25", "HMUZ", 5),
        _spec("ZN", "10-Year U.S. Treasury Note", "CBOT", "0.015625", "15.625", "HMUZ", 6),
    )
}

_EQUITY = frozenset({"MNQ", "MES", "M2K", "MYM", "NQ", "ES", "RTY", "YM"})
_TREASURY = frozenset({"ZB", "ZN"})
_METALS = frozenset({"GC", "MGC", "SI"})
_CRUDE = frozenset({"CL", "MCL"})
_FX = frozenset({"6E"})
# Products with no serial months: an off-cycle explicit contract cannot exist.
_STRICT_CYCLE = _EQUITY | _TREASURY

_EXCHANGE_PREFIXES = frozenset(
    {"CME", "CME_MINI", "CBOT", "CBOT_MINI", "NYMEX", "NYMEX_MINI", "COMEX", "COMEX_MINI"}
)
# No current root is a prefix of another (MCL/CL share a suffix, not a prefix), so longest-first
# is a safeguard for roots added later rather than something today's table depends on.
_ROOTS_LONGEST_FIRST = tuple(sorted(CONTRACTS, key=lambda r: (-len(r), r)))
_TAIL = re.compile(rf"(?:(?P<idx>\d+)!|(?P<month>[{MONTH_CODES}])(?P<year>\d|\d{{2}}|\d{{4}}))?")


# --------------------------------------------------------------------------- parsing


def _as_date(on: date) -> date:
    # datetime is a subclass of date but does not compare with it; keep the calendar date.
    return on.date() if isinstance(on, datetime) else on


def _resolve_one_digit_year(digit: int, on: date) -> int:
    """Smallest year ending in ``digit`` that is not before ``on.year - 1`` (module docstring)."""
    floor = on.year - 1
    return floor + (digit - floor) % 10


def parse_symbol(raw: str, on: date | None = None) -> ParsedSymbol:
    """Parse any accepted symbol form (see module docstring).

    ``on`` is only used to resolve a one-digit year; it defaults to today's local date, so pass
    it explicitly wherever determinism matters (replays, tests).
    """
    if not isinstance(raw, str):
        raise UnknownSymbol(repr(raw), "symbol must be a string")
    text = raw.strip().upper()
    exchange: str | None = None
    body = text
    if ":" in text:
        prefix, body = text.split(":", 1)
        prefix = prefix.removesuffix("_DL")
        if prefix not in _EXCHANGE_PREFIXES:
            raise UnknownSymbol(raw, f"exchange prefix {prefix!r} is not a CME Group exchange")
        exchange = prefix
    for root in _ROOTS_LONGEST_FIRST:
        if not body.startswith(root):
            continue
        match = _TAIL.fullmatch(body[len(root) :])
        if match is None:
            continue
        if match["idx"] is not None:
            index = int(match["idx"])
            if index < 1:
                raise UnknownSymbol(raw, "continuous index starts at 1")
            return ParsedSymbol(root, None, None, index, exchange)
        if match["month"] is None:
            return ParsedSymbol(root, None, None, 1, exchange)
        month_code = match["month"]
        if root in _STRICT_CYCLE and month_code not in CONTRACTS[root].months:
            raise UnknownSymbol(
                raw, f"{root} lists only {CONTRACTS[root].months} contracts, not {month_code}"
            )
        digits = match["year"]
        if len(digits) == 4:
            year = int(digits)
        elif len(digits) == 2:
            year = 2000 + int(digits)
        else:
            ref = _as_date(on) if on is not None else date.today()
            year = _resolve_one_digit_year(int(digits), ref)
        return ParsedSymbol(root, month_code, year, None, exchange)
    raise UnknownSymbol(raw)


def spec_for(symbol: str) -> ContractSpec:
    """Contract spec for a root or any accepted symbol form."""
    if isinstance(symbol, str):
        return _spec_for_text(symbol)
    return CONTRACTS[parse_symbol(symbol).root]  # raises UnknownSymbol


@functools.lru_cache(maxsize=4096)
def _spec_for_text(symbol: str) -> ContractSpec:
    """Cached: the tick path, the desk and the broker ask per batch and per order, and parsing
    cost 8 us a time. Pure: the reference date only resolves a one-digit year, which cannot
    change the root, so a fixed date keeps it free of the clock. Unknown symbols raise and are
    not cached; the cache is bounded because symbols can come from webhook bodies."""
    return CONTRACTS[parse_symbol(symbol, on=date(2000, 1, 1)).root]


def _root(root: str) -> str:
    key = root.strip().upper() if isinstance(root, str) else ""
    if key not in CONTRACTS:
        raise UnknownSymbol(str(root), "not a known contract root")
    return key


def _month_number(month_code: str) -> int:
    code = month_code.strip().upper() if isinstance(month_code, str) else ""
    if code not in _MONTH_NUMBER:
        raise ValueError(f"{month_code!r} is not a futures month code")
    return _MONTH_NUMBER[code]


def _contract_code(root: str, month_code: str, year: int) -> str:
    return f"{root}{month_code}{year % 10}"


def normalize(symbol: str, on: date) -> str:
    """Canonical concrete contract, root + month code + one-digit year (``MNQZ5``).

    Continuous forms map through :func:`front_month`; explicit contracts pass through.
    """
    on = _as_date(on)
    parsed = parse_symbol(symbol, on=on)
    if parsed.continuous_index is not None:
        return front_month(parsed.root, on, parsed.continuous_index)
    assert parsed.month_code is not None and parsed.year is not None
    return _contract_code(parsed.root, parsed.month_code, parsed.year)


# --------------------------------------------------------------------------- calendar rules


def _is_business_day(d: date) -> bool:
    return d.weekday() < 5


def _add_business_days(d: date, n: int) -> date:
    """Move ``n`` Mon–Fri days from ``d`` (negative: backwards). ``d`` itself is not counted."""
    step = 1 if n >= 0 else -1
    remaining = abs(n)
    while remaining:
        d += timedelta(days=step)
        if _is_business_day(d):
            remaining -= 1
    return d


def _last_business_day(year: int, month: int) -> date:
    d = _first_of_next_month(year, month) - timedelta(days=1)
    while not _is_business_day(d):
        d -= timedelta(days=1)
    return d


def _first_of_next_month(year: int, month: int) -> date:
    return date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)


def _previous_month(year: int, month: int) -> tuple[int, int]:
    return (year - 1, 12) if month == 1 else (year, month - 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _check_year(year: int) -> int:
    if not isinstance(year, int) or isinstance(year, bool) or not 1900 <= year <= 2999:
        raise ValueError(f"year must be a 4-digit year, got {year!r}")
    return year


def _cl_last_trade(year: int, month: int) -> date:
    prev_year, prev_month = _previous_month(year, month)
    ref = date(prev_year, prev_month, 25)
    while not _is_business_day(ref):
        ref -= timedelta(days=1)
    return _add_business_days(ref, -3)


def last_trade_date(root: str, month_code: str, year: int) -> date:
    """Last trading day of a contract under our rules (module docstring; holidays ignored)."""
    root = _root(root)
    month = _month_number(month_code)
    year = _check_year(year)
    if root in _EQUITY:
        return _nth_weekday(year, month, 4, 3)  # 3rd Friday
    if root in _FX:
        return _add_business_days(_nth_weekday(year, month, 2, 3), -2)  # 3rd Wednesday - 2
    if root in _TREASURY:
        return _add_business_days(_last_business_day(year, month), -7)
    if root == "CL":
        return _cl_last_trade(year, month)
    if root == "MCL":
        return _add_business_days(_cl_last_trade(year, month), -1)
    if root in _METALS:
        return _add_business_days(_last_business_day(year, month), -2)
    raise AssertionError(f"no last-trade rule for {root}")  # pragma: no cover


def roll_date(root: str, month_code: str, year: int) -> date:
    """First day on which the contract after this one is the front month (our rules)."""
    root = _root(root)
    month = _month_number(month_code)
    year = _check_year(year)
    if root in _EQUITY or root in _FX:
        return last_trade_date(root, month_code, year) - timedelta(days=8)
    if root in _CRUDE:
        return _add_business_days(last_trade_date(root, month_code, year), -5)
    if root in _TREASURY or root in _METALS:
        return _last_business_day(*_previous_month(year, month))
    raise AssertionError(f"no roll rule for {root}")  # pragma: no cover


def _listed_from(root: str, year: int, month: int) -> Iterator[tuple[str, int]]:
    """Listed (month_code, year) contracts of ``root`` from ``year``-``month`` onwards, forever."""
    months = CONTRACTS[root].months
    while True:
        code = MONTH_CODES[month - 1]
        if code in months:
            yield code, year
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


def front_month(root: str, on: date, nth: int = 1) -> str:
    """The ``nth`` listed contract (1 = front) on day ``on``: ``front_month("MNQ", d) == "MNQZ5"``.

    Every contract whose month is before ``on``'s month has rolled already under all our rules
    (rolls happen in or before the contract month), so the search starts at ``on``'s month.
    """
    root = _root(root)
    on = _as_date(on)
    if not isinstance(nth, int) or isinstance(nth, bool) or nth < 1:
        raise ValueError(f"nth must be a positive integer, got {nth!r}")
    skipped = 0
    for code, year in _listed_from(root, on.year, on.month):
        if roll_date(root, code, year) > on:
            skipped += 1
            if skipped == nth:
                return _contract_code(root, code, year)
    raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------- prices

_HALF = Decimal("0.5")
_QUOTIENT_QUANTUM = Decimal("1e-9")
_WIDE = Context(prec=400, Emax=999_999, Emin=-999_999)


def _decimal(value: float | int | Decimal | str, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{what} {value!r} is not a number") from exc
    if not result.is_finite():
        raise ValueError(f"{what} {value!r} is not finite")
    return result


def price_to_ticks(price: float, tick_size: float) -> int:
    """Index of the nearest tick (``price / tick_size``), half rounded up (towards +inf)."""
    tick = _decimal(tick_size, "tick size")
    if tick <= 0:
        raise ValueError(f"tick size must be positive, got {tick_size!r}")
    value = _decimal(price, "price")
    # Enough digits that the 1e-9 quantize never overflows the context, whatever the price.
    with localcontext(_WIDE):
        quotient = (value / tick).quantize(_QUOTIENT_QUANTUM, ROUND_HALF_EVEN)
        return int((quotient + _HALF).to_integral_value(rounding=ROUND_FLOOR))


def ticks_to_price(ticks: int, spec: ContractSpec) -> float:
    """Price of tick index ``ticks``, exact in decimal and then rounded to ``spec.decimals``."""
    with localcontext(_WIDE):
        exact = Decimal(int(ticks)) * Decimal(str(spec.tick_size))
        return float(exact.quantize(Decimal(1).scaleb(-spec.decimals)))


def round_to_tick(price: float, spec: ContractSpec) -> float:
    """``price`` moved to the nearest valid tick of ``spec`` (half up)."""
    return ticks_to_price(price_to_ticks(price, spec.tick_size), spec)
