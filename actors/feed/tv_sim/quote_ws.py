"""One simulated TradingView quote connection (reference ``tradingview.md`` §3.1–§3.5).

Server side of the protocol, built on the same pure codec the client uses
(:mod:`actors.feed.sources.tradingview_proto`), so framing is identical on both ends:

- on connect: the §3.1 hello (JSON without ``m``), then a ``~h~N`` heartbeat every
  ``heartbeat_s`` with N counting up; echoes are checked against what was sent;
- ``set_auth_token``: ``unauthorized_user_token`` (or any token not accepted) gives
  ``delayed_streaming_900``, an accepted token ``streaming`` (what the real server does with a
  bad token is UNCONFIRMED); a token revoked later (expired cookie session) turns an open
  connection's data delayed with an ``update_mode`` delta (also UNCONFIRMED); with
  ``refuse_bad_tokens`` a token not accepted is answered ``protocol_error`` and the socket
  closed instead (the other possible real behaviour);
- ``quote_create_session`` / ``quote_set_fields`` / ``quote_add_symbols`` /
  ``quote_remove_symbols`` / ``quote_delete_session``: per added symbol, the full snapshot as
  one ``qsd`` and then ``quote_completed``; unknown or rejected symbols get ``s: "error"``,
  ``errmsg: "no_such_symbol"``, empty ``v`` and no ``quote_completed`` (UNCONFIRMED whether the
  real server also completes them);
- market changes: a ``qsd`` with only the fields that changed since this session last saw them;
- a client message that does not decode: ``protocol_error`` and close (UNCONFIRMED).

A stalled connection sends nothing at all (no heartbeat either) but keeps the socket open and
keeps reading, like a half-open TCP path.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from actors.feed.sources.tradingview_proto import (
    ANONYMOUS_TOKEN,
    HeartbeatFrame,
    MessageFrame,
    ProtocolError,
    decode,
    encode,
    encode_message,
)
from actors.feed.tv_sim.state import Faults, SimConfig, SimMarket, SimStats, symbol_name

__all__ = ["QuoteConnection"]

_ids = itertools.count(1)
_MISSING = object()


@dataclass
class _QuoteSession:
    fields: list[str] | None = None
    symbols: dict[str, str] = field(default_factory=dict)  # key as sent -> symbol name
    sent: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> fields last sent
    completed: set[str] = field(default_factory=set)  # keys whose quote_completed went out


class QuoteConnection:
    """Protocol state of one client socket; ``serve`` runs it until the socket closes."""

    def __init__(
        self,
        ws: ServerConnection,
        config: SimConfig,
        market: SimMarket,
        faults: Faults,
        stats: SimStats,
    ) -> None:
        self.ws = ws
        self.config, self.market, self.faults, self.stats = config, market, faults, stats
        self.id = next(_ids)
        self.token: str | None = None
        self.update_mode = config.delayed_mode
        self.sessions: dict[str, _QuoteSession] = {}
        self.stalled = False
        self.heartbeats_sent: set[str] = set()
        self.echoes: list[str] = []
        self._push_lock = asyncio.Lock()  # delta computed and sent atomically per connection

    # -- sending --------------------------------------------------------------------------------

    async def send(self, text: str) -> bool:
        """Send unless stalled or closed; True when it went out."""
        if self.stalled:
            return False
        try:
            await self.ws.send(text)
        except ConnectionClosed:
            return False
        return True

    async def _heartbeats(self) -> None:
        for n in itertools.count(1):
            await asyncio.sleep(self.config.heartbeat_s)
            payload = f"~h~{n}"
            if await self.send(encode(payload)):
                self.heartbeats_sent.add(payload)
                self.stats.heartbeats_sent += 1

    def _hello(self) -> str:
        now = time.time()
        return encode(
            json.dumps(
                {
                    "session_id": f"<0>_{self.id}",
                    "timestamp": int(now),
                    "timestampMs": int(now * 1000),
                    "release": "tv-sim",
                    "studies_metadata_hash": "sim",
                    "protocol": "json",
                    "javastudies": "sim",
                    "auth_scheme_vsn": 2,
                    "via": f"{self.config.host}:{self.config.ws_port}",
                },
                separators=(",", ":"),
            )
        )

    async def _push(self, qs: str, key: str) -> None:
        """Send the fields of ``key`` that changed since this session last saw them."""
        session = self.sessions.get(qs)
        if session is None or key not in session.symbols:
            return
        async with self._push_lock:
            view = self.market.view(session.symbols[key], session.fields, self.update_mode)
            last = session.sent.setdefault(key, {})
            delta = {k: v for k, v in view.items() if last.get(k, _MISSING) != v}
            if not delta:
                return
            if await self.send(encode_message("qsd", [qs, {"n": key, "s": "ok", "v": delta}])):
                last.update(delta)
                self.stats.qsd_sent += 1

    async def market_changed(self, symbol: str) -> None:
        """Called by the server after a market update for ``symbol``."""
        for qs, session in list(self.sessions.items()):
            for key, name in list(session.symbols.items()):
                if name == symbol:
                    await self._push(qs, key)

    # -- receiving ------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Hello, heartbeats, and the client's messages until the socket closes."""
        self.stats.connections += 1
        self.stats.origins.append(
            self.ws.request.headers.get("Origin") if self.ws.request else None
        )
        beat = asyncio.get_running_loop().create_task(self._heartbeats())
        try:
            await self.send(self._hello())
            async for raw in self.ws:
                text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
                try:
                    frames = decode(text)
                except ProtocolError:
                    self.stats.client_errors += 1
                    await self.send(encode_message("protocol_error", ["wrong data"]))
                    await self.ws.close()
                    return
                for frame in frames:
                    await self._frame(frame)
        except ConnectionClosed:
            pass
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _frame(self, frame: Any) -> None:
        if isinstance(frame, HeartbeatFrame):
            self.echoes.append(frame.payload)
            if frame.payload in self.heartbeats_sent:
                self.stats.heartbeat_echoes += 1
            else:
                self.stats.bad_echoes += 1
            return
        if not isinstance(frame, MessageFrame):
            self.stats.client_errors += 1
            return
        self.stats.methods.append(frame.method)
        handler = _HANDLERS.get(frame.method)
        if handler is not None:
            await handler(self, frame.params)

    async def _set_auth_token(self, params: list[Any]) -> None:
        token = params[0] if params and isinstance(params[0], str) else ANONYMOUS_TOKEN
        self.token = token
        self.stats.tokens.append(token)
        if not await self._refuse_if_bad():
            await self._set_mode(self._mode_for(token))

    async def _refuse_if_bad(self) -> bool:
        """With ``refuse_bad_tokens``: ``protocol_error`` and close for a token not accepted."""
        token = self.token
        bad = token not in (None, ANONYMOUS_TOKEN) and not self.config.token_accepted(token)
        if not (bad and self.config.refuse_bad_tokens):
            return False
        await self.send(encode_message("protocol_error", ["invalid auth token (sim)"]))
        await self.ws.close()
        return True

    def _mode_for(self, token: str) -> str:
        accepted = token != ANONYMOUS_TOKEN and self.config.token_accepted(token)
        return "streaming" if accepted else self.config.delayed_mode

    async def _set_mode(self, mode: str) -> None:
        if mode != self.update_mode:
            self.update_mode = mode
            for qs, session in list(self.sessions.items()):
                for key in list(session.symbols):
                    await self._push(qs, key)

    async def recheck_token(self) -> None:
        """After a token was revoked: a connection using it drops to delayed data, announced by
        an ``update_mode`` delta (what the real server does on expiry is UNCONFIRMED)."""
        if self.token is not None and not await self._refuse_if_bad():
            await self._set_mode(self._mode_for(self.token))

    async def _create_session(self, params: list[Any]) -> None:
        if params and isinstance(params[0], str):
            self.sessions.setdefault(params[0], _QuoteSession())

    async def _set_fields(self, params: list[Any]) -> None:
        session = self.sessions.get(params[0]) if params else None
        if session is not None:
            session.fields = [f for f in params[1:] if isinstance(f, str)]

    async def _add_symbols(self, params: list[Any]) -> None:
        qs = params[0] if params else None
        session = self.sessions.get(qs) if isinstance(qs, str) else None
        if qs is None or session is None:
            return  # unknown session: ignored (real behaviour UNCONFIRMED)
        for key in params[1:]:
            if not isinstance(key, str):
                continue
            name = symbol_name(key)
            if name is None or name in self.faults.rejected or not self.market.known(name):
                body = {"n": key, "s": "error", "errmsg": "no_such_symbol", "v": {}}
                await self.send(encode_message("qsd", [qs, body]))
                continue
            session.symbols[key] = name
            session.sent.pop(key, None)
            await self._push(qs, key)
            if await self.send(encode_message("quote_completed", [qs, key])):
                session.completed.add(key)

    async def _remove_symbols(self, params: list[Any]) -> None:
        session = self.sessions.get(params[0]) if params else None
        if session is not None:
            for key in params[1:]:
                session.symbols.pop(key, None)
                session.sent.pop(key, None)
                session.completed.discard(key)

    async def _delete_session(self, params: list[Any]) -> None:
        if params:
            self.sessions.pop(params[0], None)

    def subscribed(self, symbol: str) -> bool:
        """True once some session of this connection has ``symbol`` with its snapshot complete."""
        return any(
            s.symbols.get(key) == symbol for s in self.sessions.values() for key in s.completed
        )


_HANDLERS = {
    "set_auth_token": QuoteConnection._set_auth_token,
    "quote_create_session": QuoteConnection._create_session,
    "quote_set_fields": QuoteConnection._set_fields,
    "quote_add_symbols": QuoteConnection._add_symbols,
    "quote_remove_symbols": QuoteConnection._remove_symbols,
    "quote_delete_session": QuoteConnection._delete_session,
}
