"""Tradovate user websocket: the reconnecting connection manager (:class:`TradovateSocket`).

Section numbers (§) refer to ``reference/tradovate.md``; the pure framing and parsing it uses
are in :mod:`.frames`.

:class:`TradovateSocket` connects with :mod:`websockets`, waits for ``o``, authorizes (§5.3),
calls ``on_open`` (the adapter sends ``user/syncrequest`` there, §5.6), sends ``[]`` every 2.5 s
(§5.5), matches request ids to futures, hands events to ``on_event`` in arrival order, and
reconnects with exponential back-off after a ``c`` frame, a ``shutdown`` event (§5.4), a drop,
or no frame at all for ``stale_s`` seconds; every reconnect authorizes and calls ``on_open``
again (resync). Requests answered with a penalty are waited out and resent with the ticket
(§3.1); ``s: 429`` raises :class:`~.errors.RateLimited` (§3.2).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from actors.broker.tradovate.errors import (
    CaptchaRequired,
    PenaltyTooLong,
    RateLimited,
    TradovateError,
    WsClosed,
    WsRequestError,
    parse_penalty,
)
from actors.broker.tradovate.frames import (
    HEARTBEAT,
    Event,
    FrameError,
    Response,
    classify,
    encode_request,
    parse_frame,
)

__all__ = ["TradovateSocket"]

log = logging.getLogger("justtrades.broker.tradovate.ws")


class TradovateSocket:
    """Reconnecting user websocket (module docstring).

    ``token`` returns a valid access token; ``refresh(old)`` a new one after ``authorize``
    answered 401. ``on_open`` runs after every successful authorize, before :attr:`ready` is
    set; wrap its requests in :meth:`hold` so that events arriving meanwhile are delivered after
    it. ``sleep`` only paces reconnects and penalties (heartbeats use real time).
    """

    def __init__(
        self,
        url: str,
        token: Callable[[], Awaitable[str]],
        on_event: Callable[[Event], None],
        *,
        refresh: Callable[[str], Awaitable[str]] | None = None,
        on_open: Callable[[TradovateSocket], Awaitable[None]] | None = None,
        heartbeat_s: float = 2.5,
        stale_s: float = 15.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 30.0,
        request_timeout_s: float = 15.0,
        max_penalty_wait_s: float = 120.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self._token = token
        self._refresh = refresh
        self._on_event = on_event
        self._on_open = on_open
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.max_penalty_wait_s = max_penalty_wait_s
        self._sleep = sleep
        self.ready = asyncio.Event()
        self._ws: Any = None
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[Response]] = {}
        self._held: list[Event] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.last_error: BaseException | None = None
        self.counts: dict[str, int] = dict.fromkeys(
            ("connects", "frames", "events", "heartbeats", "stale", "shutdowns", "closes"), 0
        )

    # ------------------------------------------------------------------ public

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        self._closing = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._fail_pending(WsClosed("socket closed"))

    async def drop(self) -> None:
        """Close the current connection (the manager reconnects); for tests and operators."""
        if self._ws is not None:
            await self._ws.close()

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Buffer events inside the block, deliver them in order when it ends."""
        self._held = []
        try:
            yield
        finally:
            held, self._held = self._held, None
            for event in held:
                self._dispatch(event)

    async def request(self, endpoint: str, body: Any = None, query: str = "") -> Any:
        """Send a request on the live connection and return its ``d``. Penalties are waited out
        and resent with the ticket (§3.1); 429 → RateLimited; other non-2xx → WsRequestError."""
        for _ in range(4):
            resp = await self._roundtrip(endpoint, body, query)
            if resp.status == 429:
                raise RateLimited(0.0, endpoint)
            if resp.status >= 300:
                raise WsRequestError(resp.status, endpoint, resp.data)
            penalty = parse_penalty(resp.data)
            if penalty is None:
                return resp.data
            if penalty.captcha:
                raise CaptchaRequired(penalty.p_time, endpoint)
            if penalty.p_time > self.max_penalty_wait_s or not isinstance(body, dict | None):
                raise PenaltyTooLong(penalty.p_time, endpoint)
            await self._sleep(penalty.p_time)
            body = {**(body or {}), "p-ticket": penalty.ticket}
        raise PenaltyTooLong(0.0, endpoint)

    # ------------------------------------------------------------------ internals

    async def _roundtrip(self, endpoint: str, body: Any, query: str) -> Response:
        ws = self._ws
        if ws is None:
            raise WsClosed(f"not connected ({endpoint})")
        request_id = next(self._ids)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await ws.send(encode_request(endpoint, request_id, query, body))
            return await asyncio.wait_for(future, self.request_timeout_s)
        except TimeoutError as exc:
            raise WsClosed(f"no answer to {endpoint} in {self.request_timeout_s}s") from exc
        except ConnectionClosed as exc:
            raise WsClosed(f"connection closed during {endpoint}") from exc
        finally:
            self._pending.pop(request_id, None)

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            opened = False
            try:
                async with ws_connect(
                    self.url, ping_interval=None, max_size=2**26, open_timeout=self.stale_s
                ) as ws:
                    self._ws = ws
                    opened = await self._session(ws)
            except asyncio.CancelledError:
                raise
            except (OSError, ConnectionClosed, TradovateError, TimeoutError) as exc:
                self.last_error = exc
                log.warning("tradovate websocket %s: %r", self.url, exc)
            except Exception as exc:  # keep the manager alive whatever went wrong
                self.last_error = exc
                log.exception("tradovate websocket session failed")
            finally:
                self._ws = None
                self.ready.clear()
                self._fail_pending(WsClosed("connection lost"))
            if self._closing:
                break
            failures = 0 if opened else failures + 1
            delay = min(self.backoff_max_s, self.backoff_initial_s * 2**failures)
            await self._sleep(delay)

    async def _session(self, ws: Any) -> bool:
        """One connection; returns True if it got as far as ready (resets the back-off)."""
        frame = parse_frame(await asyncio.wait_for(ws.recv(), self.stale_s))
        while frame.kind == "heartbeat":
            frame = parse_frame(await asyncio.wait_for(ws.recv(), self.stale_s))
        if frame.kind != "open":
            raise WsClosed(f"expected an 'o' frame, got {frame.kind}")
        self.counts["connects"] += 1
        reader = asyncio.get_running_loop().create_task(self._reader(ws))
        beater = asyncio.get_running_loop().create_task(self._heartbeats(ws))
        try:
            await self._authorize()
            if self._on_open is not None:
                await self._on_open(self)
            self.ready.set()
            await reader
            return True
        finally:
            for task in (reader, beater):
                task.cancel()
            await asyncio.gather(reader, beater, return_exceptions=True)
            with contextlib.suppress(Exception):
                await ws.close()

    async def _authorize(self) -> None:
        token = await self._token()
        resp = await self._roundtrip("authorize", token, "")
        if resp.status == 401 and self._refresh is not None:
            token = await self._refresh(token)
            resp = await self._roundtrip("authorize", token, "")
        if resp.status != 200:
            raise WsRequestError(resp.status, "authorize", resp.data)

    async def _heartbeats(self, ws: Any) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            await ws.send(HEARTBEAT)
            self.counts["heartbeats"] += 1

    async def _reader(self, ws: Any) -> None:
        """Read until the connection ends, is closed by the server, or goes stale; then fail
        the requests still waiting (they may have been executed)."""
        try:
            await self._read_frames(ws)
        finally:
            self._fail_pending(WsClosed("connection lost"))

    async def _read_frames(self, ws: Any) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(ws.recv(), self.stale_s)
            except TimeoutError:
                self.counts["stale"] += 1
                log.warning("tradovate websocket stale (%.1fs without a frame)", self.stale_s)
                return
            except ConnectionClosed:
                return
            self.counts["frames"] += 1
            try:
                frame = parse_frame(raw)
            except FrameError:
                log.warning("ignoring bad frame %r", raw[:200])
                continue
            if frame.kind == "close":
                self.counts["closes"] += 1
                log.warning("tradovate websocket closed: %s %s", frame.code, frame.reason)
                return
            shutdown = False
            for message in frame.messages:
                item = classify(message)
                if isinstance(item, Response):
                    future = self._pending.get(item.request_id)
                    if future is not None and not future.done():
                        future.set_result(item)
                elif isinstance(item, Event):
                    if item.kind == "shutdown":
                        self.counts["shutdowns"] += 1
                        log.warning("tradovate websocket shutdown: %r", item.data)
                        shutdown = True
                    else:
                        self._dispatch(item)
            if shutdown:
                return

    def _dispatch(self, event: Event) -> None:
        if self._held is not None:
            self._held.append(event)
            return
        self.counts["events"] += 1
        try:
            self._on_event(event)
        except Exception:
            log.exception("tradovate event handler failed on %r", event.kind)

    def _fail_pending(self, exc: BaseException) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(exc)
        self._pending.clear()
