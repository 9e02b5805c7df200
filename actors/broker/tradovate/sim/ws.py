"""Websocket protocol of the simulator: the user socket and the market-data socket (§5).

Framing (§5.1): the server sends ``o`` on connect, ``h`` as heartbeat when it has been idle for
``server_heartbeat_s`` (a streaming server sends none, [S9]), ``a[...]`` with one or more
responses/events — everything queued at the moment of sending goes into one frame, so clients
must handle several items per frame ([S1] C# loops all items) — and ``c[code,"reason"]`` before
a graceful close. Client frames are plain text ``endpoint\\nid\\nquery\\nbody`` (§5.2) or the
heartbeat ``[]`` (§5.5).

* ``authorize\\n<id>\\n\\n<token>`` — the token raw or JSON-quoted (§5.3 quirk); answers
  ``{"s":200,"i":id}`` or ``{"s":401,"i":id,"d":"Invalid access token"}``. The md socket accepts
  the ``mdAccessToken`` or the ``accessToken`` (§2.7), the user socket only the latter. Other
  requests before authorisation get 401 (real answer UNCONFIRMED) and a socket not authorised
  within ``auth_timeout_s`` is closed (§5.3).
* Responses ``{"s","i","d"}``; ``d`` is the REST body on 2xx, an error string otherwise, absent
  when there is none (§5.4). A frame with fewer than four fields gets 400 (§5.2, [S7] #32), a
  body that is not JSON (single quotes, [S7] #52) too.
* ``user/syncrequest`` (user socket) answers the snapshot and subscribes the socket to ``props``
  events of the covered accounts for its lifetime — there is no unsubscribe (§5.6).
* ``md/subscribeQuote`` / ``md/unsubscribeQuote`` (md socket) by symbol or contract id; quotes
  arrive as ``{"e":"md","d":{"quotes":[...]}}`` keyed by ``contractId`` (§5.7). The last quote,
  if any, is sent right after subscribing (real snapshot-on-subscribe behaviour UNCONFIRMED).
  Successful subscribe ``d`` is ``{}`` (UNCONFIRMED, §5.7). DOM, histogram and chart requests
  are not modelled (404).
* A socket that receives no frame at all for ``heartbeat_timeout_s`` is closed (§5.5; 0
  disables). Whether real Tradovate counts only ``[]`` or any frame is UNCONFIRMED.
* Fault actions: ``shutdown`` sends ``{"e":"shutdown","d":{"reasonCode",...}}`` then
  ``c[1000,...]`` and closes (§5.4); ``drop`` closes with code 1011 and nothing else.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from starlette.websockets import WebSocket, WebSocketDisconnect

from actors.broker.tradovate.sim.core import Caller, Reply, TradovateSim
from actors.broker.tradovate.sim.routes import query_params, sync_snapshot

__all__ = ["SocketHub", "SocketSession"]

log = logging.getLogger("justtrades.tradovate.sim")

Kind = Literal["user", "md"]
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class _Control:
    action: Literal["heartbeat", "shutdown", "drop", "close"]
    reason: str = ""


def _frame(messages: list[dict[str, Any]]) -> str:
    return "a" + json.dumps(messages, separators=(",", ":"))


class SocketSession:
    """One websocket connection (see the module docstring for the protocol)."""

    def __init__(self, hub: SocketHub, websocket: WebSocket, kind: Kind) -> None:
        self.id = next(_ids)
        self.hub = hub
        self.sim = hub.sim
        self.ws = websocket
        self.kind = kind
        self.caller: Caller | None = None
        self.session_id: int | None = None
        self.accounts: set[int] | None = None  # set once user/syncrequest subscribed
        self.quotes: set[int] = set()
        self.queue: asyncio.Queue[dict[str, Any] | _Control] = asyncio.Queue()
        self.opened = self.last_rx = self.last_tx = time.monotonic()
        self._after_reply: list[dict[str, Any]] = []

    def push(self, message: dict[str, Any] | _Control) -> None:
        self.queue.put_nowait(message)

    async def run(self) -> None:
        await self.ws.accept()
        await self._send("o")
        # The socket lives while both the reader (client gone?) and the writer (closed by a
        # control item?) run; the watchdog only queues controls, so it is not waited on.
        tasks = [asyncio.create_task(self._read()), asyncio.create_task(self._write())]
        tasks.append(asyncio.create_task(self._watchdog()))
        try:
            await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.hub.sessions.discard(self)

    async def _send(self, text: str) -> None:
        self.last_tx = time.monotonic()
        await self.ws.send_text(text)

    async def _close(self, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, reason=reason)

    # ------------------------------------------------------------------ tasks

    async def _read(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                text = await self.ws.receive_text()
                self.last_rx = time.monotonic()
                if text.strip() == "[]":
                    continue  # client heartbeat (§5.5)
                try:
                    reply = self._handle(text)
                except Exception:  # a simulator bug must answer, not kill the socket
                    log.exception("simulator failed on %r", text[:200])
                    reply = {"s": 500, "d": "Internal simulator error"}
                self.push(reply)
                for message in self._after_reply:
                    self.push(message)
                self._after_reply.clear()

    async def _write(self) -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
            while True:
                batch: list[dict[str, Any]] = []
                item = await self.queue.get()
                while isinstance(item, dict):
                    batch.append(item)
                    if self.queue.empty():
                        item = None
                        break
                    item = self.queue.get_nowait()
                if batch:
                    await self._send(_frame(batch))
                if isinstance(item, _Control) and await self._control(item):
                    return

    async def _control(self, control: _Control) -> bool:
        """Run one control item; True when the socket is finished."""
        if control.action == "heartbeat":
            await self._send("h")
            return False
        if control.action == "shutdown":
            event = {"e": "shutdown", "d": {"reasonCode": control.reason, "reason": control.reason}}
            await self._send(_frame([event]))
            await self._send("c" + json.dumps([1000, control.reason]))
            await self._close(1000, control.reason)
        elif control.action == "drop":
            await self._close(1011, "")
        else:
            await self._close(1000, control.reason)
        return True

    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.05)
            faults = self.sim.faults.faults
            now = time.monotonic()
            if self.caller is None and now - self.opened > faults.auth_timeout_s:
                self.push(_Control("close", "Authorization timeout"))
                return
            if 0 < faults.heartbeat_timeout_s < now - self.last_rx:
                self.push(_Control("close", "Heartbeat timeout"))
                return
            if now - self.last_tx >= faults.server_heartbeat_s:
                self.last_tx = now  # one 'h' per idle interval
                self.push(_Control("heartbeat"))

    # ------------------------------------------------------------------ requests

    def _handle(self, text: str) -> dict[str, Any]:
        parts = text.split("\n", 3)
        rid = int(parts[1]) if len(parts) > 1 and parts[1].strip().lstrip("-").isdigit() else None
        if rid is None:
            return {"s": 400, "d": "Bad request: expected endpoint\\nid\\nquery\\nbody"}
        if len(parts) < 4:
            return {"s": 400, "i": rid, "d": "Bad request: expected endpoint\\nid\\nquery\\nbody"}
        endpoint, query, body = parts[0].strip(), parts[2], parts[3]
        key = endpoint.lower()
        if key == "authorize":
            token = body.strip()
            if len(token) >= 2 and token[0] == token[-1] == '"':
                token = token[1:-1]
            reply = self.sim.call(
                key, {}, transport="ws", method="WS", handler=lambda: self._authorize(token)
            )
            return self._message(rid, reply)
        if self.caller is None:
            return {"s": 401, "i": rid, "d": "Not authorized"}
        try:
            params = query_params(query)
            if body.strip():
                decoded = json.loads(body)
                if not isinstance(decoded, dict):
                    raise ValueError("body must be a JSON object")
                params |= decoded
        except ValueError as exc:
            return {"s": 400, "i": rid, "d": f"Bad request: {exc}"}
        handler = self._local(key, params)
        reply = self.sim.call(
            endpoint, params, caller=self.caller, transport="ws", method="WS", handler=handler
        )
        return self._message(rid, reply)

    @staticmethod
    def _message(rid: int, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"s": reply.status, "i": rid}
        if reply.body is not None:
            message["d"] = reply.body
        return message

    def _authorize(self, token: str) -> Reply:
        kinds = ("access", "md") if self.kind == "md" else ("access",)
        found = self.sim.auth.check(token, self.sim.clock(), kinds)
        if found is None:
            return Reply(401, "Invalid access token")
        self.caller = Caller(found.user_id, found)
        self.session_id = found.session_id
        return Reply(200)

    def _local(self, key: str, params: dict[str, Any]) -> Callable[[], Reply] | None:
        """Socket-bound endpoints; None lets the core route the request like REST."""
        is_md = key.startswith("md/")
        if is_md != (self.kind == "md"):
            return lambda: Reply(404, f"Not found: {key}")
        if key == "user/syncrequest":
            return lambda: self._sync(params)
        if key in ("md/subscribequote", "md/unsubscribequote"):
            return lambda: self._quote(params, key == "md/subscribequote")
        if is_md:
            return lambda: Reply(404, f"Not found: {key}")
        return None

    def _sync(self, params: dict[str, Any]) -> Reply:
        assert self.caller is not None
        body, accounts = sync_snapshot(self.sim, self.caller.user_id, params)
        self.accounts = (self.accounts or set()) | accounts
        return Reply(200, body)

    def _quote(self, params: dict[str, Any], subscribe: bool) -> Reply:
        symbol = params.get("symbol")
        catalog = self.sim.catalog
        if isinstance(symbol, int) and not isinstance(symbol, bool):
            contract = catalog.contracts.get(symbol)
        else:
            contract = catalog.find(str(symbol or ""))
        if contract is None:
            return Reply(400, f"Unknown symbol: {symbol}")
        if not subscribe:
            self.quotes.discard(contract["id"])
            return Reply(200, {})
        self.quotes.add(contract["id"])
        last = self.sim.engine.quotes.get(contract["id"])
        if last is not None:
            self._after_reply.append({"e": "md", "d": {"quotes": [last]}})
        return Reply(200, {})


class SocketHub:
    """All live sockets of one simulator: routes engine events to them and runs fault actions."""

    def __init__(self, sim: TradovateSim) -> None:
        self.sim = sim
        self.sessions: set[SocketSession] = set()
        sim.sockets = self
        sim.engine.sinks.append(self._on_props)
        sim.engine.quote_sinks.append(self._on_quote)

    async def serve(self, websocket: WebSocket, kind: Kind) -> None:
        session = SocketSession(self, websocket, kind)
        self.sessions.add(session)
        await session.run()

    def _on_props(self, message: dict[str, Any], account: int | None) -> None:
        for s in list(self.sessions):
            if s.kind == "user" and s.accounts is not None and account in s.accounts:
                s.push(message)

    def _on_quote(self, contract_id: int, quote: dict[str, Any]) -> None:
        for s in list(self.sessions):
            if s.kind == "md" and contract_id in s.quotes:
                s.push({"e": "md", "d": {"quotes": [quote]}})

    def shutdown(self, reason_code: str, sessions: Iterable[int] | None = None) -> int:
        wanted = None if sessions is None else set(sessions)
        targets = [s for s in self.sessions if wanted is None or s.session_id in wanted]
        for s in targets:
            s.push(_Control("shutdown", reason_code))
        return len(targets)

    def drop(self) -> int:
        targets = list(self.sessions)
        for s in targets:
            s.push(_Control("drop"))
        return len(targets)
