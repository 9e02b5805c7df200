"""Replay of recorded prices: tick CSVs as they are, OHLC bar CSVs expanded to a tick path.

Everything that interprets text is a pure function on strings (``parse_tick_csv``,
``parse_bar_csv``, ``load_ticks``); only ``ReplaySource`` opens a file.

Bar expansion rule (``expand_bar``): a bar only tells us four prices, but exits must be judged at
tick resolution, so the bar is turned into the tick path a real market would most plausibly have
printed — open -> first extreme -> second extreme -> close, visiting *every* tick level in between,
so a stop or target anywhere inside the bar's range is touched exactly once per crossing, as a live
stream would. Which extreme comes first:

- up bar (close > open): open -> low -> high -> close (the dip came before the rally);
- down bar (close < open): open -> high -> low -> close;
- doji (close == open): the extreme nearer to the open first; on a tie, the high first.

The comparison uses the prices *after* snapping to the tick grid. This is a common backtesting
convention for the intrabar path; it is a guess about the order inside the bar and is written
down so that results computed on bars can be explained.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from actors.feed.sources.base import Bar, Tick, price_to_ticks, ticks_to_price

__all__ = [
    "Bar",
    "ReplaySource",
    "detect_kind",
    "expand_bar",
    "expand_bars",
    "load_ticks",
    "parse_bar_csv",
    "parse_tick_csv",
    "parse_ts",
    "snap_ticks",
]

_TS_COLS = ("ts", "time", "timestamp")
_PRICE_COLS = ("price", "last", "close")
_DURATION_COLS = ("duration", "interval")
_OHLC = ("open", "high", "low", "close")

# Relative to one tick: how far a replayed tick price may sit off the grid and still count as
# float noise from the writer (4500.299999999999 for 4500.3). Anything further is a wrong file or a
# wrong tick size, and silently rounding it would make the replay inexact.
_GRID_TOLERANCE = 1e-6


# --------------------------------------------------------------------------------------- parsing


def parse_ts(raw: str) -> float:
    """Epoch seconds (UTC) from epoch seconds, epoch ms (> 1e11), µs (> 1e14), ns (> 1e17), or ISO-8601.

    The magnitude thresholds are unambiguous for real data: 1e11 s is the year 5138, while 1e11 ms
    is 1973. Naive ISO timestamps are taken as UTC (exchanges and TradingView exports use UTC;
    guessing a local zone would shift a replay by hours silently).
    """
    s = raw.strip()
    if not s:
        raise ValueError("empty timestamp")
    try:
        value = float(s)
    except ValueError:
        try:
            dt = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"unrecognised timestamp {raw!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    if not math.isfinite(value):
        raise ValueError(f"timestamp must be finite, got {raw!r}")
    magnitude = abs(value)
    if magnitude > 1e17:
        return value / 1e9
    if magnitude > 1e14:
        return value / 1e6
    if magnitude > 1e11:
        return value / 1e3
    return value


def _parse_float(raw: str, what: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{what}: not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{what}: must be finite, got {raw!r}")
    return value


class _Table:
    """A CSV with a header row: normalised (stripped, lower-cased) column names → index."""

    def __init__(self, text: str) -> None:
        self.reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
        header: list[str] | None = None
        for row in self.reader:
            if any(cell.strip() for cell in row):
                header = row
                break
        if header is None:
            raise ValueError("empty CSV: a header row is required")
        self.columns: dict[str, int] = {}
        for i, name in enumerate(header):
            key = name.strip().lower()
            if key and key not in self.columns:
                self.columns[key] = i
        self.header = header

    def find(self, aliases: Sequence[str], role: str) -> int | None:
        """Index of the single column named by one of ``aliases``, or None.

        More than one alias present is an error rather than a silent preference: a file with both
        ``price`` and ``last`` is ambiguous, and replay must be exact.
        """
        found = [a for a in aliases if a in self.columns]
        if len(found) > 1:
            raise ValueError(f"ambiguous {role} column: header has {found}")
        return self.columns[found[0]] if found else None

    def require(self, aliases: Sequence[str], role: str) -> int:
        """Like ``find`` but the column must exist."""
        idx = self.find(aliases, role)
        if idx is None:
            raise ValueError(
                f"no {role} column (one of {list(aliases)}) in header {self.header!r}; "
                "a header row is required"
            )
        return idx

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) for every non-blank data row."""
        for row in self.reader:
            if any(cell.strip() for cell in row):
                yield self.reader.line_num, row


def _cell(row: list[str], idx: int, line: int, name: str) -> str:
    if idx >= len(row):
        raise ValueError(f"line {line}: missing {name} field")
    return row[idx].strip()


def _symbol(row: list[str], idx: int | None, default: str | None, line: int) -> str:
    value = row[idx].strip() if idx is not None and idx < len(row) else ""
    if value:
        return value
    if default is None:
        raise ValueError(f"line {line}: no symbol (no symbol column/value and no default_symbol)")
    return default


