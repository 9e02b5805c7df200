"""Live price sources behind one interface, for :class:`actors.feed.live.LiveFeed`.

Adapters wrap the clients (:class:`TradingViewClient`, :class:`ScannerPoller`,
:class:`TradovateMdClient`) with what the failover policy needs: ``healths(symbols, now)`` ->
:class:`~actors.feed.failover.SourceHealth` per symbol. *Up* means: TradingView — connected, the
symbol's snapshot complete, no ``no_such_symbol``, a frame (heartbeats count) within ``stale_s``;
scanner — the last poll succeeded within ``max(stale_s, 3 polls)`` and priced the symbol;
Tradovate — the md socket authorised, the symbol subscribed, a frame (``h`` counts) within
``stale_s``. Each client's own reconnect timer is ``2 * stale_s``: the feed routes around a
silent source first and the client tears the connection down later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from actors.feed.failover import SourceHealth
from actors.feed.options import FeedOptions
from actors.feed.sources.base import Tick
from actors.feed.sources.scanner import ScannerPoller
from actors.feed.sources.tradingview import TradingViewClient, TradingViewConfig
from actors.feed.sources.tradingview_proto import ANONYMOUS_TOKEN
from actors.feed.sources.tradovate_md import TradovateMdClient, TradovateMdConfig

__all__ = [
    "LiveSource",
    "ScannerSource",
    "TradingViewSource",
    "TradovateSource",
    "tradovate_login",
]


def tradovate_login(options: FeedOptions) -> tuple[Any, str] | str:
    """``(Credentials, REST base)`` of the Tradovate login that streams md: the account
    ``tradovate_account_id`` or else the first Tradovate account with credentials; a reason
    string when there is none. Blocking (store, key file): call it in a worker thread."""
    from actors.broker.credentials import CredentialError, SecretKeyMissing
    from actors.broker.tradovate.auth import Credentials
    from actors.feed.cookies import box_for
    from actors.store import Store, repo

    if options.database_url is None:
        return "no database configured"
    store = Store(options.database_url)
    try:
        with store.read() as s:
            rows = [
                a
                for a in repo.list_accounts(s)
                if a.broker == "tradovate" and a.credentials_encrypted is not None
            ]
    finally:
        store.dispose()
    if options.tradovate_account_id is not None:
        rows = [a for a in rows if a.id == options.tradovate_account_id]
    if not rows:
        return "no Tradovate account with credentials"
    acc = rows[0]
    assert acc.credentials_encrypted is not None
    try:
        plain = box_for(options.secret_key, options.database_url).open(acc.credentials_encrypted)
    except (CredentialError, SecretKeyMissing) as exc:
        return f"credentials of account {acc.id} unreadable: {type(exc).__name__}"
    rest = options.tradovate_live_url if acc.environment == "live" else options.tradovate_demo_url
    return Credentials.from_plain(plain), rest


class LiveSource(Protocol):
    name: str

    async def run(self, on_tick: Callable[[Tick], None]) -> None: ...
    async def stop(self) -> None: ...
    def healths(self, symbols: Iterable[str], now: float) -> dict[str, SourceHealth]: ...
    def status(self) -> dict[str, Any]: ...


class _UpSince:
    """Remembers when each symbol last came up."""

    def __init__(self) -> None:
        self.since: dict[str, float] = {}

    def mark(self, symbol: str, up: bool, now: float) -> float | None:
        if not up:
            self.since.pop(symbol, None)
            return None
        return self.since.setdefault(symbol, now)


class TradingViewSource:
    name = "tradingview"

    def __init__(self, symbols: list[str], options: FeedOptions, token: str | None) -> None:
        self.stale_s = options.stale_s
        config = TradingViewConfig(
            url=options.tradingview_url,
            auth_token=token or ANONYMOUS_TOKEN,
            stale_after_s=2 * options.stale_s,  # the feed routes around a silence first
            backoff_initial_s=min(0.5, options.stale_s / 4),
            backoff_max_s=min(30.0, 2 * options.stale_s),
        )
        self.client = TradingViewClient(symbols, config)
        self.authenticated = token is not None
        self._token = token
        self._up = _UpSince()

    def uses(self, token: str | None) -> bool:
        """Whether this client was built with ``token`` (None: anonymous)."""
        return self._token == token

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        await self.client.run(on_tick)

    async def stop(self) -> None:
        await self.client.stop()

    def healths(self, symbols: Iterable[str], now: float) -> dict[str, SourceHealth]:
        st = self.client.status()
        frame = st["last_frame_at"]
        alive = st["state"] == "connected" and frame is not None and now - frame <= self.stale_s
        out = {}
        for s in symbols:
            sym = st["symbols"].get(s) or {}
            up = alive and bool(sym.get("completed")) and not sym.get("error")
            if up:
                error = None
            elif sym.get("error"):
                error = str(sym["error"])
            elif st["state"] == "connected" and not alive:
                error = f"silent for more than {self.stale_s:g}s"
            else:
                error = st["state"] if st["state"] != "connected" else "subscribing"
                if st["last_error"] and st["state"] != "connected":
                    error = f"{error} ({st['last_error']})"
            out[s] = SourceHealth(up, self._up.mark(s, up, now), sym.get("delayed"), error)
        return out

    def all_delayed(self) -> bool:
        """Every symbol with a known ``update_mode`` is delayed (and there is at least one)."""
        known = [
            v["delayed"]
            for v in self.client.status()["symbols"].values()
            if v["delayed"] is not None
        ]
        return bool(known) and all(known)

    def refuses_token(self) -> bool:
        """Logged in, and the server keeps ending our connections with a fatal message before
        any quote data (UNCONFIRMED: how TradingView refuses a bad token; the other way it may
        answer is delayed data, see :meth:`all_delayed`)."""
        st = self.client.status()
        return self.authenticated and st["fatal"] >= 2 and st["retry_attempt"] >= 2

    def any_real_time(self) -> bool:
        return any(v["delayed"] is False for v in self.client.status()["symbols"].values())

    def status(self) -> dict[str, Any]:
        return self.client.status() | {"authenticated": self.authenticated}


class ScannerSource:
    name = "scanner"

    def __init__(self, symbols: list[str], options: FeedOptions) -> None:
        self.poller = ScannerPoller(
            symbols,
            base=options.scanner_url,
            market=options.scanner_market,
            interval_s=options.scanner_interval_s,
            timeout_s=max(1.0, min(10.0, options.stale_s)),
        )
        self.window = max(options.stale_s, 3 * options.scanner_interval_s)
        self._up = _UpSince()

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        await self.poller.run(on_tick)

    async def stop(self) -> None:
        await self.poller.stop()

    def healths(self, symbols: Iterable[str], now: float) -> dict[str, SourceHealth]:
        p = self.poller
        ok = p.consecutive_failures == 0 and p.last_ok_at is not None
        out = {}
        for s in symbols:
            seen = p.seen_at(s)
            up = ok and seen is not None and now - seen <= self.window
            error = None if up else (p.last_error or "symbol not priced by the scanner")
            # Anonymous scanner data is delayed (§3.6); by how much is UNCONFIRMED.
            out[s] = SourceHealth(up, self._up.mark(s, up, now), True, error)
        return out

    def status(self) -> dict[str, Any]:
        return self.poller.status()


class TradovateSource:
    name = "tradovate"

    def __init__(
        self, symbols: list[str], options: FeedOptions, login: tuple[Any, str] | str
    ) -> None:
        self.stale_s = options.stale_s
        self.problem: str | None = login if isinstance(login, str) else None
        self.client: TradovateMdClient | None = None
        if not isinstance(login, str):
            credentials, rest_url = login
            config = TradovateMdConfig(
                rest_url=rest_url,
                md_url=options.tradovate_md_url,
                stale_s=2 * options.stale_s,
                backoff_initial_s=min(0.25, options.stale_s / 4),
                backoff_max_s=min(30.0, 2 * options.stale_s),
                lookup_retry_s=max(0.05, options.stale_s / 3),
            )
            self.client = TradovateMdClient(symbols, credentials, config)
        self._frames = -1
        self._frame_at: float | None = None
        self._up = _UpSince()
        self._stopped = asyncio.Event()

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        if self.client is None:
            await self._stopped.wait()  # nothing to run; stays down with the reason
        else:
            await self.client.run(on_tick)

    async def stop(self) -> None:
        self._stopped.set()
        if self.client is not None:
            await self.client.stop()

    def healths(self, symbols: Iterable[str], now: float) -> dict[str, SourceHealth]:
        c = self.client
        if c is None:
            return {s: SourceHealth(False, error=self.problem) for s in symbols}
        frames = c.frames_seen()
        if frames != self._frames:  # sampled every check: resolution is check_s
            self._frames, self._frame_at = frames, now
        alive = c.connected and self._frame_at is not None and now - self._frame_at <= self.stale_s
        out = {}
        for s in symbols:
            up = alive and c.subscribed(s)
            error = None if up else (c.error(s) or ("silent" if c.connected else "not connected"))
            out[s] = SourceHealth(up, self._up.mark(s, up, now), False, error)
        return out

    def status(self) -> dict[str, Any]:
        if self.client is None:
            return {"source": "tradovate", "state": "unavailable", "last_error": self.problem}
        return self.client.status()
