"""TradingView quote websocket client: connect, subscribe, merge deltas, emit ticks, reconnect.

The wire format lives in :mod:`actors.feed.sources.tradingview_proto` (pure); this module is the
asyncio transport around it (reference ``/work/shared/reference/tradingview.md`` §3).

Behaviour, and why:

- **Handshake** (§3.3, §3.5): ``set_auth_token`` (``unauthorized_user_token`` unless a token is
  configured), ``quote_create_session``, ``quote_set_fields``, ``quote_add_symbols``. Every
  connection gets a fresh quote session and a fresh ``QuoteBook``, and re-subscribes *every*
  symbol added so far, because the server keeps no state across connections.
- **Heartbeats** (§3.2): each ``~h~N`` is echoed back framed identically, at once.
- **Ticks**: one ``Tick(symbol, lp_time, lp)`` per subscribed symbol whenever the merged snapshot's
  last price *or* its time differs from the last tick emitted for that symbol. The comparison is
  kept across reconnects, so the full snapshot a new connection starts with does not repeat the
  last tick. ``lp_time`` is epoch seconds (§3.4); when a snapshot has no ``lp_time`` the local
  receive time is used (UNCONFIRMED whether the server ever omits it alongside ``lp``).
- **Data quality**: ``update_mode`` is recorded per symbol (``streaming`` = real time,
  ``delayed_streaming_N`` = N seconds late, §3.4) and shown in :meth:`TradingViewClient.status`,
  so an anonymous (delayed) feed is never mistaken for a live one. ``s: "error"`` qsd replies
  (``no_such_symbol``) are surfaced per symbol.
- **Faults**: ``protocol_error`` / ``critical_error`` end the connection (§3.4). A websocket
  message that does not decode (§3.2 framing) is counted and skipped: websocket message
  boundaries are intact, so the next message still parses and there is no reason to drop good
  data. No inbound frame for ``stale_after_s`` (TVSDK uses 30 s, §3.2) means a silent stall: the
  connection is dropped and counted. Every lost connection is retried with capped exponential
  back-off with jitter. The back-off resets only after a connection that delivered quote data
  (``qsd``/``quote_completed``) and did not end in a fatal message, so a server that accepts and
  then always fails (hello, then ``protocol_error``) is retried ever more slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, WebSocketException
from websockets.typing import Origin

from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview_proto import (
    ANONYMOUS_TOKEN,
    HeartbeatFrame,
    MessageFrame,
    ProtocolError,
    QuoteBook,
    QuoteUpdate,
    RawFrame,
    auth_messages,
    decode,
    delay_seconds,
    encode_message,
    heartbeat_reply,
    is_fatal,
    new_session_id,
    subscribe_messages,
)
from actors.instruments import CONTRACTS, parse_symbol

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_ORIGIN",
    "DEFAULT_URL",
    "FatalServerMessage",
    "StaleStream",
    "TradingViewClient",
    "TradingViewConfig",
    "backoff_delay",
    "tv_symbol",
]

log = logging.getLogger("justtrades.feed.tradingview")

DEFAULT_URL = "wss://data.tradingview.com/socket.io/websocket?from=chart&type=chart"
"""§3.1: host and path from TVDF/M2301, query string as M2301 sends it."""

DEFAULT_ORIGIN = "https://www.tradingview.com"
"""§3.1: the Origin M2301, TVS and TVSDK send. Whether the server enforces it: UNCONFIRMED."""

DEFAULT_FIELDS: tuple[str, ...] = (
    "lp", "lp_time", "ch", "chp", "bid", "ask", "volume", "update_mode", "short_name", "exchange",
)  # fmt: skip
"""§3.3 ``quote_set_fields``: what a price feed needs, plus identity fields for status."""


def tv_symbol(symbol: str, on: date | None = None) -> str:
    """TradingView symbol for one of ours (§3.7): ``EXCHANGE:ROOT<n>!`` or ``EXCHANGE:ROOT<M><YYYY>``.

    - Continuous ``MNQ1!`` / bare ``MNQ`` -> ``CME_MINI:MNQ1!``; ``MNQ2!`` -> ``CME_MINI:MNQ2!``.
    - Explicit ``MNQZ5`` / ``MNQZ25`` / ``MNQZ2025`` -> ``CME_MINI:MNQZ2025``. The four-digit year
      form for a single contract is what TradingView charts show, but the reference only lists
      continuous symbols: UNCONFIRMED. A one-digit year is resolved against ``on`` (default
      today) by the rule in :mod:`actors.instruments`.
    - The exchange is the prefix the caller wrote (without TradingView's ``_DL`` delayed suffix,
      which is a display artefact), else the root's home exchange in ``CONTRACTS``, whose
      prefixes are exactly the ones §3.7 lists (micro gold: ``COMEX`` vs ``COMEX_MINI`` is
      UNCONFIRMED; we send ``COMEX:MGC...``).

    Raises ``actors.instruments.UnknownSymbol`` for anything that is not one of our contracts.
    """
    parsed = parse_symbol(symbol, on=on)
    exchange = parsed.exchange or CONTRACTS[parsed.root].exchange
    if parsed.continuous_index is not None:
        return f"{exchange}:{parsed.root}{parsed.continuous_index}!"
    return f"{exchange}:{parsed.root}{parsed.month_code}{parsed.year}"


def backoff_delay(
    attempt: int,
    rng: random.Random,
    initial_s: float = 0.5,
    factor: float = 2.0,
    max_s: float = 30.0,
    jitter: float = 0.25,
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based): ``min(max_s, initial_s * factor**n)``
    reduced by a random share of up to ``jitter`` (so many clients do not reconnect in lock-step,
    and the cap is never exceeded)."""
    base = min(max_s, initial_s * factor ** min(attempt, 64))
    return base * (1.0 - jitter * rng.random())


