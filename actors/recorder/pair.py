"""One pair (recorder × destination): per-symbol positions driven by signals and ticks.

Pure state machine: ``on_signal`` and ``on_tick`` take an event, mutate the pair and return what
happened (fills, trades) for the host to persist. No Ray, no I/O, no clock: time comes with the
events, so a replay is exact and a restored pair continues where it stopped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from fractions import Fraction
from typing import Any, Literal, TypeVar

from actors.instruments import ContractSpec
from actors.recorder.book import LONG, SHORT, Money, Position, Trade, order_side, whole
from actors.recorder.catchup import FeedMarks
from actors.recorder.config import DcaUnit, RecorderSettings
from actors.recorder.exits import ExitRules, ExitState
from actors.recorder.levels import to_ticks
from actors.recorder.plan import plan_signal

SignalKind = Literal["buy", "sell", "close", "add", "target"]
T = TypeVar("T")


@dataclass(slots=True, frozen=True)
class FillEvent:
    """A virtual fill. ``price`` in price units; ``kind`` entry | add | dca | exit."""

    symbol: str
    side: str
    qty: int
    price: Fraction
    ts: float
    kind: str


@dataclass(slots=True)
class Outcome:
    """What one event did. ``status`` is ``applied`` or an ignore/reject code."""

    status: str = "applied"
    fills: list[FillEvent] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)

    def extend(self, other: Outcome) -> None:
        self.fills.extend(other.fills)
        self.trades.extend(other.trades)


class MinuteBars:
    """One-minute bars from ticks, keeping the true ranges ATR needs (integer ticks)."""

    def __init__(self, period: int) -> None:
        self.period = period
        self.bucket: int | None = None
        self.high = self.low = self.close = 0
        self.prev_close: int | None = None
        self.ranges: deque[int] = deque(maxlen=period)

    def add(self, ts: float, price: int) -> None:
        bucket = int(ts // 60)
        if self.bucket is None or bucket > self.bucket:
            if self.bucket is not None:
                self._complete()
            self.bucket, self.high, self.low = bucket, price, price
        else:
            self.high, self.low = max(self.high, price), min(self.low, price)
        self.close = price

    def _complete(self) -> None:
        if self.prev_close is None:
            tr = self.high - self.low
        else:
            tr = max(self.high, self.prev_close) - min(self.low, self.prev_close)
        self.ranges.append(tr)
        self.prev_close = self.close

    def atr(self, period: int | None = None) -> Fraction | None:
        """Mean true range of the last ``period`` completed bars (all kept ones by default)."""
        ranges = list(self.ranges)[-period:] if period else self.ranges
        return Fraction(sum(ranges), len(ranges)) if ranges else None


@dataclass(slots=True)
class SymbolBook:
    """A pair's state in one contract."""

    symbol: str
    money: Money
    rules: ExitRules
    last_tick: int | None = None
    pos: Position | None = None
    exits: ExitState | None = None
    bars: MinuteBars | None = None
    atr_period: int | None = None
    own_bars: bool = True  # False: a host feeds shared bars of the symbol


