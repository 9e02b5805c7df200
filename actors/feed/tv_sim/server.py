"""The TradingView simulator: quote websocket + scanner/control HTTP, on loopback, one event loop.

``TvSim`` is an async context manager: ``async with TvSim(config, symbols=...) as sim:`` starts
the quote socket (``websockets`` server at ``sim.ws_url``) and, unless ``http_port`` is None, the
scanner and control API (Starlette under uvicorn at ``sim.http_url``). Prices come from
``publish``/``publish_fields`` (tests drive them exactly), from ``play`` (a scripted list of ticks,
e.g. a ``ReplaySource``) or from ``walk`` (a ``SimulatedSource`` random walk).

Faults, switchable at run time here or over HTTP (:mod:`actors.feed.tv_sim.http_app`):
``drop_connections`` (abort the TCP connection, no close frame), ``stall_connections`` (the
connections open now send nothing ever again, heartbeats included, but stay open),
``send_malformed`` (a frame whose declared length overruns the message), ``send_protocol_error``
(``protocol_error`` message, socket left open for the client to act on), ``reject_symbol``
(``no_such_symbol`` for a listed symbol), ``set_scanner_down`` (scanner answers 503),
``set_ws_down`` (quote socket outage: connections aborted and refused) and
``expire_session`` / ``revoke_token`` (a logged-in session ends; its data turns delayed).

Logged-in users (§3.5): ``SimConfig.cookie_sessions`` maps a ``sessionid`` cookie to its
``sessionid_sign`` and auth token; ``GET /`` with both cookies serves a page embedding
``"auth_token":"<token>"`` (what M2301's ``getUser()`` scrapes), and that token streams.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import uvicorn
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.typing import Origin

from actors.feed.sources.base import Tick
from actors.feed.sources.simulated import SimulatedSource
from actors.feed.sources.tradingview_proto import encode_message
from actors.feed.tv_sim.http_app import create_app
from actors.feed.tv_sim.quote_ws import QuoteConnection
from actors.feed.tv_sim.state import Faults, SimConfig, SimMarket, SimStats
from actors.instruments import spec_for

__all__ = ["MALFORMED_FRAME", "TvSim"]

MALFORMED_FRAME = '~m~999~m~{"m":"qsd","p":[]}'
"""Declared length far beyond the payload: undecodable under §3.2 framing."""


class TvSim:
    """See the module docstring. ``symbols`` lists TradingView symbols, each with an optional
    first price; a symbol not listed (and not published to) is ``no_such_symbol``."""

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        symbols: Mapping[str, float | None] | Iterable[str] = (),
    ) -> None:
        self.config = config or SimConfig()
        self.market = SimMarket()
        self.faults = Faults()
        self.stats = SimStats()
        self.connections: set[QuoteConnection] = set()
        items = symbols.items() if isinstance(symbols, Mapping) else ((s, None) for s in symbols)
        for sym, price in items:
            self.market.list_symbol(sym, price)
        self._ws_server: Server | None = None
        self._http: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.ws_port = self.config.ws_port
        self.http_port = self.config.http_port

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.config.host}:{self.ws_port}{self.config.ws_path}"

    @property
    def http_url(self) -> str:
        return f"http://{self.config.host}:{self.http_port}"

    async def start(self) -> None:
        cfg = self.config
        self._ws_server = await serve(
            self._handle,
            cfg.host,
            cfg.ws_port,
            process_request=self._check_path,
            origins=None if cfg.require_origin is None else [Origin(cfg.require_origin)],
            ping_interval=None,
            compression=None,
        )
        self.ws_port = next(iter(self._ws_server.sockets)).getsockname()[1]
        if cfg.http_port is not None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((cfg.host, cfg.http_port))
            self.http_port = sock.getsockname()[1]
            self._http = uvicorn.Server(
                uvicorn.Config(create_app(self), log_level="warning", lifespan="off")
            )
            self._http_task = asyncio.get_running_loop().create_task(self._http.serve([sock]))
            while not self._http.started:
                if self._http_task.done():
                    await self._http_task  # surfaces the startup error
                    raise RuntimeError("scanner HTTP server exited during startup")
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._http_task
        if self._ws_server is not None:
            for conn in list(self.connections):
                if conn.ws.transport is not None:
                    conn.ws.transport.abort()  # a stalled client would delay a polite close
            self._ws_server.close()
            await self._ws_server.wait_closed()

    async def serve_forever(self) -> None:
        """Run until cancelled or the HTTP server exits (uvicorn handles Ctrl-C); then ``stop``."""
        try:
            if self._http_task is not None:
                await self._http_task
            else:
                await asyncio.Event().wait()
        finally:
            await self.stop()

    async def __aenter__(self) -> TvSim:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] != self.config.ws_path:
            return Response(404, "Not Found", Headers(), b"not found\n")
        if self.faults.ws_down:
            self.stats.refused += 1
            return Response(503, "Service Unavailable", Headers(), b"simulated outage\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        conn = QuoteConnection(ws, self.config, self.market, self.faults, self.stats)
        self.connections.add(conn)
        try:
            await conn.serve()
        finally:
            self.connections.discard(conn)

    # -- prices ---------------------------------------------------------------------------------

    async def publish(self, tick: Tick) -> None:
        """One trade print on ``tick.symbol`` (a TradingView symbol), pushed as qsd deltas."""
        self.market.apply_tick(tick)
        await self._changed(tick.symbol)

    async def publish_fields(self, symbol: str, **fields: Any) -> None:
        """Change arbitrary quote fields (e.g. ``bid``/``ask`` without a trade)."""
        self.market.apply_fields(symbol, fields)
        await self._changed(symbol)

    async def _changed(self, symbol: str) -> None:
        for conn in list(self.connections):
            await conn.market_changed(symbol)

    def play(self, ticks: Iterable[Tick], interval_s: float = 0.0) -> asyncio.Task[None]:
        """Publish ``ticks`` in order, ``interval_s`` apart (0: just yield between ticks)."""

        async def run() -> None:
            for tick in ticks:
                await self.publish(tick)
                await asyncio.sleep(interval_s)

        return self._spawn(run())

    def walk(
        self, start: Mapping[str, float], interval_s: float = 1.0, seed: int = 0
    ) -> asyncio.Task[None]:
        """Endless ``SimulatedSource`` random walk from ``start`` (TradingView symbols -> price),
        one print every ``interval_s``, stamped with the wall clock in whole seconds as a live
        server would (``lp_time`` is epoch seconds, §3.4)."""
        table = {s: (p, spec_for(s).tick_size) for s, p in start.items()}
        for sym in table:
            self.market.list_symbol(sym)
        prices = iter(SimulatedSource(table, seed=seed))
        return self.play(
            (Tick(t.symbol, float(int(time.time())), t.price) for t in prices), interval_s
        )

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def subscribers(self, symbol: str) -> int:
        """Connections that have ``symbol`` subscribed with its snapshot complete."""
        return sum(1 for c in self.connections if c.subscribed(symbol))

    # -- faults ---------------------------------------------------------------------------------

    async def drop_connections(self) -> int:
        """Abort every open connection (no close handshake, like a network drop)."""
        conns = list(self.connections)
        for conn in conns:
            if conn.ws.transport is not None:
                conn.ws.transport.abort()
        return len(conns)

    def stall_connections(self) -> int:
        """The connections open now go silent for good; new connections are healthy."""
        for conn in self.connections:
            conn.stalled = True
        return len(self.connections)

    async def _send_all(self, text: str) -> int:
        sent = 0
        for conn in list(self.connections):
            sent += await conn.send(text)
        return sent

    async def send_malformed(self) -> int:
        return await self._send_all(MALFORMED_FRAME)

    async def send_protocol_error(self) -> int:
        return await self._send_all(encode_message("protocol_error", ["sim: injected fault"]))

    def reject_symbol(self, symbol: str, on: bool = True) -> None:
        """``no_such_symbol`` for ``symbol`` on its next subscription (and in the scanner)."""
        if on:
            self.faults.rejected.add(symbol)
        else:
            self.faults.rejected.discard(symbol)

    def set_scanner_down(self, down: bool = True) -> None:
        self.faults.scanner_down = down

    async def set_ws_down(self, down: bool = True) -> int:
        """An outage of the quote socket: open connections are aborted and new ones refused
        (HTTP 503 on the upgrade) until switched back; the scanner is unaffected."""
        self.faults.ws_down = down
        return await self.drop_connections() if down else 0

    async def revoke_token(self, token: str) -> int:
        """The token stops buying real-time data: removed from ``accepted_tokens`` and from
        the cookie sessions; open connections using it turn delayed. Returns those connections."""
        cfg = self.config
        cfg.accepted_tokens = frozenset(t for t in cfg.accepted_tokens if t != token)
        for sid in [sid for sid, (_, t) in cfg.cookie_sessions.items() if t == token]:
            del cfg.cookie_sessions[sid]
        affected = [c for c in self.connections if c.token == token]
        for conn in affected:
            await conn.recheck_token()
        return len(affected)

    async def expire_session(self, sessionid: str) -> int:
        """The browser session behind ``sessionid`` ends (logout, expiry): ``GET /`` no longer
        carries its token and the token is revoked (see :meth:`revoke_token`)."""
        found = self.config.cookie_sessions.get(sessionid)
        if found is None:
            return 0
        return await self.revoke_token(found[1])

    def state(self) -> dict[str, Any]:
        """Counters, faults, open connections and current last prices (``GET /sim/state``)."""
        return {
            "ws_url": self.ws_url,
            "open_connections": len(self.connections),
            "ws_down": self.faults.ws_down,
            "stats": self.stats.as_dict(),
            "faults": {
                "rejected": sorted(self.faults.rejected),
                "scanner_down": self.faults.scanner_down,
                "stalled_connections": sum(c.stalled for c in self.connections),
            },
            "last": {s: q.get("lp") for s, q in self.market.quotes.items()},
        }