def parse_tick_csv(text: str, default_symbol: str | None = None) -> list[Tick]:
    """Ticks from CSV text, in file order.

    Header required; columns (case-insensitive): ``ts|time|timestamp``, ``price|last|close``,
    optional ``symbol`` (rows with an empty symbol use ``default_symbol``). Rows are *not* sorted:
    a decreasing ``ts`` within one symbol raises ``ValueError``, because reordering would replay a
    different market than the one recorded. Equal timestamps are fine (several prints per instant).
    Prices are returned as written; ``snap_ticks`` puts them on a grid.
    """
    table = _Table(text)
    ts_i = table.require(_TS_COLS, "timestamp")
    price_i = table.require(_PRICE_COLS, "price")
    sym_i = table.find(("symbol",), "symbol")
    ticks: list[Tick] = []
    last_ts: dict[str, float] = {}
    for line, row in table.rows():
        symbol = _symbol(row, sym_i, default_symbol, line)
        try:
            ts = parse_ts(_cell(row, ts_i, line, "timestamp"))
        except ValueError as e:
            raise ValueError(f"line {line}: {e}") from None
        price = _parse_float(_cell(row, price_i, line, "price"), f"line {line}: price")
        prev = last_ts.get(symbol)
        if prev is not None and ts < prev:
            raise ValueError(
                f"line {line}: {symbol} timestamp {ts} goes back from {prev}; ticks must be in "
                "time order per symbol"
            )
        last_ts[symbol] = ts
        ticks.append(Tick(symbol, ts, price))
    return ticks


def parse_bar_csv(text: str, default_symbol: str | None = None) -> list[Bar]:
    """Bars from CSV text, in file order.

    Columns (case-insensitive): ``ts|time|timestamp`` (bar open time), ``open``, ``high``, ``low``,
    ``close``, optional ``symbol``, optional ``duration|interval`` in seconds (default 60). Other
    columns (volume, …) are ignored. Per symbol, bars must not go back in time or overlap
    (``ts < previous ts + previous duration``), since their expanded tick paths would then
    interleave out of order; an overlap usually means the duration column is missing or wrong.
    OHLC consistency (``low <= min(open, close)``, ``high >= max(open, close)``) is checked here
    too, so the error names the line.
    """
    table = _Table(text)
    ts_i = table.require(_TS_COLS, "timestamp")
    idx = {name: table.require((name,), name) for name in _OHLC}
    sym_i = table.find(("symbol",), "symbol")
    dur_i = table.find(_DURATION_COLS, "duration")
    bars: list[Bar] = []
    last: dict[str, Bar] = {}
    for line, row in table.rows():
        symbol = _symbol(row, sym_i, default_symbol, line)
        try:
            ts = parse_ts(_cell(row, ts_i, line, "timestamp"))
        except ValueError as e:
            raise ValueError(f"line {line}: {e}") from None
        o, h, lo, c = (
            _parse_float(_cell(row, idx[name], line, name), f"line {line}: {name}")
            for name in _OHLC
        )
        duration = 60.0
        if dur_i is not None and dur_i < len(row) and row[dur_i].strip():
            duration = _parse_float(row[dur_i].strip(), f"line {line}: duration")
            if duration <= 0:
                raise ValueError(f"line {line}: duration must be > 0, got {duration}")
        bar = Bar(symbol, ts, o, h, lo, c, duration)
        try:
            _validate_ohlc(bar)
        except ValueError as e:
            raise ValueError(f"line {line}: {e}") from None
        prev = last.get(symbol)
        if prev is not None and ts < prev.ts + prev.duration_s:
            raise ValueError(
                f"line {line}: {symbol} bar at {ts} starts before the previous bar "
                f"[{prev.ts}, {prev.ts + prev.duration_s}) ends; bars must be in time order and "
                "not overlap (is the duration column missing or wrong?)"
            )
        last[symbol] = bar
        bars.append(bar)
    return bars


def detect_kind(text: str) -> Literal["ticks", "bars"]:
    """``"bars"`` if the header has open, high, low and close columns, else ``"ticks"``."""
    table = _Table(text)
    return "bars" if all(name in table.columns for name in _OHLC) else "ticks"


# ------------------------------------------------------------------------------------- expansion


def _validate_ohlc(bar: Bar) -> None:
    if bar.high < max(bar.open, bar.close) or bar.low > min(bar.open, bar.close):
        raise ValueError(
            f"{bar.symbol} bar at {bar.ts}: inconsistent OHLC "
            f"(O={bar.open} H={bar.high} L={bar.low} C={bar.close}); "
            "need high >= max(open, close) and low <= min(open, close)"
        )
    if not bar.duration_s > 0:
        raise ValueError(f"{bar.symbol} bar at {bar.ts}: duration_s must be > 0")


