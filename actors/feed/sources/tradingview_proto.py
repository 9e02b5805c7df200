"""TradingView real-time websocket protocol: framing, heartbeats and quote merging, pure.

No sockets and no asyncio here: every function maps strings to strings or frames, so the transport
(a websocket client, a fake server in tests) is a thin loop around this module.

Rules, with the reference section they come from (``/work/shared/reference/tradingview.md``):

- Framing (§3.2): every payload is wrapped ``~m~<len>~m~<payload>``; one websocket message may
  carry several frames back-to-back. ``<len>`` counts **UTF-16 code units** (JavaScript
  ``String.length``), not bytes and not Python code points: an astral character counts 2.
  Frames are cut by the declared length, never by searching for ``~m~`` (a payload may contain
  ``~m~`` itself), and a declared length that is missing, not decimal, too large for the data,
  splitting a surrogate pair, or followed by anything but another frame is a ``ProtocolError``.
- Heartbeats (§3.2): the server sends ``~m~<n>~m~~h~<N>``; the client echoes the same payload
  back, framed identically (``heartbeat_reply``). Heartbeat period: **UNCONFIRMED** (~10 s seen).
- Messages (§3.2): JSON ``{"m": <method>, "p": [<params>]}``. The first server message (the
  "hello", §3.1) is JSON without ``m``; it, and any non-JSON payload, decodes to ``RawFrame``.
- Client handshake (§3.3, §3.5): ``set_auth_token [token]`` (``"unauthorized_user_token"`` for
  anonymous, delayed data), then ``quote_create_session [qs]``, ``quote_set_fields [qs, f...]``,
  ``quote_add_symbols [qs, sym...]``. Session ids are ``qs_`` + 12 random characters.
- Quote data (§3.4): ``qsd`` with ``p = [qs, {"n": sym, "s": "ok"|"error", "v": {...}}]`` carries
  **deltas** merged into a per-symbol snapshot (``QuoteBook``). Unknown symbol: ``s: "error"``,
  ``errmsg: "no_such_symbol"``, empty ``v``. ``quote_completed [qs, sym]`` ends the initial
  snapshot. ``protocol_error`` and ``critical_error`` are fatal (§3.4).
"""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = [
    "ANONYMOUS_TOKEN",
    "FATAL_METHODS",
    "Frame",
    "HeartbeatFrame",
    "MessageFrame",
    "ProtocolError",
    "QuoteBook",
    "QuoteUpdate",
    "RawFrame",
    "SymbolStatus",
    "auth_messages",
    "decode",
    "delay_seconds",
    "encode",
    "encode_message",
    "heartbeat_reply",
    "is_fatal",
    "new_session_id",
    "subscribe_messages",
    "utf16_len",
]

ANONYMOUS_TOKEN = "unauthorized_user_token"
"""§3.3/§3.5: the token anonymous clients send; data is then delayed."""

FATAL_METHODS = frozenset({"protocol_error", "critical_error"})
"""§3.4: server methods after which the connection is unusable (M2301 closes, TVSDK reconnects)."""

_SEP = "~m~"
_HEARTBEAT_PREFIX = "~h~"
_MAX_LEN_DIGITS = 9  # a frame over ~1e9 code units is garbage, and int() stays cheap
_LEN_RE = re.compile(rf"[0-9]{{1,{_MAX_LEN_DIGITS}}}")  # ASCII digits only, unlike str.isdigit


class ProtocolError(ValueError):
    """A websocket message that does not follow the §3.2 framing, or a malformed §3.4 message."""


# --------------------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class HeartbeatFrame:
    """``~h~N`` payload (§3.2). ``payload`` is echoed verbatim; ``number`` is N when decimal."""

    payload: str
    number: int | None


@dataclass(frozen=True, slots=True)
class MessageFrame:
    """A JSON ``{"m": method, "p": params}`` payload (§3.2)."""

    payload: str
    method: str
    params: list[Any]


