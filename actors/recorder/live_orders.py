"""The orders of one live pair in one contract: what was asked, what the broker said, and how
much of it is still to come.

Pure data and arithmetic, shared by :mod:`.live` (which decides) and the host (which persists
and sends). The central quantity is :meth:`LiveOrder.pending`: contracts this order may still
add to or remove from the position. It counts fills as they are *received*, not as an order
status announces them, so a ``filled`` status that overtakes its fill event (Tradovate's event
order after a fill is UNCONFIRMED) never makes the pair believe a position is gone before the
fill that closes it was booked; that gap is exactly where a second close used to slip through.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from actors.broker.base import TERMINAL_STATUSES, Priority, signed_qty

#: Roles of a live order. ``stop`` is the protective stop resting at the broker; ``exit`` a
#: market order closing contracts; ``entry``/``add``/``dca`` market orders opening them.
REDUCING_ROLES = frozenset({"exit", "stop"})


def priority_of(role: str) -> Priority:
    """Broker queue priority of an order by role: exits, then stops, then everything else."""
    return {"exit": Priority.EXIT, "stop": Priority.PROTECT}.get(role, Priority.ENTRY)


@dataclass(slots=True)
class LiveOrder:
    """One order a live pair sent (or is about to send). ``stop`` is in ticks (stop orders)."""

    cl: str
    role: str
    side: str
    qty: int
    reason: str
    placed_ts: float
    stop: int | None = None
    status: str = "pending"
    filled: int = 0  # contracts booked from fill events
    broker_filled: int = 0  # contracts the broker's order state says filled
    broker_order_id: str | None = None
    broker_reason: str | None = None
    cancel_sent: bool = False
    cancel_ts: float = 0.0  # when the last cancel went out (0: restored, or never)
    signal_id: int | None = None
    symbol: str = ""
    sent_ts: float = 0.0  # when the desk handed it to the broker actor (0: not yet)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def pending(self) -> int:
        """Contracts still to be booked: the unfilled rest while the order lives; after it
        ended, fills the broker reported as done but whose fill events are not in yet."""
        if not self.terminal:
            return max(0, self.qty - self.filled)
        return max(0, self.broker_filled - self.filled)

    @property
    def done(self) -> bool:
        """Ended at the broker and every fill it made is booked: nothing more can happen."""
        return self.terminal and self.filled >= self.broker_filled

    @property
    def signed_pending(self) -> int:
        return signed_qty(self.side, self.pending)

    def row(self) -> dict[str, Any]:
        # fields are plain values: no deep copy (dataclasses.asdict was a hot spot)
        return {name: getattr(self, name) for name in _ORDER_FIELDS}

    @classmethod
    def of(cls, data: dict[str, Any]) -> LiveOrder:
        return cls(**data)


_ORDER_FIELDS = tuple(f.name for f in fields(LiveOrder))


@dataclass(slots=True)
class Request:
    """An order decided but not sent yet. ``side`` is the position side (LONG/SHORT) it opens
    or closes; ``origin`` makes the client order id (signal and leg, or a tick-exit number);
    ``attempt`` counts re-sends after a rejection or a timed-out cancel."""

    role: str  # exit | entry | add | dca
    side: int
    qty: int
    reason: str
    origin: str
    attempt: int = 0
    signal_id: int | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Backoff:
    """Retry timing after a broker refusal: 1 s, 2 s, 4 s ... capped at ``cap_s``."""

    failures: int = 0
    retry_at: float = 0.0
    cap_s: float = 30.0
    history: list[str] = field(default_factory=list)

    def fail(self, now: float, why: str) -> None:
        self.failures += 1
        self.retry_at = now + min(self.cap_s, 2.0 ** (self.failures - 1))
        self.history = [*self.history[-4:], why]

    def ok(self) -> None:
        self.failures = 0
        self.retry_at = 0.0

    def ready(self, now: float) -> bool:
        return now >= self.retry_at
