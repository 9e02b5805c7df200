"""The broker interface every adapter speaks (paper, Tradovate, the next one).

Pure module: value types and a :class:`Broker` protocol, no I/O, no Ray.

Vocabulary
----------
* :class:`OrderRequest` is what a pair asks for. Its ``cl_ord_id`` is deterministic (pair, signal,
  leg), so it is the idempotency key end to end: the broker actor and every adapter must treat a
  second request with a known ``cl_ord_id`` as a question about the first one, never as a new
  order. Ray calls to the broker actor are at-most-once; doubt is resolved by asking, not by
  re-sending.
* :class:`OrderState` is the broker's view of one order; :class:`BrokerFill` one execution;
  :class:`BrokerPosition` the netted position of one (account, symbol).
* :class:`Priority` orders the broker actor's queue: kill switch, then exits, then protective
  stops, then entries.

Events
------
An adapter reports asynchronous changes (fills, order status changes, position changes) through
one synchronous callback registered with :meth:`Broker.set_listener`, called once per event, in
the order the adapter learnt them. A callback was chosen over an async iterator because both the
paper broker (events produced inside ``place``/``on_price``) and the Tradovate adapter (one
websocket reader translating ``props`` events) already run a loop of their own: each just calls
the listener, with no extra queue, task or back-pressure protocol to get wrong. The listener must
not block; the broker actor's listener only updates memory and schedules a flush.

Events are :data:`BrokerEvent` values: an :class:`OrderState` (status change), a
:class:`BrokerFill` or a :class:`BrokerPosition`. :func:`event_to_dict` gives the plain-dict form
sent to other actors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from enum import IntEnum
from typing import Any, Literal, Protocol, get_args, runtime_checkable

__all__ = [
    "ACTIVE_STATUSES",
    "TERMINAL_STATUSES",
    "UNKNOWN_AT_BROKER",
    "Broker",
    "BrokerEvent",
    "BrokerFill",
    "BrokerPosition",
    "EventListener",
    "OrderRequest",
    "OrderState",
    "OrderStatus",
    "OrderType",
    "Priority",
    "Side",
    "UnknownOrder",
    "event_to_dict",
    "opposite",
    "signed_qty",
]

Side = Literal["buy", "sell"]
OrderType = Literal["market", "stop"]
OrderStatus = Literal["pending", "working", "filled", "rejected", "cancelled"]

#: Statuses after which an order can never change again (and never fill again).
TERMINAL_STATUSES: frozenset[str] = frozenset({"filled", "rejected", "cancelled"})
#: Statuses of an order that may still fill (what a kill switch must cancel).
ACTIVE_STATUSES: frozenset[str] = frozenset({"pending", "working"})

_SIDES = frozenset(get_args(Side))
_ORDER_TYPES = frozenset(get_args(OrderType))
_STATUSES = frozenset(get_args(OrderStatus))


class Priority(IntEnum):
    """Queue priority of a broker call; lower values are served first.

    Exits overtake protective stops because an exit makes the stop unnecessary (and the pair
    cancels the stop first anyway); stops overtake entries because an open position without its
    stop is the riskier state.
    """

    KILL = 0
    EXIT = 1
    PROTECT = 2
    ENTRY = 3


def signed_qty(side: str, qty: int) -> int:
    """``+qty`` for a buy, ``-qty`` for a sell: the change a fill makes to ``net_pos``."""
    if side == "buy":
        return qty
    if side == "sell":
        return -qty
    raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")


def opposite(side: str) -> Side:
    """The side that closes a position opened by ``side`` (closing a long sells)."""
    if side == "buy":
        return "sell"
    if side == "sell":
        return "buy"
    raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")


#: Reason of an order settled as never placed: a cancel found that the broker never had it
#: (the broker actor then refuses its id, see ``BrokerActor.cancel``).
UNKNOWN_AT_BROKER = "unknown_at_broker"


class UnknownOrder(KeyError):
    """A ``cl_ord_id`` this broker has never seen (cancel of an order that does not exist)."""

    def __init__(self, cl_ord_id: str) -> None:
        super().__init__(cl_ord_id)
        self.cl_ord_id = cl_ord_id

    def __reduce__(self) -> tuple[type[UnknownOrder], tuple[str]]:
        return (type(self), (self.cl_ord_id,))


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """One order as a pair asks for it.

    ``qty`` is always positive; the direction is ``side``. ``stop_price`` is required for, and
    only allowed on, stop orders (a stop becomes a market order once triggered). ``pair_key``
    lets the broker actor route fills back to the pair; ``created_ts`` is the requester's clock,
    kept for latency accounting only. Invalid requests raise ``ValueError`` at construction: they
    are programming errors, not broker rejections.
    """

    cl_ord_id: str
    account: str
    symbol: str
    side: Side
    qty: int
    order_type: OrderType = "market"
    stop_price: float | None = None
    priority: Priority = Priority.ENTRY
    pair_key: str = ""
    created_ts: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.cl_ord_id, str) or not self.cl_ord_id:
            raise ValueError("cl_ord_id must be a non-empty string")
        if len(self.cl_ord_id) > 64:
            # Tradovate's clOrdId is at most 64 characters; fail here, not at the broker.
            raise ValueError(f"cl_ord_id longer than 64 characters: {self.cl_ord_id!r}")
        if not self.account or not isinstance(self.account, str):
            raise ValueError("account must be a non-empty string")
        if not self.symbol or not isinstance(self.symbol, str):
            raise ValueError("symbol must be a non-empty string")
        if self.side not in _SIDES:
            raise ValueError(f"side must be 'buy' or 'sell', got {self.side!r}")
        if not isinstance(self.qty, int) or isinstance(self.qty, bool) or self.qty <= 0:
            raise ValueError(f"qty must be a positive integer, got {self.qty!r}")
        if self.order_type not in _ORDER_TYPES:
            raise ValueError(f"order_type must be 'market' or 'stop', got {self.order_type!r}")
        if self.order_type == "stop":
            if self.stop_price is None or not math.isfinite(self.stop_price):
                raise ValueError("a stop order needs a finite stop_price")
        elif self.stop_price is not None:
            raise ValueError("stop_price is only allowed on stop orders")
        # Accept plain ints across process boundaries but store the enum.
        object.__setattr__(self, "priority", Priority(self.priority))

    @property
    def signed_qty(self) -> int:
        """Change this order makes to ``net_pos`` if it fills."""
        return signed_qty(self.side, self.qty)


@dataclass(frozen=True, slots=True)
class OrderState:
    """The broker's view of one order at one moment.

    ``broker_order_id`` is the broker's id (None until the broker assigned one);
    ``avg_fill_price`` is None until something filled; ``reason`` carries the broker's rejection
    or cancellation reason. Terminal statuses never change again. ``account`` and ``symbol``
    are carried so that an order this process did not place (one entered by hand at the broker,
    reported by the sync stream) can still be attributed, e.g. cancelled by a kill switch.
    """

    cl_ord_id: str
    status: OrderStatus = "pending"
    broker_order_id: str | None = None
    filled_qty: int = 0
    avg_fill_price: float | None = None
    reason: str | None = None
    ts: float = 0.0
    account: str = ""
    symbol: str = ""

    def __post_init__(self) -> None:
        if self.status not in _STATUSES:
            raise ValueError(f"unknown order status {self.status!r}")

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_active(self) -> bool:
        """Still able to fill: pending at the broker or resting there."""
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True)
class BrokerFill:
    """One execution. ``qty`` is positive; direction is ``side``.

    ``fill_id`` is the broker's execution id when it has one (Tradovate ``fill.id``); listeners
    may use it to drop a fill replayed after a websocket reconnect.
    """

    cl_ord_id: str
    broker_order_id: str | None
    account: str
    symbol: str
    side: Side
    qty: int
    price: float
    ts: float
    fill_id: str = ""

    @property
    def signed_qty(self) -> int:
        return signed_qty(self.side, self.qty)


@dataclass(frozen=True, slots=True)
class BrokerPosition:
    """Netted position of one (account, symbol): ``net_pos`` > 0 long, < 0 short.

    ``net_price`` is the average price of the open contracts (unchanged by a partial close);
    None when flat.
    """

    account: str
    symbol: str
    net_pos: int
    net_price: float | None

    @property
    def is_flat(self) -> bool:
        return self.net_pos == 0


BrokerEvent = OrderState | BrokerFill | BrokerPosition
EventListener = Callable[[BrokerEvent], None]

_EVENT_TYPES: dict[type, str] = {
    OrderState: "order",
    BrokerFill: "fill",
    BrokerPosition: "position",
}


#: Field names per event type: every field is a scalar, so a shallow copy is the whole event.
_EVENT_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls)) for cls in _EVENT_TYPES
}


def event_to_dict(event: BrokerEvent) -> dict[str, Any]:
    """Plain-dict form of an event, with ``type`` = ``order`` | ``fill`` | ``position``.

    Equal to ``dataclasses.asdict`` (the events hold scalars only), at a tenth of its cost: the
    paper broker publishes three events per order, one after the other within a burst of exits.
    """
    kind = _EVENT_TYPES.get(type(event))
    if kind is None:
        raise TypeError(f"not a broker event: {event!r}")
    out: dict[str, Any] = {"type": kind}
    for name in _EVENT_FIELDS[type(event)]:
        out[name] = getattr(event, name)
    return out


@runtime_checkable
class Broker(Protocol):
    """What the broker actor needs from an adapter.

    Contract for implementers:

    * ``place`` is idempotent by ``cl_ord_id``: a known id returns the known state and sends
      nothing. It returns the state right after the broker answered; later changes arrive as
      events. It raises only when the outcome is unknown (network failure after sending); a
      broker refusal is a ``rejected`` state with the broker's reason.
    * ``cancel`` of an order that is already terminal returns its terminal state unchanged (too
      late is not an error); of an unknown id raises :class:`UnknownOrder`.
    * ``positions`` returns the open (non-flat) positions of an account; ``orders`` every order
      of the account this session knows.
    * Every change is reported to the listener, in order, including those caused by ``place``
      and ``cancel`` themselves (before they return, when the adapter knows them by then).
    """

    kind: str

    def set_listener(self, listener: EventListener | None) -> None: ...

    async def place(self, order: OrderRequest) -> OrderState: ...

    async def cancel(self, cl_ord_id: str) -> OrderState: ...

    async def positions(self, account: str) -> list[BrokerPosition]: ...

    async def orders(self, account: str) -> list[OrderState]: ...