@dataclass(frozen=True, slots=True)
class RawFrame:
    """Any other payload: the server hello (JSON without ``m``, §3.1) or non-JSON text.

    ``data`` is the parsed JSON value when the payload is JSON, else ``None``.
    """

    payload: str
    data: Any = None


Frame = HeartbeatFrame | MessageFrame | RawFrame


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, i.e. JavaScript ``String.length`` (§3.2).

    Astral characters count 2; a lone surrogate (possible in a Python ``str``) counts 1, as in JS.
    """
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def encode(msg: str) -> str:
    """Wrap one payload as ``~m~<len>~m~<payload>`` with ``len`` in UTF-16 code units (§3.2)."""
    return f"{_SEP}{utf16_len(msg)}{_SEP}{msg}"


def encode_message(method: str, params: list[Any]) -> str:
    """Frame the JSON message ``{"m": method, "p": params}`` (§3.2, §3.3).

    JSON is compact and not ASCII-escaped: the UTF-16 length makes non-ASCII text safe (TVSDK
    sidesteps the question with ``ensure_ascii``; either form is valid JSON for the server).
    """
    body = json.dumps({"m": method, "p": params}, separators=(",", ":"), ensure_ascii=False)
    return encode(body)


def _take_utf16(data: str, start: int, units: int) -> int:
    """Index in ``data`` just after ``units`` UTF-16 code units from ``start``; ProtocolError if
    the data is too short or the count ends inside a surrogate pair (§3.2)."""
    # Each code point is 1 or 2 units, so the frame ends at or before start + units.
    end = min(start + units, len(data))
    have = utf16_len(data[start:end])
    if have == units:  # fast path (always taken when there are no astral characters)
        return end
    if have < units:  # only possible when clamped to the end of the data
        raise ProtocolError(
            f"truncated frame: declared {units} UTF-16 units at offset {start}, only {have} available"
        )
    count = 0
    i = start
    while count < units:  # terminates: data[start:end] holds more than `units` units
        count += 2 if ord(data[i]) > 0xFFFF else 1
        i += 1
    if count != units:
        raise ProtocolError(
            f"declared length {units} at offset {start} splits a surrogate pair (astral character)"
        )
    return i


def _classify(payload: str) -> Frame:
    if payload.startswith(_HEARTBEAT_PREFIX):
        rest = payload[len(_HEARTBEAT_PREFIX) :]
        number = (
            int(rest) if rest and len(rest) <= 18 and rest.isascii() and rest.isdigit() else None
        )
        return HeartbeatFrame(payload=payload, number=number)
    try:
        data = json.loads(payload)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so is int overflow
        return RawFrame(payload=payload)
    if isinstance(data, dict) and isinstance(data.get("m"), str):
        params = data.get("p", [])
        if not isinstance(params, list):
            raise ProtocolError(f"message {data['m']!r}: 'p' is {type(params).__name__}, not list")
        return MessageFrame(payload=payload, method=data["m"], params=params)
    return RawFrame(payload=payload, data=data)


def decode(data: str) -> list[Frame]:
    """Split one websocket text message into frames (§3.2).

    Cuts by the declared UTF-16 length, so it always advances and terminates. An empty message
    yields no frames. Raises ``ProtocolError`` on: text not starting with ``~m~``, a missing or
    non-ASCII-decimal length, a missing second ``~m~``, a truncated payload, a length ending inside
    a surrogate pair, trailing garbage between or after frames, or a JSON message whose ``p`` is
    not a list.
    """
    frames: list[Frame] = []
    pos = 0
    n = len(data)
    while pos < n:
        if not data.startswith(_SEP, pos):
            raise ProtocolError(f"expected '~m~' at offset {pos}, got {data[pos : pos + 12]!r}")
        m = _LEN_RE.match(data, pos + len(_SEP))
        if m is None:
            raise ProtocolError(f"missing or non-decimal frame length at offset {pos + len(_SEP)}")
        if not data.startswith(_SEP, m.end()):
            raise ProtocolError(f"expected '~m~' after frame length at offset {m.end()}")
        units = int(m.group())
        start = m.end() + len(_SEP)
        end = _take_utf16(data, start, units)
        frames.append(_classify(data[start:end]))
        pos = end
    return frames


def heartbeat_reply(frame: Frame) -> str:
    """The text to send back for a heartbeat: its payload framed identically (§3.2).

    ``~m~4~m~~h~7`` -> ``~m~4~m~~h~7``. Raises ``TypeError`` for a non-heartbeat frame.
    """
    if not isinstance(frame, HeartbeatFrame):
        raise TypeError(f"not a heartbeat frame: {frame!r}")
    return encode(frame.payload)


def is_fatal(frame: Frame) -> bool:
    """True for ``protocol_error`` / ``critical_error`` messages (§3.4)."""
    return isinstance(frame, MessageFrame) and frame.method in FATAL_METHODS


# ------------------------------------------------------------------------------------ handshake


def new_session_id(rng: random.Random, prefix: str = "qs_") -> str:
    """``qs_`` + 12 random ASCII letters (§3.3). Charset (letters only): **UNCONFIRMED**; the
    reference only says "12 random chars"; letters are accepted by all clients cited."""
    return prefix + "".join(rng.choice(string.ascii_letters) for _ in range(12))


def auth_messages(token: str = ANONYMOUS_TOKEN) -> list[str]:
    """Frames to authenticate: ``set_auth_token [token]`` (§3.3, §3.5)."""
    return [encode_message("set_auth_token", [token])]


def subscribe_messages(session: str, symbols: list[str], fields: list[str]) -> list[str]:
    """Frames to open a quote session and subscribe (§3.3), in the order the cited clients use:
    ``quote_create_session``, ``quote_set_fields`` (omitted when ``fields`` is empty, the server
    then sends its default field set — **UNCONFIRMED**), ``quote_add_symbols``.

    Symbols are sent as given (plain ``EXCH:SYM`` or a ``={...}`` JSON spec, §3.3); ``qsd``
    replies name them with the same key (§3.4).
    """
    if not symbols:
        raise ValueError("subscribe_messages needs at least one symbol")
    out = [encode_message("quote_create_session", [session])]
    if fields:
        out.append(encode_message("quote_set_fields", [session, *fields]))
    out.append(encode_message("quote_add_symbols", [session, *symbols]))
    return out


# ---------------------------------------------------------------------------------- quote book


def delay_seconds(update_mode: str | None) -> int | None:
    """Delay implied by ``update_mode`` (§3.4): ``streaming`` -> 0,
    ``delayed_streaming_<N>`` -> N (600 = 10 min, 900 = 15 min per §3.4), otherwise ``None``
    (unknown, absent, or ``endofday``)."""
    if update_mode == "streaming":
        return 0
    if update_mode and update_mode.startswith("delayed_streaming_"):
        tail = update_mode.removeprefix("delayed_streaming_")
        if tail.isascii() and tail.isdigit():
            return int(tail)
    return None


@dataclass(frozen=True, slots=True)
class SymbolStatus:
    """Last ``s`` status of a symbol (§3.4); ``errmsg`` e.g. ``"no_such_symbol"`` on error."""

    status: str
    errmsg: str | None = None


@dataclass(frozen=True, slots=True)
class QuoteUpdate:
    """One merged ``qsd`` update (§3.4).

    ``fields`` is the full merged snapshot after this delta (read-only view of a copy);
    ``delta`` only what this message carried. ``lp_changed`` is true when the delta has ``lp``
    and it differs from the previous snapshot value (or there was none). ``delayed`` is
    ``True``/``False`` when ``update_mode`` is known (anything but ``streaming`` counts as
    delayed, including ``endofday``), ``None`` when the snapshot has no ``update_mode``.
    """

    session: str
    symbol: str
    fields: Mapping[str, Any]
    delta: Mapping[str, Any]
    lp_changed: bool
    update_mode: str | None
    delayed: bool | None

    @property
    def lp(self) -> Any:
        return self.fields.get("lp")


@dataclass
class QuoteBook:
    """Per-symbol snapshots built from ``qsd`` deltas, plus per-symbol status (§3.4)."""

    snapshots: dict[str, dict[str, Any]] = field(default_factory=dict)
    statuses: dict[str, SymbolStatus] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)

    def apply(self, params: list[Any]) -> QuoteUpdate | None:
        """Merge one ``qsd`` params list ``[qs, {"n", "s", "v"}]`` (§3.4).

        Returns the update, or ``None`` when the server reported an error for the symbol
        (``s: "error"``, e.g. ``errmsg: "no_such_symbol"``); the status is kept in
        ``statuses`` and the snapshot is left untouched. Raises ``ProtocolError`` when the
        params are not in the §3.4 shape.
        """
        if (
            not isinstance(params, list)
            or len(params) < 2
            or not isinstance(params[0], str)
            or not isinstance(params[1], dict)
        ):
            raise ProtocolError(f"qsd params not [session, {{...}}]: {params!r}")
        session, body = params[0], params[1]
        symbol = body.get("n")
        if not isinstance(symbol, str):
            raise ProtocolError(f"qsd without symbol key 'n': {body!r}")
        status = body.get("s", "ok")  # absent "s": treated as ok — UNCONFIRMED
        if not isinstance(status, str):
            raise ProtocolError(f"qsd {symbol!r}: status 's' is not a string: {status!r}")
        if status != "ok":
            errmsg = body.get("errmsg")
            self.statuses[symbol] = SymbolStatus(
                status=status, errmsg=errmsg if isinstance(errmsg, str) else None
            )
            return None
        values = body.get("v", {})
        if not isinstance(values, dict):
            raise ProtocolError(f"qsd {symbol!r}: values 'v' is not an object: {values!r}")
        self.statuses[symbol] = SymbolStatus(status="ok")
        snap = self.snapshots.setdefault(symbol, {})
        lp_changed = "lp" in values and ("lp" not in snap or snap["lp"] != values["lp"])
        snap.update(values)
        mode = snap.get("update_mode")
        mode = mode if isinstance(mode, str) else None
        return QuoteUpdate(
            session=session,
            symbol=symbol,
            fields=MappingProxyType(dict(snap)),
            delta=MappingProxyType(dict(values)),
            lp_changed=lp_changed,
            update_mode=mode,
            delayed=None if mode is None else mode != "streaming",
        )

    def complete(self, params: list[Any]) -> str:
        """Record ``quote_completed [qs, sym]`` (§3.4); returns the symbol."""
        if not isinstance(params, list) or len(params) < 2 or not isinstance(params[1], str):
            raise ProtocolError(f"quote_completed params not [session, symbol]: {params!r}")
        self.completed.add(params[1])
        return params[1]

    def handle(self, frame: Frame) -> QuoteUpdate | None:
        """Feed any frame: ``qsd`` is merged, ``quote_completed`` recorded, others ignored."""
        if isinstance(frame, MessageFrame):
            if frame.method == "qsd":
                return self.apply(frame.params)
            if frame.method == "quote_completed":
                self.complete(frame.params)
        return None

    def snapshot(self, symbol: str) -> Mapping[str, Any] | None:
        """Read-only copy of the merged fields for ``symbol``, or ``None`` if none yet."""
        snap = self.snapshots.get(symbol)
        return None if snap is None else MappingProxyType(dict(snap))

    def error(self, symbol: str) -> str | None:
        """The error message for ``symbol`` if its last status was not ``ok``
        (``"no_such_symbol"``, or the status itself when no ``errmsg`` was given)."""
        st = self.statuses.get(symbol)
        if st is None or st.status == "ok":
            return None
        return st.errmsg or st.status
