"""The parser's results: :class:`ParsedSignal` (what the body said) and :class:`Intent` (what
the position book is asked to do), plus the literal types both use.

Plain frozen dataclasses, so they are hashable and cross Ray actor boundaries by pickling.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

Action = Literal["buy", "sell", "close", "add"]
MarketPosition = Literal["long", "short", "flat"]
IntentKind = Literal["buy", "sell", "close", "add", "target"]


@dataclass(frozen=True, slots=True)
class ParsedSignal:
    """One webhook body, parsed and validated (nothing about the recorder applied yet)."""

    #: None only when the market position (or the strategy's target) alone says what to do.
    action: Action | None
    #: As sent, stripped; symbol normalisation happens elsewhere.
    ticker: str
    price: float | None
    #: Contracts from quantity / qty / contracts / strategy.order.contracts.
    quantity: int | None
    #: From market_position / strategy.market_position, else sentiment.
    market_position: MarketPosition | None
    prev_market_position: MarketPosition | None
    #: SIGNED strategy position after the order ({{strategy.position_size}}).
    position_size: float | None
    #: Absolute position size after the order ({{strategy.market_position_size}}).
    market_position_size: float | None
    #: Raw override number as sent (price level or distance; ``fields`` has the full text that
    #: says which). 0 means "no override" (PickMyTrade templates send ``"tp": 0``).
    take_profit: float | None
    stop_loss: float | None
    #: From timenow / time / date; UTC-aware.
    time: datetime | None
    #: Explicit idempotency key: id / sourceId / alertId.
    dedupe_id: str | None
    #: Recorder name given in the body (informational; the URL token decides the recorder).
    recorder: str | None
    comment: str | None
    #: Every parsed key (lower-cased) → raw value as text; secrets replaced by ``***``.
    #: Excluded from the hash so the frozen dataclass stays hashable.
    fields: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Intent:
    """What the signal asks the position book to do.

    ``quantity`` is set (or None = recorder default sizing) for buy/sell/add; ``target`` is the
    signed number of contracts the position must end at for ``kind == "target"``. ``close``
    always means the whole position.
    """

    kind: IntentKind
    quantity: int | None = None
    target: int | None = None