class Pair:
    """A recorder's virtual pair: positions per symbol, filled at signal and tick prices."""

    def __init__(
        self,
        key: str,
        settings: RecorderSettings,
        spec_for: Callable[[str], ContractSpec],
        shared_bars: Callable[[str], MinuteBars] | None = None,
        marks: FeedMarks | None = None,
    ) -> None:
        """``shared_bars``: a host's one-minute bars per symbol, fed by the host with every
        tick, so thousands of pairs on one symbol do not each build the same bars.
        ``marks``: the host's feed marks (symbol -> [epoch, last tick number applied]), written
        into each snapshot so a restarted host replays only the ticks this state has not seen."""
        self.key = key
        self.marks = marks
        self.settings = settings
        self.spec_for = spec_for
        self.shared_bars = shared_bars
        self.books: dict[str, SymbolBook] = {}

    # -- plumbing -------------------------------------------------------------------------------

    def book(self, symbol: str) -> SymbolBook:
        b = self.books.get(symbol)
        if b is None:
            money = Money.of(self.spec_for(symbol))
            b = SymbolBook(symbol, money, ExitRules(self.settings, money))
            dca = self.settings.dca
            if dca is not None and dca.unit == DcaUnit.atr:
                b.atr_period = dca.atr_period
                if self.shared_bars is not None:
                    b.bars, b.own_bars = self.shared_bars(symbol), False
                else:
                    b.bars = MinuteBars(dca.atr_period)
            self.books[symbol] = b
        return b

    def open_symbols(self) -> list[str]:
        return [s for s, b in self.books.items() if b.pos is not None]

    # -- events ---------------------------------------------------------------------------------

    def on_tick(self, symbol: str, ts: float, price: float) -> Outcome:
        b = self.book(symbol)
        return self.on_tick_ticks(b, ts, to_ticks(price, b.money.tick_size))

    def on_tick_ticks(self, b: SymbolBook, ts: float, p: int) -> Outcome:
        """A tick already converted to integer ticks (the host's fast path)."""
        b.last_tick = p
        if b.bars is not None and b.own_bars:
            b.bars.add(ts, p)
        out = Outcome()
        if b.pos is None or b.exits is None:
            return out
        pos = b.pos
        res = b.rules.on_tick(pos, b.exits, p, ts)
        for d in res.dca:
            out.fills.append(self._fill(b, pos.side, d.qty, d.price, ts, "dca", closing=False))
        for t in res.trades:
            out.trades.append(t)
            out.fills.append(self._fill(b, t.side, t.quantity, t.exit_price, ts, "exit", True))
        if pos.qty == 0:
            b.pos = b.exits = None
        return out

    def on_signal(
        self,
        symbol: str,
        ts: float,
        kind: SignalKind,
        price: float | None = None,
        quantity: int | None = None,
        target: int | None = None,
        entry_sides: frozenset[int] = frozenset((LONG, SHORT)),
    ) -> Outcome:
        """Apply a signal. ``entry_sides`` limits which sides may be opened or added to (filters:
        direction, time windows, cooldown...); exits always go through. When a signal does
        nothing because its entry was not allowed, the status is ``blocked``."""
        b = self.book(symbol)
        p = to_ticks(price, b.money.tick_size) if price is not None else b.last_tick
        if p is None:
            return Outcome("no_price")
        if b.pos is not None:
            b.pos.observe(p, b.money)  # the fill price is a price the position saw
        current = 0 if b.pos is None else b.pos.side * b.pos.qty
        plan = plan_signal(current, kind, self.settings.sizing, quantity, target, entry_sides)
        out = Outcome(plan.status)
        for leg in plan.legs:
            if leg.action == "open":
                self._open(b, leg.side, leg.qty, p, ts, out)
            elif leg.action == "add":
                self._add(b, leg.qty, p, ts, leg.reason, out)
            else:
                self._close(b, leg.qty, p, ts, leg.reason, out)
        return out

    # -- transitions ----------------------------------------------------------------------------

    def _open(self, b: SymbolBook, side: int, qty: int, p: int, ts: float, out: Outcome) -> None:
        b.pos = Position.open(b.symbol, side, qty, p, ts)
        b.exits = b.rules.start(b.pos, b.bars.atr(b.atr_period) if b.bars is not None else None)
        out.fills.append(self._fill(b, side, qty, p, ts, "entry", closing=False))

    def _add(self, b: SymbolBook, qty: int, p: int, ts: float, kind: str, out: Outcome) -> None:
        assert b.pos is not None and b.exits is not None
        b.pos.add(qty, p)
        b.rules.recompute(b.pos, b.exits)
        out.fills.append(self._fill(b, b.pos.side, qty, p, ts, kind, closing=False))

    def _close(self, b: SymbolBook, qty: int, p: int, ts: float, reason: str, out: Outcome) -> None:
        assert b.pos is not None
        trade = b.pos.close(qty, p, ts, reason, b.money)
        out.trades.append(trade)
        out.fills.append(self._fill(b, trade.side, qty, trade.exit_price, ts, "exit", True))
        if b.pos.qty == 0:
            b.pos = b.exits = None

    @staticmethod
    def _fill(
        b: SymbolBook,
        side: int,
        qty: int,
        price: Fraction | int,
        ts: float,
        kind: str,
        closing: bool,
    ) -> FillEvent:
        px = price if isinstance(price, Fraction) else b.money.price(price)
        return FillEvent(b.symbol, order_side(side, closing=closing), qty, px, ts, kind)

    # -- views and persistence ------------------------------------------------------------------

    def view(self, symbol: str) -> dict[str, Any] | None:
        """Live state of the open position in ``symbol`` for the API (floats, price units)."""
        b = self.books.get(symbol)
        if b is None or b.pos is None or b.exits is None:
            return None
        pos, ex, m = b.pos, b.exits, b.money
        last = b.last_tick if b.last_tick is not None else pos.last_price
        stop, stop_kind = ex.effective_stop(pos.side)
        return {
            "symbol": symbol,
            "side": "long" if pos.side == LONG else "short",
            "quantity": pos.qty,
            "avg_price": m.price_float(pos.avg),
            "opened_at": pos.opened_ts,
            "last_price": m.price_float(last),
            "unrealised": float(pos.unrealised(last, m)),
            "worst_unrealised": float(pos.worst_unrealised),
            "best_unrealised": float(pos.best_unrealised),
            "mfe_points": m.price_float(pos.best_move),
            "mae_points": m.price_float(pos.worst_move),
            "stop_price": None if stop is None else m.price_float(stop),
            "stop_kind": stop_kind,
            "target_prices": [None if lv is None else m.price_float(lv) for lv in ex.tp_levels],
            "dca_levels_fired": ex.dca_fired,
        }

    def snapshot(self, symbol: str) -> dict[str, Any]:
        """Everything needed to rebuild this symbol's state after a restart (JSON-safe)."""
        b = self.book(symbol)
        bars = None
        if b.bars is not None and b.own_bars:
            bars = {
                "bucket": b.bars.bucket,
                "high": b.bars.high,
                "low": b.bars.low,
                "close": b.bars.close,
                "prev_close": b.bars.prev_close,
                "ranges": list(b.bars.ranges),
            }
        snap = {
            "last_tick": b.last_tick,
            "pos": _encode(b.pos),
            "exits": _encode(b.exits),
            "bars": bars,
        }
        if self.marks is not None:
            snap["feed"] = self.marks.of(symbol)
        return snap

    def restore(self, symbol: str, snap: dict[str, Any]) -> None:
        b = self.book(symbol)
        b.last_tick = snap.get("last_tick")
        b.pos = _decode(Position, snap.get("pos"))
        b.exits = _decode(ExitState, snap.get("exits"))
        bars = snap.get("bars")
        if b.bars is not None and b.own_bars and bars:
            b.bars.bucket, b.bars.high, b.bars.low = bars["bucket"], bars["high"], bars["low"]
            b.bars.close, b.bars.prev_close = bars["close"], bars["prev_close"]
            b.bars.ranges.extend(bars["ranges"])


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _encode(obj: Any) -> dict[str, Any] | None:
    """A dataclass as JSON-safe values (Fractions as strings). Field names are looked up once
    per class: ``dataclasses.fields`` rebuilt them on every call, for every position row."""
    if obj is None:
        return None
    names = _FIELD_NAMES.get(type(obj))
    if names is None:
        names = _FIELD_NAMES[type(obj)] = tuple(f.name for f in fields(obj))
    out: dict[str, Any] = {}
    for name in names:
        v = getattr(obj, name)
        t = type(v)
        out[name] = str(v) if t is Fraction else (list(v) if t is list else v)
    return out


def _decode(cls: type[T], data: dict[str, Any] | None) -> T | None:
    if data is None:
        return None
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name not in data:
            continue
        v = data[f.name]
        if v is not None and ("Fraction" in str(f.type) or "Exact" in str(f.type)):
            v = whole(Fraction(v))
        kwargs[f.name] = v
    return cls(**kwargs)