class StaleStream(Exception):
    """No frame (not even a heartbeat) arrived within ``stale_after_s``."""


class FatalServerMessage(Exception):
    """The server sent ``protocol_error`` or ``critical_error`` (§3.4)."""

    def __init__(self, method: str, params: list[Any]) -> None:
        super().__init__(f"{method}: {params!r}")
        self.method = method
        self.params = params


_COUNTERS = (
    "connects", "disconnects", "stale", "fatal", "malformed", "heartbeats", "ticks",
    "connect_failures", "callback_errors",
)  # fmt: skip


@dataclass(frozen=True)
class TradingViewConfig:
    """Connection settings; tests shorten the timers, production keeps the defaults."""

    url: str = DEFAULT_URL
    origin: str | None = DEFAULT_ORIGIN
    auth_token: str = ANONYMOUS_TOKEN
    fields: tuple[str, ...] = DEFAULT_FIELDS
    stale_after_s: float = 30.0
    open_timeout_s: float = 10.0
    close_timeout_s: float = 2.0
    backoff_initial_s: float = 0.5
    backoff_factor: float = 2.0
    backoff_max_s: float = 30.0
    backoff_jitter: float = 0.25
    max_message_bytes: int = 4 * 1024 * 1024


@dataclass
class _SymbolState:
    """Per TradingView symbol: which of our symbols asked for it and what we last saw."""

    ours: list[str]
    update_mode: str | None = None
    error: str | None = None
    completed: bool = False
    last_price: float | None = None
    last_time: float | None = None
    emitted: tuple[float, Any] | None = None  # (lp, lp_time) of the last tick emitted


