"""The simulator's composition root: one :class:`TradovateSim` per simulated environment.

It owns the auth book, contract catalog, engine, fault switches and request log, and exposes a
single entry point, :meth:`TradovateSim.call`, used by both transports: the REST app and the
websocket sessions (§5.2: "any REST endpoint can be called over the socket"), so both see the
same faults, auth rules and answers.

Endpoint names are matched case-insensitively (official code sends both ``md/subscribeQuote``
and ``md/subscribequote``, §5.7; the FAQ writes ``/order/placeOrder``, §3.1) — that the real
REST routing is case-insensitive is UNCONFIRMED but observed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from actors.broker.tradovate.sim.catalog import Catalog
from actors.broker.tradovate.sim.config import SimConfig
from actors.broker.tradovate.sim.engine import Schedule, SimEngine
from actors.broker.tradovate.sim.faults import FaultState
from actors.broker.tradovate.sim.sessions import AuthBook, Token

if TYPE_CHECKING:
    from actors.broker.tradovate.sim.routes import Route

__all__ = ["Caller", "Reply", "RequestLog", "SocketControl", "TradovateSim"]


@dataclass(frozen=True, slots=True)
class Reply:
    """One answer: HTTP status (or websocket ``s``) and JSON body (``d``); None = no body."""

    status: int
    body: Any = None


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the authenticated user and, when known, the token used."""

    user_id: int
    token: Token | None = None


class SocketControl(Protocol):
    """What the core needs from the websocket layer (implemented by ``ws.SocketHub``)."""

    def shutdown(self, reason_code: str, sessions: Iterable[int] | None = None) -> int: ...

    def drop(self) -> int: ...


class RequestLog:
    """Every request the simulator answered, oldest first (``GET /sim/requests``).

    Kept so tests can assert client behaviour the protocol cannot show, e.g. that no ``clOrdId``
    was submitted twice or that every order carried ``isAutomated: true``.
    """

    def __init__(self, maxlen: int = 20_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._seq = 0

    def record(self, **entry: Any) -> None:
        self._seq += 1
        self._entries.append({"seq": self._seq, **entry})

    def entries(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        key = endpoint.strip("/").lower() if endpoint else None
        return [e for e in self._entries if key is None or e["endpoint"] == key]

    def clear(self) -> None:
        self._entries.clear()


class TradovateSim:
    """One simulated Tradovate environment (demo or live); see the module docstring."""

    def __init__(
        self,
        config: SimConfig | None = None,
        faults: dict[str, Any] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        schedule: Schedule | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.clock = clock
        self.faults = FaultState()
        if faults:
            self.faults.update(faults, clock())
        self.auth = AuthBook(self.config, lambda: self.faults.faults.token_lifetime_s)
        self.catalog = Catalog(self.config.on)
        extra = {"schedule": schedule} if schedule is not None else {}
        self.engine = SimEngine(self.config, self.catalog, self.faults, clock, **extra)
        self.log = RequestLog()
        self.sockets: SocketControl | None = None

    def call(
        self,
        endpoint: str,
        params: dict[str, Any],
        *,
        token: str | None = None,
        caller: Caller | None = None,
        transport: str = "rest",
        method: str = "POST",
        handler: Callable[[], Reply] | None = None,
    ) -> Reply:
        """Answer one request: 404 for unknown endpoints, then the fault gate (429, p-ticket),
        then bearer auth (401, §2.6), then the handler. ``caller`` skips the token check (a
        socket authorised at connect time); ``handler`` replaces routing (socket-local
        endpoints such as ``authorize`` and ``md/*``) but still goes through the fault gate."""
        from actors.broker.tradovate.sim.routes import ROUTES

        key = endpoint.strip().strip("/").lower()
        now = self.clock()
        self.auth.max_sessions = self.faults.faults.max_sessions
        route = ROUTES.get(key)
        if handler is None and route is None:
            reply = Reply(404, f"Not found: {endpoint}")
        else:
            gated = self.faults.gate(key, params, now, self.auth.failures)
            if gated is not None:
                reply = Reply(*gated)
            elif handler is not None:
                reply = handler()
            else:
                assert route is not None
                reply = self._routed(route, params, token, caller, now)
        self.log.record(
            ts=now,
            transport=transport,
            method=method,
            endpoint=key,
            params=params,
            status=reply.status,
            user_id=caller.user_id if caller else None,
            penalty=isinstance(reply.body, dict) and "p-ticket" in reply.body,
        )
        return reply

    def _routed(
        self,
        route: Route,
        params: dict[str, Any],
        token: str | None,
        caller: Caller | None,
        now: float,
    ) -> Reply:
        if route.public:
            return route.fn(self, None, params)
        if caller is None:
            found = self.auth.check(token, now)
            if found is None:
                return Reply(401)  # body of a real REST 401 is UNCONFIRMED: sent empty
            caller = Caller(found.user_id, found)
        return route.fn(self, caller, params)

    # ------------------------------------------------------------------ admin (simulator only)

    def push_prices(self, ticks: list[dict[str, Any]]) -> dict[str, Any]:
        """Feed trade prints ``[{symbol, price, ts?, bid?, ask?, size?}]`` in order."""
        resolved = []
        for tick in ticks:
            contract = self.catalog.resolve(tick.get("symbol", tick.get("contractId", "")))
            price = tick.get("price")
            if contract is None:
                raise ValueError(f"unknown symbol: {tick.get('symbol')!r}")
            if isinstance(price, bool) or not isinstance(price, int | float):
                raise ValueError(f"price must be a number: {price!r}")
            resolved.append((contract, float(price), tick))
        for contract, price, tick in resolved:
            ts = float(tick["ts"]) if tick.get("ts") is not None else self.clock()
            book = {k: tick.get(k) for k in ("bid", "ask", "size", "bid_size", "ask_size")}
            self.engine.push_price(contract, price, ts, **book)
        return {"applied": len(resolved)}

    def apply_faults(self, changes: dict[str, Any]) -> dict[str, Any]:
        """``POST /sim/faults``: switch changes plus the one-shot actions (see :mod:`.faults`)."""
        changes = dict(changes)
        now = self.clock()
        done: dict[str, Any] = {}
        if changes.pop("reset", False):
            self.faults.reset()
            self.auth.failures = 0
            done["reset"] = True
        expire = changes.pop("expire_tokens_now", False)
        shutdown = changes.pop("ws_shutdown", None)
        drop = changes.pop("ws_drop", False)
        self.faults.update(changes, now)
        if expire:
            done["expired_tokens"] = self.auth.expire_all(now)
        if shutdown and self.sockets is not None:
            code = shutdown if isinstance(shutdown, str) else "Maintenance"
            done["shutdown_sockets"] = self.sockets.shutdown(code)
        if drop and self.sockets is not None:
            done["dropped_sockets"] = self.sockets.drop()
        return {"faults": self.faults.snapshot(), "done": done}

    def state(self) -> dict[str, Any]:
        """``GET /sim/state``: a debugging dump of accounts, orders and positions."""
        entities = self.engine.entities
        return {
            "accounts": list(self.engine.accounts.values()),
            "orders": [o.entity for o in self.engine.orders.values()],
            "positions": list(entities.get("position", {}).values()),
            "cashBalances": list(entities.get("cashBalance", {}).values()),
            "fills": list(entities.get("fill", {}).values()),
            "quotes": list(self.engine.quotes.values()),
        }
