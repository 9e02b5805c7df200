"""A live pair's state in one contract, the trader settings it runs with, what one event did,
and the book's view and snapshot forms. Plain data for :mod:`.live`; no decisions here."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from actors.broker.base import OrderRequest
from actors.recorder.book import LONG, SHORT, Money, Position, Trade, whole
from actors.recorder.exits import ExitRules, ExitState
from actors.recorder.levels import exact, round_half_up
from actors.recorder.live_orders import REDUCING_ROLES, Backoff, LiveOrder, Request
from actors.recorder.pair import FillEvent, _decode, _encode


def _in_flight(o: LiveOrder) -> bool:
    """Whether ``o``'s pending contracts are a change under way. A resting protective stop is
    not (it may never trigger); a stop that filled but whose fills are not booked yet is."""
    if o.role == "correct":  # changes the broker, not the book
        return False
    return o.role != "stop" or o.terminal


IDLE, EXIT_PENDING, EXIT_WORKING, CONFIRM_FLAT = (
    "IDLE",
    "EXIT_PENDING",
    "EXIT_WORKING",
    "CONFIRM_FLAT",
)


@dataclass(slots=True, frozen=True)
class Trader:
    """A trader's settings as the live pair needs them."""

    key: str  # pair key, e.g. "r12:t7"
    tag: str  # client order id prefix, e.g. "jt12t7"
    account: str  # broker-side account name
    multiplier: Fraction = Fraction(1)
    max_contracts: int | None = None
    close_only: bool = False
    exit_timeout_s: float = 10.0
    confirm_timeout_s: float = 5.0
    cancel_retry_s: float = 3.0  # a cancel not answered this long (lost on the way) goes again
    stop_grace_s: float = 2.0
    reconcile: str = "alert"  # policy for drift: alert | adopt | correct
    stop_move_s: float = 1.0  # at most one stop move per this long (rate budget), qty changes aside

    def scale(self, qty: int) -> int:
        """A recorder quantity in this trader's contracts: × multiplier, half up, at least 1."""
        return max(1, round_half_up(qty * self.multiplier))


@dataclass(slots=True)
class LiveBook:
    """A live pair's state in one contract."""

    symbol: str
    money: Money
    rules: ExitRules
    pos: Position | None = None
    exits: ExitState | None = None
    last_tick: int | None = None
    phase: str = IDLE
    phase_ts: float = 0.0
    orders: dict[str, LiveOrder] = field(default_factory=dict)
    want_exit: list[Request] = field(default_factory=list)
    want_entry: list[Request] = field(default_factory=list)
    stop_cl: str | None = None
    stop_moved_ts: float = 0.0
    stop_wait_since: float | None = None
    broker_net: int | None = None
    stop_hold_since: float | None = None  # our stop ended without our asking: wait for news
    bounds: tuple[int, int] | None = None  # prices strictly inside trigger nothing (cached)
    seen: tuple[int, int] | None = None  # lowest/highest price since the last fill
    external: int = 0  # broker contracts declared not ours (opened by hand)
    drift: int = 0  # broker minus expected, as the reconciler last saw it
    broker_price: float | None = None
    backoff: Backoff = field(default_factory=Backoff)
    seen_fills: list[str] = field(default_factory=list)
    #: (position, when the entry order that opened it was sent): ticks the feed received
    #: before that instant printed before the fill, and do not count for that position
    #: (LiveTicks.on_batch). Runtime only: a restored pair counts every tick, as before.
    fresh: tuple[Position, float] | None = None

    @property
    def net(self) -> int:
        return 0 if self.pos is None else self.pos.side * self.pos.qty

    def active_stop(self) -> LiveOrder | None:
        o = self.orders.get(self.stop_cl) if self.stop_cl else None
        return o if o is not None and not o.terminal else None


@dataclass(slots=True)
class LiveOutcome:
    """What one event did: orders to send/cancel, and rows to persist."""

    status: str = "applied"
    place: list[OrderRequest] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    fills: list[FillEvent] = field(default_factory=list)
    trades: list[Trade] = field(default_factory=list)
    orders: dict[str, LiveOrder] = field(default_factory=dict)  # changed orders, by cl
    rejections: list[tuple[str, str]] = field(default_factory=list)
    symbols: set[str] = field(default_factory=set)  # contracts whose state changed

    @property
    def acts(self) -> bool:
        return bool(self.place or self.cancel)