class TradingViewClient:
    """One quote websocket, kept alive. ``run`` blocks until ``stop``; see the module docstring."""

    def __init__(
        self,
        symbols: Iterable[str] = (),
        config: TradingViewConfig | None = None,
        *,
        on: date | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config or TradingViewConfig()
        self._on = on
        self._rng = rng or random.Random()
        self._clock = clock
        self._symbols: dict[str, _SymbolState] = {}  # keyed by TradingView symbol
        self._ws: ClientConnection | None = None
        self._session: str | None = None
        self._stopping = asyncio.Event()
        self._state = "idle"
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._last_error: str | None = None
        self._hello: dict[str, Any] | None = None
        self._last_frame_at: float | None = None
        self._healthy = False  # this connection delivered quote data
        self._attempt = 0  # consecutive reconnects without a healthy connection
        self._register(symbols)

    # -- public API -----------------------------------------------------------------------------

    async def add_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Subscribe more symbols; live at once when connected, and on every reconnect.

        Returns the TradingView symbols that were new. Raises ``UnknownSymbol`` (before changing
        anything) for a symbol that is not one of our contracts.
        """
        new = self._register(symbols)
        ws, session = self._ws, self._session
        if new and ws is not None and session is not None:
            with contextlib.suppress(WebSocketException, OSError):  # the next connect resends
                await ws.send(encode_message("quote_add_symbols", [session, *new]))
        return new

    async def stop(self) -> None:
        """Make ``run`` return: closes the live connection, cancels any back-off wait.

        A stopped client stays stopped (``run`` returns at once); build a new one to restart.
        """
        self._stopping.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()

    def status(self) -> dict[str, Any]:
        """Connection state, counters, and per symbol (ours) the data quality and last price."""
        symbols: dict[str, Any] = {}
        for tv, st in self._symbols.items():
            for ours in st.ours:
                symbols[ours] = {
                    "tv_symbol": tv,
                    "update_mode": st.update_mode,
                    "delayed": None if st.update_mode is None else st.update_mode != "streaming",
                    "delay_s": delay_seconds(st.update_mode),
                    "error": st.error,
                    "completed": st.completed,
                    "last_price": st.last_price,
                    "last_time": st.last_time,
                }
        return {
            "source": "tradingview",
            "url": self.config.url,
            "state": self._state,
            "reconnects": max(0, self._counts["connects"] - 1),
            "retry_attempt": self._attempt,
            "anonymous": self.config.auth_token == ANONYMOUS_TOKEN,
            **self._counts,
            "last_error": self._last_error,
            "last_frame_at": self._last_frame_at,
            "server_release": (self._hello or {}).get("release"),
            "symbols": symbols,
        }

    async def run(self, on_tick: Callable[[Tick], None]) -> None:
        """Connect and stream until :meth:`stop`, reconnecting after any failure.

        ``on_tick`` is called synchronously in the receive loop; an exception it raises is logged
        and counted (``callback_errors``) but does not drop the connection.
        """
        while not self._stopping.is_set():
            self._state = "connecting"
            self._healthy = fatal = False
            try:
                await self._connection(on_tick)
            except StaleStream as e:
                self._counts["stale"] += 1
                self._note(e)
            except FatalServerMessage as e:
                self._counts["fatal"] += 1
                fatal = True
                self._note(e)
            except (OSError, TimeoutError, InvalidHandshake) as e:
                self._counts["connect_failures"] += 1
                self._note(e)
            except WebSocketException as e:
                self._note(e)
            finally:
                self._ws, self._session = None, None
            if self._stopping.is_set():
                break
            if self._healthy and not fatal:
                self._attempt = 0
            self._state = "backoff"
            delay = backoff_delay(
                self._attempt,
                self._rng,
                self.config.backoff_initial_s,
                self.config.backoff_factor,
                self.config.backoff_max_s,
                self.config.backoff_jitter,
            )
            self._attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
        self._state = "stopped"

    # -- internals ------------------------------------------------------------------------------

    def _register(self, symbols: Iterable[str]) -> list[str]:
        mapped = [(s, tv_symbol(s, self._on)) for s in symbols]  # all-or-nothing validation
        new: list[str] = []
        for ours, tv in mapped:
            st = self._symbols.get(tv)
            if st is None:
                self._symbols[tv] = _SymbolState(ours=[ours])
                new.append(tv)
            elif ours not in st.ours:
                st.ours.append(ours)
        return new

    def _note(self, exc: BaseException) -> None:
        if self._stopping.is_set():
            return  # our own close on stop, not a failure
        self._last_error = f"{type(exc).__name__}: {exc}"
        log.warning("tradingview connection lost: %s", self._last_error)

    async def _connection(self, on_tick: Callable[[Tick], None]) -> None:
        """One connection's life; returns normally when the server closes cleanly or on stop."""
        cfg = self.config
        async with connect(
            cfg.url,
            origin=Origin(cfg.origin) if cfg.origin else None,
            open_timeout=cfg.open_timeout_s,
            close_timeout=cfg.close_timeout_s,
            ping_interval=None,  # liveness is the application heartbeat + stale timer (§3.2)
            max_size=cfg.max_message_bytes,
            compression=None,
        ) as ws:
            self._ws = ws
            self._counts["connects"] += 1
            session = new_session_id(self._rng)
            book = QuoteBook()
            for st in self._symbols.values():
                st.completed = False
            symbols = list(self._symbols)
            if symbols:
                out = auth_messages(cfg.auth_token) + subscribe_messages(
                    session, symbols, list(cfg.fields)
                )
            else:  # nothing yet: open the session, symbols follow via add_symbols
                out = [
                    *auth_messages(cfg.auth_token),
                    encode_message("quote_create_session", [session]),
                    encode_message("quote_set_fields", [session, *cfg.fields]),
                ]
            for msg in out:
                await ws.send(msg)
            # Symbols added while the handshake was being sent were not in it; from here on
            # add_symbols sends live (no await between these two lines).
            late = [tv for tv in self._symbols if tv not in symbols]
            self._session = session
            if late:
                await ws.send(encode_message("quote_add_symbols", [session, *late]))
            self._state = "connected"
            try:
                while not self._stopping.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), cfg.stale_after_s)
                    except TimeoutError:
                        raise StaleStream(f"no frame for {cfg.stale_after_s} s") from None
                    self._last_frame_at = self._clock()
                    await self._message(ws, session, book, raw, on_tick)
            finally:
                self._counts["disconnects"] += 1

    async def _message(
        self,
        ws: ClientConnection,
        session: str,
        book: QuoteBook,
        raw: str | bytes,
        on_tick: Callable[[Tick], None],
    ) -> None:
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            frames = decode(text)
        except (ProtocolError, UnicodeDecodeError) as e:
            self._counts["malformed"] += 1
            self._last_error = f"malformed message skipped: {e}"
            log.warning("tradingview: %s", self._last_error)
            return
        for frame in frames:
            if isinstance(frame, HeartbeatFrame):
                await ws.send(heartbeat_reply(frame))
                self._counts["heartbeats"] += 1
            elif isinstance(frame, RawFrame):
                if isinstance(frame.data, dict) and "session_id" in frame.data:
                    self._hello = frame.data  # §3.1 hello
            elif is_fatal(frame):
                raise FatalServerMessage(frame.method, frame.params)
            elif isinstance(frame, MessageFrame):
                self._quote_message(session, book, frame, on_tick)

    def _quote_message(
        self, session: str, book: QuoteBook, frame: MessageFrame, on_tick: Callable[[Tick], None]
    ) -> None:
        if frame.method not in ("qsd", "quote_completed"):
            return
        if not frame.params or frame.params[0] != session:
            return  # another session's data (none expected; ignore rather than misattribute)
        try:
            update = book.handle(frame)
        except ProtocolError as e:
            self._counts["malformed"] += 1
            self._last_error = f"malformed {frame.method} skipped: {e}"
            return
        self._healthy = True
        symbol = frame.params[1].get("n") if frame.method == "qsd" else frame.params[1]
        st = self._symbols.get(symbol) if isinstance(symbol, str) else None
        if st is None:
            return
        if frame.method == "quote_completed":
            st.completed = True
            return
        st.error = book.error(symbol)
        if update is not None:
            self._emit(st, update, on_tick)

    def _emit(self, st: _SymbolState, update: QuoteUpdate, on_tick: Callable[[Tick], None]) -> None:
        st.update_mode = update.update_mode
        lp, lp_time = update.fields.get("lp"), update.fields.get("lp_time")
        if isinstance(lp, bool) or not isinstance(lp, int | float):
            return
        key = (float(lp), lp_time)
        if key == st.emitted:
            return
        st.emitted = key
        valid_time = isinstance(lp_time, int | float) and not isinstance(lp_time, bool)
        ts = float(lp_time) if valid_time else self._clock()
        st.last_price, st.last_time = float(lp), ts
        for ours in st.ours:
            self._counts["ticks"] += 1
            try:
                on_tick(Tick(ours, ts, float(lp)))
            except Exception:
                self._counts["callback_errors"] += 1
                log.exception("tradingview: on_tick failed for %s", ours)