def _bar_path(o: int, h: int, lo: int, c: int) -> list[int]:
    """Tick levels from ``o`` to ``c`` through both extremes, one tick per step (see module doc)."""
    # Down bar, or doji whose high is at least as near to the open as its low: high first.
    high_first = c < o or (c == o and h - o <= o - lo)
    legs = (h, lo, c) if high_first else (lo, h, c)
    path = [o]
    for target in legs:
        cur = path[-1]
        if target != cur:
            step = 1 if target > cur else -1
            path.extend(range(cur + step, target + step, step))
    return path


def expand_bar(bar: Bar, tick_size: float) -> list[Tick]:
    """The bar as a tick path at tick resolution (rule in the module docstring).

    Prices are snapped to the grid (half up, via Decimal) and consecutive prices differ
    by exactly one tick, so no level inside ``[low, high]`` is skipped. A flat bar yields just the
    open. Timestamps are spread evenly over ``[ts, ts + duration_s)``: the i-th of n ticks is at
    ``ts + duration_s * i / n``, so the first tick is at the bar's open time, they strictly increase,
    and none reaches the next bar's open.

    Raises ``ValueError`` when ``high < max(open, close)`` or ``low > min(open, close)``.
    """
    _validate_ohlc(bar)
    o, h, lo, c = (price_to_ticks(p, tick_size) for p in (bar.open, bar.high, bar.low, bar.close))
    path = _bar_path(o, h, lo, c)
    n = len(path)
    return [
        Tick(bar.symbol, bar.ts + bar.duration_s * i / n, ticks_to_price(level, tick_size))
        for i, level in enumerate(path)
    ]


def expand_bars(bars: Iterable[Bar], tick_size_for: Callable[[str], float]) -> list[Tick]:
    """All bars expanded and merged into one stream in time order.

    The merge is a stable sort on ``ts``: ticks of one symbol keep their path order, and at equal
    timestamps symbols keep the order their bars appear in. Per-symbol order relies on bars not
    overlapping (``parse_bar_csv`` enforces that).
    """
    sizes: dict[str, float] = {}
    ticks: list[Tick] = []
    for bar in bars:
        size = sizes.get(bar.symbol)
        if size is None:
            size = sizes[bar.symbol] = tick_size_for(bar.symbol)
        ticks.extend(expand_bar(bar, size))
    ticks.sort(key=lambda t: t.ts)
    return ticks


def snap_ticks(ticks: Iterable[Tick], tick_size_for: Callable[[str], float]) -> list[Tick]:
    """Ticks with prices put exactly on their symbol's grid.

    Only float noise is absorbed (within 1e-6 of a tick); a price genuinely off the grid raises
    ``ValueError``, because it means a wrong tick size or a wrong file and rounding it would change
    which stops and targets the replay hits.
    """
    sizes: dict[str, float] = {}
    out: list[Tick] = []
    for t in ticks:
        size = sizes.get(t.symbol)
        if size is None:
            size = sizes[t.symbol] = tick_size_for(t.symbol)
        n = price_to_ticks(t.price, size)
        if abs(t.price / size - n) > _GRID_TOLERANCE:
            raise ValueError(
                f"{t.symbol} tick at {t.ts}: price {t.price} is not on the {size} tick grid"
            )
        out.append(Tick(t.symbol, t.ts, ticks_to_price(n, size)))
    return out


def load_ticks(
    text: str, tick_size_for: Callable[[str], float], default_symbol: str | None = None
) -> list[Tick]:
    """Ticks from the text of a tick CSV or a bar CSV (auto-detected with ``detect_kind``)."""
    if detect_kind(text) == "bars":
        return expand_bars(parse_bar_csv(text, default_symbol), tick_size_for)
    return snap_ticks(parse_tick_csv(text, default_symbol), tick_size_for)


# ------------------------------------------------------------------------------------ the source


class ReplaySource:
    """Ticks from a tick CSV or bar CSV file (bar files have open/high/low/close columns).

    The file is read and fully validated in the constructor, so a bad file fails when the feed is
    configured rather than mid-replay. Iterating yields the ticks with their recorded timestamps;
    pacing (real time, faster, or as fast as possible) is the feed actor's job. Each ``iter()``
    starts the replay from the beginning.
    """

    def __init__(
        self,
        path: str | Path,
        tick_size_for: Callable[[str], float],
        default_symbol: str | None = None,
    ) -> None:
        self.path = Path(path)
        text = self.path.read_text(encoding="utf-8-sig")
        self.kind: Literal["ticks", "bars"] = detect_kind(text)
        try:
            self.ticks: list[Tick] = load_ticks(text, tick_size_for, default_symbol)
        except ValueError as e:
            raise ValueError(f"{self.path}: {e}") from None

    def __iter__(self) -> Iterator[Tick]:
        return iter(self.ticks)

    def __len__(self) -> int:
        return len(self.ticks)
