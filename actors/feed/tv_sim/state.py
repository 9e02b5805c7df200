"""Simulator state shared by the quote socket and the scanner: config, faults, counters, quotes.

The market holds one full quote per TradingView symbol (``lp``, ``lp_time``, ``bid``, ...). What a
connection is sent is computed from it per connection (its fields, its ``update_mode``), and only
the fields that changed since the last send go out, as the real server's ``qsd`` deltas do
(reference ``tradingview.md`` §3.4).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from actors.feed.sources.base import Tick, snap_price
from actors.instruments import UnknownSymbol, spec_for

__all__ = ["DELAYED_MODE", "Faults", "SimConfig", "SimMarket", "SimStats", "symbol_name"]

DELAYED_MODE = "delayed_streaming_900"
"""§3.4: the 15-minute delay label. Which delay CME futures really get anonymously is
UNCONFIRMED (10 min is typical); the simulator only labels, it does not hold prices back."""


@dataclass
class SimConfig:
    """How the simulator listens and behaves. Port 0 picks a free port."""

    host: str = "127.0.0.1"
    ws_port: int = 0
    http_port: int | None = 0  # None: no scanner/control HTTP server
    ws_path: str = "/socket.io/websocket"
    heartbeat_s: float = 10.0  # §3.2: ~10 s commonly observed, UNCONFIRMED
    accepted_tokens: frozenset[str] = frozenset()  # tokens that get "streaming"
    # Logged-in browser sessions: sessionid -> (sessionid_sign, auth token). ``GET /`` with
    # both cookies embeds the token as ``"auth_token":"..."`` (§3.5); the token is accepted.
    cookie_sessions: dict[str, tuple[str, str]] = field(default_factory=dict)
    require_origin: str | None = None  # reject other Origins with 403 (enforcement UNCONFIRMED)
    delayed_mode: str = DELAYED_MODE
    # What the real server does with a token it does not honour is UNCONFIRMED: by default the
    # data is delayed; with this switch the token is refused (``protocol_error``, then close).
    refuse_bad_tokens: bool = False

    def token_accepted(self, token: str) -> bool:
        """Real-time for a configured token or the token of a live cookie session."""
        return token in self.accepted_tokens or any(
            t == token for _, t in self.cookie_sessions.values()
        )


@dataclass
class Faults:
    """Switches that persist (per-connection one-shot faults are methods on ``TvSim``)."""

    rejected: set[str] = field(default_factory=set)  # answered no_such_symbol even if listed
    scanner_down: bool = False  # the scanner answers 503
    ws_down: bool = False  # the quote socket refuses new connections (HTTP 503 on upgrade)


@dataclass
class SimStats:
    """What the simulator observed, for tests and ``GET /sim/state``."""

    connections: int = 0
    heartbeats_sent: int = 0
    heartbeat_echoes: int = 0
    bad_echoes: int = 0
    client_errors: int = 0
    qsd_sent: int = 0
    scans: int = 0
    refused: int = 0  # websocket upgrades refused while ws_down
    pages: int = 0  # GET / (token pages) served
    origins: list[str | None] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)  # client methods in arrival order

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in self.__dict__.items()}


def symbol_name(key: str) -> str | None:
    """The symbol a ``quote_add_symbols`` entry names: plain ``EXCH:SYM`` or ``={"symbol": ...}``
    (§3.3); ``None`` when a ``=`` spec does not parse or has no symbol."""
    if not key.startswith("="):
        return key
    try:
        spec = json.loads(key[1:])
    except ValueError:
        return None
    sym = spec.get("symbol") if isinstance(spec, dict) else None
    return sym if isinstance(sym, str) else None


def _static_fields(symbol: str) -> dict[str, Any]:
    """Identity fields the real server sends once (§3.3 field list); generic for non-futures."""
    exchange, _, short = symbol.rpartition(":")
    out: dict[str, Any] = {"short_name": short, "exchange": exchange, "currency_code": "USD"}
    try:
        spec = spec_for(symbol)
    except UnknownSymbol:
        return out
    scale = 10**spec.decimals
    out.update(
        description=spec.name,
        type="futures",
        pricescale=scale,
        minmov=round(spec.tick_size * scale),
    )
    return out


def _tick_size(symbol: str) -> float | None:
    try:
        return spec_for(symbol).tick_size
    except UnknownSymbol:
        return None


def _num(x: float) -> float | int:
    """Integral values as int (``lp_time`` is integer epoch seconds on the wire, §3.4)."""
    return int(x) if float(x).is_integer() else x


class SimMarket:
    """Current full quote per listed symbol; mutated by ticks, read per connection."""

    def __init__(self) -> None:
        self.quotes: dict[str, dict[str, Any]] = {}

    def list_symbol(self, symbol: str, price: float | None = None, ts: float | None = None) -> None:
        """Make ``symbol`` known (so it is not ``no_such_symbol``), optionally with a first price."""
        if symbol not in self.quotes:
            self.quotes[symbol] = _static_fields(symbol)
        if price is not None:
            self.apply_tick(Tick(symbol, 0.0 if ts is None else ts, price))

    def known(self, symbol: str) -> bool:
        return symbol in self.quotes

    def apply_tick(self, tick: Tick) -> dict[str, Any]:
        """One trade print: updates lp/lp_time, change vs the first price seen (``prev_close``),
        the session high/low, volume (+1 per print) and a one-tick bid/ask around the price."""
        self.list_symbol(tick.symbol)
        q = self.quotes[tick.symbol]
        price = tick.price
        prev = q.setdefault("prev_close_price", price)
        size = _tick_size(tick.symbol)
        ch = price - prev if size is None else snap_price(price - prev, size)
        q.update(
            lp=price,
            lp_time=_num(tick.ts),
            ch=ch,
            chp=round(ch / prev * 100, 2) if prev else 0.0,
            high_price=max(q.get("high_price", price), price),
            low_price=min(q.get("low_price", price), price),
            volume=q.get("volume", 0) + 1,
        )
        if size is not None:
            q.update(bid=snap_price(price - size, size), ask=snap_price(price + size, size))
        return q

    def apply_fields(self, symbol: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Arbitrary field changes (e.g. a bid/ask move without a trade)."""
        self.list_symbol(symbol)
        self.quotes[symbol].update(fields)
        return self.quotes[symbol]

    def view(self, symbol: str, fields: list[str] | None, update_mode: str) -> dict[str, Any]:
        """What one quote session sees: its requested fields (all when none were set; UNCONFIRMED
        what the real server defaults to), with the connection's ``update_mode``."""
        data = dict(self.quotes.get(symbol, {}))
        data["update_mode"] = update_mode
        if fields is None:
            return data
        return {k: data[k] for k in fields if k in data}