def book_view(b: LiveBook) -> dict[str, Any] | None:
    """Live state of the book's position for the API (floats, price units)."""
    if b.pos is None:
        return None
    pos, m = b.pos, b.money
    last = b.last_tick if b.last_tick is not None else pos.last_price
    stop = b.active_stop()
    return {
        "symbol": b.symbol,
        "side": "long" if pos.side == LONG else "short",
        "quantity": pos.qty,
        "avg_price": m.price_float(pos.avg),
        "opened_at": pos.opened_ts,
        "last_price": m.price_float(last),
        "unrealised": float(pos.unrealised(last, m)),
        "worst_unrealised": float(pos.worst_unrealised),
        "best_unrealised": float(pos.best_unrealised),
        "phase": b.phase,
        "broker_net": b.broker_net,
        "stop_price": None if stop is None or stop.stop is None else m.price_float(stop.stop),
        "working_orders": len(b.orders),
        "drift": b.drift,
        "external": b.external,
    }


def book_snapshot(b: LiveBook) -> dict[str, Any]:
    """Everything needed to rebuild the book after a restart (JSON-safe)."""
    return {
        "last_tick": b.last_tick,
        "pos": _encode(b.pos),
        "exits": _encode(b.exits),
        "phase": b.phase,
        "phase_ts": b.phase_ts,
        "orders": [o.row() for o in b.orders.values()],
        "want_exit": [r.row() for r in b.want_exit],
        "want_entry": [r.row() for r in b.want_entry],
        "stop_cl": b.stop_cl,
        "seen_fills": b.seen_fills,
        "external": b.external,
    }


def book_restore(b: LiveBook, snap: dict[str, Any]) -> None:
    b.last_tick = snap.get("last_tick")
    b.pos = _decode(Position, snap.get("pos"))
    b.exits = _decode(ExitState, snap.get("exits"))
    b.phase, b.phase_ts = snap.get("phase", IDLE), float(snap.get("phase_ts", 0.0))
    b.orders = {o["cl"]: LiveOrder.of(o) for o in snap.get("orders", [])}
    b.want_exit = [Request(**r) for r in snap.get("want_exit", [])]
    b.want_entry = [Request(**r) for r in snap.get("want_entry", [])]
    b.stop_cl = snap.get("stop_cl")
    b.seen_fills = list(snap.get("seen_fills", []))
    b.external = int(snap.get("external", 0))


def unplan_entries(b: LiveBook, side: int, qty: int) -> int:
    """A close first takes back entries decided but not sent yet (newest first); returns
    what is left to close at the broker."""
    for r in reversed(list(b.want_entry)):
        if qty == 0:
            break
        if r.side == side:
            take = min(qty, r.qty)
            r.qty -= take
            qty -= take
            if r.qty == 0:
                b.want_entry.remove(r)
    return qty


def entries_in_flight(b: LiveBook) -> bool:
    """An entry, add or DCA order not settled yet: the booked position is about to change
    in a way exits and stops must not guess at, so they wait (market orders settle fast)."""
    return any(o.role not in REDUCING_ROLES and not o.done for o in b.orders.values())


def book_fill(
    b: LiveBook,
    side: str,
    qty: int,
    price: float,
    ts: float,
    kind: str,
    reason: str,
    out: LiveOutcome,
) -> None:
    b.bounds = b.seen = None
    px = exact(price) / b.money.tick_size  # exact ticks (a broker may fill off the grid)
    p = round_half_up(px)
    sign = LONG if side == "buy" else SHORT
    if b.pos is not None and b.pos.side != sign:
        b.pos.observe(p, b.money)
        closed = min(qty, b.pos.qty)
        trade = b.pos.close(closed, px, ts, reason, b.money)
        out.trades.append(trade)
        out.fills.append(FillEvent(b.symbol, side, closed, b.money.price(px), ts, "exit"))
        if b.pos.qty == 0:
            b.pos = b.exits = None
            b.stop_wait_since = None
        qty -= closed
        kind = "entry"  # what is left (a flip) opens a new position
    if qty == 0:
        return
    if b.pos is None:
        b.pos = Position.open(b.symbol, sign, qty, p, ts)
        b.pos.avg = whole(px)
        b.exits = b.rules.start(b.pos, None)
        kind = "entry"
    else:
        assert b.exits is not None
        b.pos.observe(p, b.money)
        b.pos.add(qty, px)  # type: ignore[arg-type]  (exact average, Fraction price)
        b.rules.recompute(b.pos, b.exits)
    out.fills.append(FillEvent(b.symbol, side, qty, b.money.price(px), ts, kind))
