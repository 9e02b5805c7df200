"""Tradovate market data: ``md/subscribeQuote`` over the Tradovate websocket layer.

Section numbers (§) refer to ``reference/tradovate.md``. The transport is the project's
:class:`~actors.broker.tradovate.ws.TradovateSocket` (framing §5.1–§5.2, authorize §5.3,
heartbeats §5.5, reconnect with back-off); logins and contract lookups are
:class:`~actors.broker.tradovate.auth.TradovateAuth` and
:class:`~actors.broker.tradovate.rest.TradovateRest`. This module adds what market data needs:

- **Contracts** (§4.7, §5.7): quotes carry ``contractId``, not the symbol, so every symbol is
  looked up once with REST ``contract/find?name=MNQZ6`` (our contract names already are
  Tradovate's one-digit-year names) and quotes are mapped back by id. A name the server does not
  know is reported per symbol and not subscribed; a lookup that fails for another reason (server
  down, login refused) is retried after ``lookup_retry_s``, doubling up to 15 minutes (repeated
  bad logins end in a captcha lock-out, §7) before the socket is opened; a captcha penalty
  stops the source until it is restarted (§3.1: a person must wait it out).
- **Authorize** (§2.7): with the ``mdAccessToken`` when the login returned one, else with the
  ``accessToken`` (both are accepted; the official examples differ).
- **Subscribe** (§5.7): ``md/subscribeQuote {"symbol": "MNQZ6"}`` per symbol, on *every* connect:
  closing a socket cancels all its subscriptions (§5.7), so a reconnect resubscribes everything.
  A refused subscription (e.g. 400 for an unknown symbol) is recorded for that symbol only.
- **Quotes** (§5.7): ``{"e":"md","d":{"quotes":[{"timestamp","contractId","entries":{...}}]}}``.
  ``Trade.price`` is the last price; ``Bid``/``Offer`` (price and size) are kept for status. Any
  entry may be missing, and whether updates are partial is UNCONFIRMED, so entries are merged
  into a per-contract snapshot. A tick is emitted when the merged ``Trade`` price or the
  ``TotalTradeVolume`` changed (a repeat trade at the same price raises the volume); without a
  volume entry, when the price or the quote ``timestamp`` changed. A reconnect's first quote
  (the server re-sends the last one) therefore does not repeat the last tick.
- **Health**: ``connected`` while the socket is authorised; :meth:`frames_seen` lets the feed
  tell a silent socket from a live one (the server sends ``h`` when idle, §5.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from actors.broker.tradovate.auth import Credentials, Endpoints, TradovateAuth, parse_time
from actors.broker.tradovate.errors import CaptchaRequired, TradovateError, WsClosed
from actors.broker.tradovate.frames import Event
from actors.broker.tradovate.rest import TradovateRest
from actors.broker.tradovate.ws import TradovateSocket
from actors.feed.sources.base import Tick

__all__ = ["DEFAULT_MD_URL", "TradovateMdClient", "TradovateMdConfig", "quote_tick_key"]

log = logging.getLogger("justtrades.feed.tradovate_md")

DEFAULT_MD_URL = "wss://md.tradovateapi.com/v1/websocket"
"""§1: one market-data host for live and demo."""


@dataclass(frozen=True)
class TradovateMdConfig:
    """Where to connect and the timers; tests shorten them."""

    rest_url: str = "https://demo.tradovateapi.com/v1"
    md_url: str = DEFAULT_MD_URL
    heartbeat_s: float = 2.5  # §5.5
    stale_s: float = 15.0
    backoff_initial_s: float = 0.25
    backoff_max_s: float = 30.0
    request_timeout_s: float = 15.0
    lookup_retry_s: float = 5.0
    http_timeout_s: float = 15.0


@dataclass
class _Contract:
    """Per subscribed symbol: the contract and the merged quote snapshot."""

    ours: str
    contract_id: int | None = None
    error: str | None = None
    subscribed: bool = False
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    timestamp: float | None = None
    emitted: tuple[float, Any] | None = None
    last_price: float | None = None
    last_time: float | None = None


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def quote_tick_key(entries: dict[str, dict[str, Any]], timestamp: Any) -> tuple[float, Any] | None:
    """What identifies one trade print in a merged quote (module docstring): ``(price, volume)``
    when ``TotalTradeVolume.size`` is known, else ``(price, timestamp)``; None without a trade."""
    price = _num(entries.get("Trade", {}).get("price"))
    if price is None:
        return None
    volume = _num(entries.get("TotalTradeVolume", {}).get("size"))
    return (price, ("v", volume) if volume is not None else ("t", timestamp))


class TradovateMdClient:
    """Quotes for our contract symbols from one Tradovate login; ``run`` blocks until ``stop``."""

    def __init__(
        self,
        symbols: Iterable[str],
        credentials: Credentials,
        config: TradovateMdConfig | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or TradovateMdConfig()
        self._credentials = credentials
        self._clock = clock
        self._contracts: dict[str, _Contract] = {s: _Contract(s) for s in symbols}
        self._by_id: dict[int, list[_Contract]] = {}
        self._socket: TradovateSocket | None = None
        self._auth: TradovateAuth | None = None
        self._stopping = asyncio.Event()
        self._state = "idle"
        self.ticks = 0
        self.quotes = 0
        self.subscribes = 0
        self.last_error: str | None = None

    # -- public API -----------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._socket is not None and self._socket.ready.is_set()

    def frames_seen(self) -> int:
        """Frames received on the md socket so far (heartbeats included)."""
        return self._socket.counts["frames"] if self._socket is not None else 0

    def subscribed(self, symbol: str) -> bool:
        c = self._contracts.get(symbol)
        return c is not None and c.subscribed and self.connected

    def error(self, symbol: str) -> str | None:
        c = self._contracts.get(symbol)
        return None if c is None else c.error

    async def stop(self) -> None:
        self._stopping.set()
        if self._socket is not None:
            await self._socket.close()

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        """Log in, look the contracts up, then stream until :meth:`stop` (the socket reconnects
        and resubscribes by itself)."""
        cfg = self.config
        async with httpx.AsyncClient(timeout=cfg.http_timeout_s) as client:
            endpoints = Endpoints(rest=cfg.rest_url.rstrip("/"), ws=cfg.md_url, md=cfg.md_url)
            self._auth = TradovateAuth(client, endpoints, self._credentials)
            rest = TradovateRest(client, self._auth)
            self._state = "resolving"
            failures = 0
            while not self._stopping.is_set() and not await self._resolve(rest):
                if self._state == "captcha":  # §3.1: only a person can clear it; never retried
                    await self._stopping.wait()
                    break
                # A refused login is retried ever more slowly: repeated bad logins end in a
                # captcha lock-out (§7).
                delay = min(cfg.lookup_retry_s * 2**failures, 900.0)
                failures += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
            if self._stopping.is_set():
                self._state = "stopped"
                return
            self._socket = TradovateSocket(
                cfg.md_url,
                self._md_token,
                lambda event: self._on_event(event, on_tick),
                refresh=self._refresh,
                on_open=self._subscribe_all,
                heartbeat_s=cfg.heartbeat_s,
                stale_s=cfg.stale_s,
                backoff_initial_s=cfg.backoff_initial_s,
                backoff_max_s=cfg.backoff_max_s,
                request_timeout_s=cfg.request_timeout_s,
            )
            self._state = "streaming"
            self._socket.start()
            try:
                await self._stopping.wait()
            finally:
                await self._socket.close()
                self._state = "stopped"

    def status(self) -> dict[str, Any]:
        sock = self._socket
        symbols: dict[str, Any] = {}
        for ours, c in self._contracts.items():
            bid, offer = c.entries.get("Bid", {}), c.entries.get("Offer", {})
            symbols[ours] = {
                "contract_id": c.contract_id,
                "error": c.error,
                "subscribed": c.subscribed and self.connected,
                "delayed": False,  # md is real-time given the CME entitlement (§5.7)
                "bid": _num(bid.get("price")),
                "bid_size": _num(bid.get("size")),
                "offer": _num(offer.get("price")),
                "offer_size": _num(offer.get("size")),
                "last_price": c.last_price,
                "last_time": c.last_time,
            }
        return {
            "source": "tradovate",
            "url": self.config.md_url,
            "state": ("connected" if self.connected else "connecting")
            if self._state == "streaming"
            else self._state,
            "connects": sock.counts["connects"] if sock else 0,
            "stale": sock.counts["stale"] if sock else 0,
            "frames": self.frames_seen(),
            "quotes": self.quotes,
            "ticks": self.ticks,
            "subscribes": self.subscribes,
            "last_error": self.last_error
            or (repr(sock.last_error) if sock and sock.last_error else None),
            "symbols": symbols,
        }

    # -- internals ------------------------------------------------------------------------------

    async def _resolve(self, rest: TradovateRest) -> bool:
        """``contract/find`` for every symbol not resolved yet; False to retry later."""
        for c in self._contracts.values():
            if c.contract_id is not None or c.error is not None:
                continue
            try:
                found = await rest.find_contract(c.ours)
            except CaptchaRequired as exc:
                self._state, self.last_error = "captcha", exc.message
                log.error("tradovate md: %s", exc.message)
                return False
            except TradovateError as exc:
                self.last_error = f"contract lookup failed: {exc.message}"
                log.warning("tradovate md: %s", self.last_error)
                return False
            if found is None or not isinstance(found.get("id"), int):
                c.error = "unknown_contract"
                continue
            c.contract_id = int(found["id"])
            self._by_id.setdefault(c.contract_id, []).append(c)
        return True

    async def _md_token(self) -> str:
        assert self._auth is not None
        await self._auth.token()
        tok = self._auth.current
        assert tok is not None
        return tok.md_access_token or tok.access_token

    async def _refresh(self, old: str) -> str:
        assert self._auth is not None
        await self._auth.login()
        return await self._md_token()

    async def _subscribe_all(self, sock: TradovateSocket) -> None:
        """on_open of every connection: the server forgot every subscription (§5.7)."""
        for c in self._contracts.values():
            c.subscribed = False
        for c in self._contracts.values():
            if c.contract_id is None:
                continue
            try:
                await sock.request("md/subscribeQuote", {"symbol": c.ours})
            except WsClosed:
                raise  # the connection is gone: the socket reconnects and we come back here
            except TradovateError as exc:
                c.error = f"subscribe refused: {exc.message}"
                log.warning("tradovate md: %s: %s", c.ours, c.error)
                continue
            c.subscribed, c.error = True, None
            self.subscribes += 1

    def _on_event(self, event: Event, on_tick: Callable[[Tick], None]) -> None:
        if event.kind != "md" or not isinstance(event.data, dict):
            return
        quotes = event.data.get("quotes")
        if not isinstance(quotes, list):
            return
        for quote in quotes:
            if isinstance(quote, dict) and isinstance(quote.get("contractId"), int):
                self.quotes += 1
                for c in self._by_id.get(quote["contractId"], ()):
                    self._merge(c, quote, on_tick)

    def _merge(self, c: _Contract, quote: dict[str, Any], on_tick: Callable[[Tick], None]) -> None:
        entries = quote.get("entries")
        if isinstance(entries, dict):
            for name, entry in entries.items():
                if isinstance(entry, dict):
                    c.entries[name] = {**c.entries.get(name, {}), **entry}
        ts = parse_time(quote.get("timestamp"))
        if ts is not None:
            c.timestamp = ts
        key = quote_tick_key(c.entries, c.timestamp)
        if key is None or key == c.emitted:
            return
        c.emitted = key
        price = key[0]
        stamp = c.timestamp if c.timestamp is not None else self._clock()
        c.last_price, c.last_time = price, stamp
        self.ticks += 1
        try:
            on_tick(Tick(c.ours, stamp, price))
        except Exception:
            log.exception("tradovate md: on_tick failed for %s", c.ours)
