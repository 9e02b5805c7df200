"""Webhook ingest helpers: dedupe keys, symbol resolution, the intent handed to a host.

Kept apart from the route so the rules are testable without HTTP.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import sqlalchemy as sa

from actors.instruments import normalize
from actors.recorder.signals import Intent, ParsedSignal
from actors.store import Recorder, Store
from api.dispatch import Batcher

#: TradingView's published webhook sender addresses (reference/tradingview.md §1.1).
TRADINGVIEW_IPS = frozenset({"52.89.214.238", "34.212.75.30", "54.218.53.128", "52.32.178.7"})


def dedupe_key(raw: bytes, sig: ParsedSignal | None) -> str:
    """An explicit id (with the alert time, since Pine's ``{{strategy.order.id}}`` repeats on
    every entry), else a hash of the body plus its time. TradingView resends the *same* body,
    so either catches its retries."""
    when = sig.time.isoformat() if sig is not None and sig.time is not None else ""
    if sig is not None and sig.dedupe_id:
        return f"id:{sig.dedupe_id}:{when}"
    return "h:" + hashlib.sha256(raw + b"\x1f" + when.encode()).hexdigest()


def resolve_symbol(sig: ParsedSignal, default: str, now: float) -> str:
    """The concrete contract a signal trades (``MNQ1!`` → ``MNQZ6``); raises UnknownSymbol."""
    return _normalize(sig.ticker or default, datetime.fromtimestamp(now, UTC).date())


@lru_cache(maxsize=4096)
def _normalize(symbol: str, on: date) -> str:
    # A pure function of (symbol, day), with calendar arithmetic behind it; an unknown symbol
    # raises, and exceptions are not cached.
    return normalize(symbol, on)


def intent_payload(
    sig: ParsedSignal, intent: Intent, symbol: str, received_at: float
) -> dict[str, Any]:
    """What a host needs to apply a signal (plain data: it crosses a process boundary)."""
    return {
        "kind": intent.kind,
        "quantity": intent.quantity,
        "target": intent.target,
        "price": sig.price,
        "symbol": symbol,
        "signal_time": sig.time.isoformat() if sig.time else None,
        "received_at": received_at,
    }


def parsed_json(sig: ParsedSignal) -> dict[str, Any]:
    """The parsed signal as JSON-ready data (a shallow copy: ``asdict`` deep-copies every
    field, measurable on the webhook hot path)."""
    d = {name: getattr(sig, name) for name in _SIGNAL_FIELDS}
    d["fields"] = dict(sig.fields)
    d["time"] = sig.time.isoformat() if sig.time else None
    return d


_SIGNAL_FIELDS = tuple(f.name for f in fields(ParsedSignal))


def allowed_sender(addr: str | None) -> bool:
    if addr is None:
        return False
    try:
        return str(ipaddress.ip_address(addr)) in TRADINGVIEW_IPS
    except ValueError:
        return False


class TokenBucket:
    """Per-token rate limit: ``rate`` requests per minute with a burst of the same size."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.state: dict[str, tuple[float, float]] = {}

    def allow(self, key: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self.state.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self.state[key] = (tokens, now)
            return False
        self.state[key] = (tokens - 1, now)
        return True


@dataclass(frozen=True, slots=True)
class WebhookRecorder:
    """What the webhook needs of a recorder (cached per token)."""

    id: int
    symbol: str
    token: str


_RECORDERS = Recorder.__table__  # type: ignore[attr-defined]
_BY_TOKENS = sa.select(_RECORDERS.c.id, _RECORDERS.c.symbol, _RECORDERS.c.token).where(
    _RECORDERS.c.token.in_(sa.bindparam("tokens", expanding=True)),
    _RECORDERS.c.deleted.is_(False),
)


class TokenLookup(Batcher[str, WebhookRecorder | None]):
    """Live recorders by webhook token, for the misses of the context's token cache.

    Tokens missed while a query runs go together in the next one (one indexed ``IN`` query of
    three columns, no ORM objects), on a thread of its own: not the shared thread pool, whose
    hop cost more than the query. The token is compared in constant time after the indexed
    match, as before.
    """

    def __init__(self, store: Store) -> None:
        super().__init__(max_batch=256)
        self.store = store
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="token-lookup")

    def get(self, token: str) -> asyncio.Future[WebhookRecorder | None]:
        return self.enqueue(token)

    async def call_batch(self, tokens: list[str], attempt: int = 0) -> list[WebhookRecorder | None]:
        return await asyncio.get_running_loop().run_in_executor(self.executor, self._query, tokens)

    def _query(self, tokens: list[str]) -> list[WebhookRecorder | None]:
        with self.store.engine.connect() as conn:
            rows = conn.execute(_BY_TOKENS, {"tokens": sorted(set(tokens))}).all()
        found = {row.token: WebhookRecorder(row.id, row.symbol, row.token) for row in rows}
        out: list[WebhookRecorder | None] = []
        for token in tokens:
            rec = found.get(token)
            ok = rec is not None and hmac.compare_digest(rec.token.encode(), token.encode())
            out.append(rec if ok else None)
        return out

    def close(self) -> None:
        self.executor.shutdown(wait=True)
