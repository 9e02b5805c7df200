"""Webhook body → :class:`ParsedSignal` → :class:`Intent` (SPEC §3 "Signals in").

Pure: no I/O, no Ray, no database. The webhook handler stores the raw body first and then calls
:func:`parse_body`; a :class:`SignalError` becomes a 4xx whose ``reason`` is machine-readable and
the raw body is kept as a rejected signal.

Why the parser is this lenient about shape yet strict about values:

* TradingView sends the alert text verbatim, with ``Content-Type: application/json`` only when the
  text happens to be valid JSON, else ``text/plain`` — so the header says nothing reliable and the
  body is sniffed here (JSON object first, then CrossTrade-style ``key=value;`` text).
* Placeholders are replaced *textually*, so numbers arrive both as JSON numbers and as strings,
  and a placeholder TradingView does not know (``{{strategy.order.price}}`` in an indicator alert)
  is left in place. Trading on such a value would be worse than rejecting it, hence
  ``unreplaced_placeholder``.
* Users copy templates from TradersPost, PickMyTrade and CrossTrade, so their key aliases are
  accepted (``symbol``, ``data``, ``sentiment``, ``qty``, ``instrument``, ``command`` …).

Key-lookup conventions: keys are matched case-insensitively (and stripped); when the same key
appears twice (also in different case) the later one wins, as with duplicate JSON keys; when
several aliases are present the first in the documented priority order wins. An empty string or
JSON ``null`` counts as "not given". Only top-level keys are read; nested objects are kept as
compact JSON text in :attr:`ParsedSignal.fields` (``takeProfit``/``stopLoss`` also yield their
first number).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, NamedTuple
from urllib.parse import unquote_plus

__all__ = [
    "REASONS",
    "Action",
    "Intent",
    "MarketPosition",
    "ParsedSignal",
    "SignalError",
    "intent_of",
    "parse_body",
]

Action = Literal["buy", "sell", "close", "add"]
MarketPosition = Literal["long", "short", "flat"]
IntentKind = Literal["buy", "sell", "close", "add", "target"]

#: Every ``SignalError.reason`` this module raises.
REASONS: Final[frozenset[str]] = frozenset(
    {
        "empty_body",
        "body_too_large",
        "unparseable_body",
        "missing_action",
        "unknown_action",
        "missing_ticker",
        "unreplaced_placeholder",
        "invalid_number",
        "invalid_quantity",
        "invalid_time",
        "inconsistent_position",
    }
)

#: Sanity cap on contracts per signal. No futures order is this large; the cap keeps absurd
#: values ("1e300") from turning into gigantic ints further down the pipeline.
MAX_QUANTITY: Final = 1_000_000

#: Nested JSON deeper than this is rejected; real payloads nest at most twice
#: (``{"takeProfit": {"limitPrice": …}}``) and the limit keeps the helpers' recursion bounded.
MAX_DEPTH: Final = 32

#: Unix timestamps at or above this are milliseconds (1e11 s would be the year 5138).
_MS_THRESHOLD: Final = 1e11


class SignalError(ValueError):
    """A webhook body that cannot become a signal.

    ``reason`` is one of :data:`REASONS` (stable, for API answers and metrics), ``field`` the
    lower-cased body key at fault when there is one, ``message`` a sentence for humans. Messages
    never echo secret-bearing fields.
    """

    reason: str
    field: str | None
    message: str

    def __init__(self, reason: str, field: str | None = None, message: str | None = None) -> None:
        self.reason = reason
        self.field = field
        self.message = message if message is not None else reason.replace("_", " ")
        super().__init__(f"{reason}: {self.message}")

    def __reduce__(self) -> tuple[type[SignalError], tuple[str, str | None, str]]:
        # Exceptions pickle via ``self.args`` by default, which would lose reason/field when the
        # error crosses a Ray actor boundary.
        return (type(self), (self.reason, self.field, self.message))


@dataclass(frozen=True, slots=True)
class ParsedSignal:
    """One webhook body, parsed and validated (nothing about the recorder applied yet)."""

    #: None only when the market position (or the strategy's target) alone says what to do.
    action: Action | None
    #: As sent, stripped; symbol normalisation happens elsewhere.
    ticker: str
    price: float | None
    #: Contracts from quantity / qty / contracts / strategy.order.contracts.
    quantity: int | None
    #: From market_position / strategy.market_position, else sentiment.
    market_position: MarketPosition | None
    prev_market_position: MarketPosition | None
    #: SIGNED strategy position after the order ({{strategy.position_size}}).
    position_size: float | None
    #: Absolute position size after the order ({{strategy.market_position_size}}).
    market_position_size: float | None
    #: Raw override number as sent (price level or distance; ``fields`` has the full text that
    #: says which). 0 means "no override" (PickMyTrade templates send ``"tp": 0``).
    take_profit: float | None
    stop_loss: float | None
    #: From timenow / time / date; UTC-aware.
    time: datetime | None
    #: Explicit idempotency key: id / sourceId / alertId.
    dedupe_id: str | None
    #: Recorder name given in the body (informational; the URL token decides the recorder).
    recorder: str | None
    comment: str | None
    #: Every parsed key (lower-cased) → raw value as text; secrets replaced by ``***``.
    #: Excluded from the hash so the frozen dataclass stays hashable.
    fields: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Intent:
    """What the signal asks the position book to do.

    ``quantity`` is set (or None = recorder default sizing) for buy/sell/add; ``target`` is the
    signed number of contracts the position must end at for ``kind == "target"``. ``close``
    always means the whole position.
    """

    kind: IntentKind
    quantity: int | None = None
    target: int | None = None


# --------------------------------------------------------------------------------------------
# Key aliases, in priority order.

_ACTION_KEYS: Final = ("action", "data", "strategy.order.action")
_COMMAND_KEY: Final = "command"
_TICKER_KEYS: Final = ("ticker", "symbol", "instrument")
_PRICE_KEYS: Final = ("price", "strategy.order.price")
_QUANTITY_KEYS: Final = ("quantity", "qty", "contracts", "strategy.order.contracts")
_MP_KEYS: Final = ("market_position", "strategy.market_position")
_SENTIMENT_KEY: Final = "sentiment"
_PREV_MP_KEYS: Final = ("prev_market_position", "strategy.prev_market_position")
_POSITION_SIZE_KEYS: Final = ("position_size", "strategy.position_size")
_MP_SIZE_KEYS: Final = ("market_position_size", "strategy.market_position_size")
_TP_KEYS: Final = ("takeprofit", "take_profit", "tp")
_SL_KEYS: Final = ("stoploss", "stop_loss", "sl")
_TIME_KEYS: Final = ("timenow", "time", "date")
_ID_KEYS: Final = ("id", "sourceid", "alertid")
_RECORDER_KEYS: Final = ("recorder",)
_COMMENT_KEYS: Final = ("comment", "strategy.order.comment")

#: Keys whose values we use: an unreplaced placeholder in any of them rejects the signal.
_USED_KEYS: Final[frozenset[str]] = frozenset(
    (
        *_ACTION_KEYS,
        _COMMAND_KEY,
        *_TICKER_KEYS,
        *_PRICE_KEYS,
        *_QUANTITY_KEYS,
        *_MP_KEYS,
        _SENTIMENT_KEY,
        *_PREV_MP_KEYS,
        *_POSITION_SIZE_KEYS,
        *_MP_SIZE_KEYS,
        *_TP_KEYS,
        *_SL_KEYS,
        *_TIME_KEYS,
        *_ID_KEYS,
    )
)

#: Values of these keys are secrets (CrossTrade ``key``, PickMyTrade ``token`` …) and never
#: reach ``fields`` (which gets logged and displayed) or error messages.
_SECRET_KEYS: Final[frozenset[str]] = frozenset(
    {"key", "token", "password", "secret", "api_key", "apikey", "passphrase"}
)

_ACTION_WORDS: Final[dict[str, Action]] = {
    "buy": "buy",
    "long": "buy",
    "bull": "buy",
    "bullish": "buy",
    "sell": "sell",
    "short": "sell",
    "bear": "sell",
    "bearish": "sell",
    "close": "close",
    "exit": "close",
    "flat": "close",
    "flatten": "close",
    "closeposition": "close",
    "close_all": "close",
    "exit_all": "close",
    "add": "add",
}

_POSITION_WORDS: Final[dict[str, MarketPosition]] = {
    "long": "long",
    "bullish": "long",
    "short": "short",
    "bearish": "short",
    "flat": "flat",
}

#: CrossTrade commands that close the instrument's position whatever ``action`` says.
_CLOSE_COMMANDS: Final = frozenset(
    {"closeposition", "flatten", "flatteneverything", "closestrategy", "close_all", "exit_all"}
)

# ASCII digits only: Python's float() also accepts "1_000", "٣", "infinity" and surrounding
# whitespace, none of which TradingView emits. No thousands separators either (TradingView
# formats numbers with "." and no grouping).
_NUMBER_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_KV_KEY_RE: Final = re.compile(r"[a-z_][a-z0-9_.\-]*")
# In a body that is not valid JSON: `"key": {{placeholder}}` (an unquoted unknown placeholder).
_BARE_PLACEHOLDER_RE: Final = re.compile(r'"([^"\\]{1,64})"\s*:\s*\{\{')


class _JsonNumber(str):
    """A JSON number kept as its source text: no float rounding, no int-digit limit errors."""

    __slots__ = ()


_Kind = Literal["str", "num", "bool", "null", "obj"]


class _Value(NamedTuple):
    kind: _Kind
    text: str
    obj: object = None  # the decoded JSON value for kind "obj" (dict or list)


# --------------------------------------------------------------------------------------------
# Public API


def parse_body(raw: bytes, max_bytes: int = 64 * 1024) -> ParsedSignal:
    """Parse a webhook body; raise :class:`SignalError` for anything unusable.

    Also validates that :func:`intent_of` can derive an intent, so a body accepted here is
    always actionable (``missing_action`` / ``inconsistent_position`` surface at ingest).
    """
    values = _decode(raw, max_bytes)
    _check_placeholders(values)

    action, mp, mp_size, quantity = _action_and_position(values)
    prev_mp = _position(values, _PREV_MP_KEYS)
    position_size = _finite(values, _POSITION_SIZE_KEYS)
    ticker = _ticker(values)

    sig = ParsedSignal(
        action=action,
        ticker=ticker,
        price=_positive(values, _PRICE_KEYS),
        quantity=quantity,
        market_position=mp,
        prev_market_position=prev_mp,
        position_size=position_size,
        market_position_size=mp_size,
        take_profit=_override(values, _TP_KEYS),
        stop_loss=_override(values, _SL_KEYS),
        time=_time(values),
        dedupe_id=_text(values, _ID_KEYS),
        recorder=_text(values, _RECORDER_KEYS),
        comment=_text(values, _COMMENT_KEYS),
        fields={k: ("***" if k in _SECRET_KEYS else v.text) for k, v in values.items()},
    )
    intent_of(sig)
    return sig


def intent_of(sig: ParsedSignal) -> Intent:
    """Reduce a parsed signal to one intent. Rules, first match wins:

    1. ``position_size`` given **and** (``market_position`` given or the payload carries other
       strategy fields: ``prev_market_position``, ``market_position_size`` or a ``strategy.*``
       key) → ``target = round(position_size)``. This is ``{{strategy.position_size}}``, the
       signed strategy position *after* the order; SPEC §3 makes the strategy's target
       authoritative, which also repairs a missed or duplicated earlier alert. Without any
       strategy context a bare ``position_size`` is ambiguous (indicator templates use the name
       for "order size"), so it is ignored.
    2. ``market_position == "flat"`` → ``close`` (flat means close everything, whatever
       ``action`` says: a Pine "sell 1 while long 1" and TradersPost ``sell`` + ``sentiment:
       flat`` both mean exit without reversing).
    3. ``market_position`` long/short and ``market_position_size`` given →
       ``target = ±round(market_position_size)``.
    4. ``action`` given → that action with ``quantity`` (``close`` never carries a quantity: it
       closes the whole position; a partial exit is not expressible as an intent).
    5. ``market_position`` long/short alone → ``buy``/``sell`` with ``quantity``.
    6. otherwise ``missing_action``.

    ``inconsistent_position`` when ``position_size``, ``market_position`` and
    ``market_position_size`` disagree (e.g. short with position_size 2, flat with size 3).
    """
    _check_consistency(sig)
    mp = sig.market_position
    if sig.position_size is not None and (mp is not None or _has_strategy_context(sig)):
        return Intent("target", target=round(sig.position_size))
    if mp == "flat":
        return Intent("close")
    if mp is not None and sig.market_position_size is not None:
        size = round(sig.market_position_size)
        return Intent("target", target=size if mp == "long" else -size)
    if sig.action == "close":
        return Intent("close")
    if sig.action is not None:
        return Intent(sig.action, quantity=sig.quantity)
    if mp is not None:
        return Intent("buy" if mp == "long" else "sell", quantity=sig.quantity)
    raise SignalError(
        "missing_action",
        "action",
        "no action: send action (buy/sell/close/exit/add), data, command, or a market position",
    )


# --------------------------------------------------------------------------------------------
# Body decoding


def _decode(raw: bytes, max_bytes: int) -> dict[str, _Value]:
    if len(raw) > max_bytes:
        raise SignalError("body_too_large", None, f"body is larger than {max_bytes} bytes")
    try:
        text = bytes(raw).decode("utf-8-sig")  # tolerates (and drops) a leading BOM
    except UnicodeDecodeError:
        raise SignalError("unparseable_body", None, "body is not valid UTF-8") from None
    text = text.strip()
    if not text:
        raise SignalError("empty_body", None, "body is empty")
    if text[0] in "{[":
        # Clearly meant as JSON: a syntax error is reported as such instead of being
        # misread as key=value text.
        return _decode_json(text)
    try:
        json.loads(text, parse_int=_JsonNumber, parse_float=_JsonNumber, parse_constant=_JsonNumber)
    except (ValueError, RecursionError):
        return _decode_kv(text)
    raise SignalError("unparseable_body", None, "body is a JSON value but not a JSON object")


def _decode_json(text: str) -> dict[str, _Value]:
    try:
        doc = json.loads(
            text, parse_int=_JsonNumber, parse_float=_JsonNumber, parse_constant=_JsonNumber
        )
    except RecursionError:
        raise SignalError("unparseable_body", None, "JSON nested too deeply") from None
    except ValueError as exc:
        # The usual cause: a placeholder TradingView did not replace, left unquoted
        # (`"price": {{strategy.order.price}}` in an indicator alert).
        bare = _BARE_PLACEHOLDER_RE.search(text)
        if bare is not None and "}}" in text[bare.end() :]:
            key = bare.group(1).strip().lower()
            raise SignalError(
                "unreplaced_placeholder",
                key,
                f"{key} is an unquoted placeholder TradingView did not replace; "
                "the body is not valid JSON",
            ) from None
        raise SignalError("unparseable_body", None, f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SignalError("unparseable_body", None, "body is a JSON value but not a JSON object")
    if not _depth_within(doc, MAX_DEPTH):
        raise SignalError("unparseable_body", None, f"JSON nested deeper than {MAX_DEPTH}")
    values: dict[str, _Value] = {}
    for key, value in doc.items():
        values[key.strip().lower()] = _json_value(value)
    return values


def _decode_kv(text: str) -> dict[str, _Value]:
    """CrossTrade ``key=value;`` text (``;`` or newline separated), else ``a=1&b=2`` form
    encoding (percent-decoded). Every non-empty segment must be ``key=value`` with an
    identifier-like key, so free text ("Buy MNQ at price=21000") is not half-parsed."""
    if any(sep in text for sep in ";\r\n"):
        parts = re.split(r"[;\r\n]", text)
        form = False
    else:
        parts = text.split("&")
        form = len(parts) > 1
    values: dict[str, _Value] = {}
    for part in parts:
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if form:
            key, value = unquote_plus(key), unquote_plus(value)
        key = key.strip().lower()
        if not sep or not _KV_KEY_RE.fullmatch(key):
            raise SignalError(
                "unparseable_body", None, "body is neither a JSON object nor key=value; text"
            )
        values[key] = _Value("str", value.strip())
    if not values:
        raise SignalError(
            "unparseable_body", None, "body is neither a JSON object nor key=value; text"
        )
    return values


def _depth_within(doc: object, limit: int) -> bool:
    stack: list[tuple[object, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: list[object] = list(node.values())
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def _json_value(value: object) -> _Value:
    if isinstance(value, _JsonNumber):
        return _Value("num", str(value))
    if isinstance(value, str):
        return _Value("str", value)
    if isinstance(value, bool):
        return _Value("bool", "true" if value else "false")
    if value is None:
        return _Value("null", "null")
    return _Value("obj", _dump(value), value)


def _dump(value: object) -> str:
    """Compact JSON text that keeps numbers exactly as sent (json.dumps would quote them)."""
    if isinstance(value, _JsonNumber):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict):
        items = (f"{json.dumps(k, ensure_ascii=False)}:{_dump(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_dump(v) for v in value) + "]"
    return json.dumps(value)  # pragma: no cover - json.loads yields nothing else


def _check_placeholders(values: dict[str, _Value]) -> None:
    for key, value in values.items():
        if key in _USED_KEYS and "{{" in value.text and "}}" in value.text:
            shown = "" if key in _SECRET_KEYS else f" ({_clip(value.text)})"
            raise SignalError(
                "unreplaced_placeholder",
                key,
                f"{key} still contains a TradingView placeholder{shown}; "
                "it is not available for this alert type",
            )


# --------------------------------------------------------------------------------------------
# Field extraction


def _first(values: dict[str, _Value], keys: tuple[str, ...]) -> tuple[str, _Value] | None:
    """First alias present and not blank/null."""
    for key in keys:
        value = values.get(key)
        if value is None or value.kind == "null":
            continue
        if value.kind == "str" and not value.text.strip():
            continue
        return key, value
    return None


def _word(key: str, value: _Value) -> str | None:
    return value.text.strip().lower() if value.kind == "str" else None


def _action_and_position(
    values: dict[str, _Value],
) -> tuple[Action | None, MarketPosition | None, float | None, int | None]:
    """Action, market position, market-position size and quantity — decided together because a
    CrossTrade ``FLATPLACE`` ("flatten, then place N") is exactly a target of ±N."""
    quantity = _quantity(values)
    mp = _position(values, _MP_KEYS)
    if mp is None:
        mp = _position(values, (_SENTIMENT_KEY,))
    mp_size = _non_negative(values, _MP_SIZE_KEYS)

    command = _first(values, (_COMMAND_KEY,))
    if command is None:
        return _action(values, _ACTION_KEYS), mp, mp_size, quantity
    word = _word(*command)
    if word in _CLOSE_COMMANDS:
        return "close", mp, mp_size, quantity
    if word == "place":
        return _required_action(values), mp, mp_size, quantity
    if word == "flatplace":
        action = _required_action(values)
        if action in ("buy", "sell") and mp is None and mp_size is None and quantity is not None:
            mp, mp_size = ("long" if action == "buy" else "short"), float(quantity)
        return action, mp, mp_size, quantity
    raise SignalError(
        "unknown_action",
        _COMMAND_KEY,
        f"unsupported command {_clip(command[1].text)}: use PLACE, FLATPLACE, CLOSEPOSITION "
        "or FLATTEN",
    )


def _required_action(values: dict[str, _Value]) -> Action:
    action = _action(values, ("action",))
    if action is None:
        raise SignalError("missing_action", "action", "command PLACE needs action=BUY|SELL")
    return action


def _action(values: dict[str, _Value], keys: tuple[str, ...]) -> Action | None:
    found = _first(values, keys)
    if found is None:
        return None
    key, value = found
    word = _word(key, value)
    action = _ACTION_WORDS.get(word) if word is not None else None
    if action is None:
        raise SignalError(
            "unknown_action",
            key,
            f"unknown {key} {_clip(value.text)}: expected buy, sell, close/exit/flat or add",
        )
    return action


def _position(values: dict[str, _Value], keys: tuple[str, ...]) -> MarketPosition | None:
    found = _first(values, keys)
    if found is None:
        return None
    key, value = found
    word = _word(key, value)
    position = _POSITION_WORDS.get(word) if word is not None else None
    if position is None:
        raise SignalError(
            "unknown_action",
            key,
            f"unknown {key} {_clip(value.text)}: expected long, short or flat",
        )
    return position


def _ticker(values: dict[str, _Value]) -> str:
    found = _first(values, _TICKER_KEYS)
    if found is None:
        raise SignalError("missing_ticker", "ticker", "no ticker (or symbol / instrument)")
    key, value = found
    if value.kind not in ("str", "num"):
        raise SignalError("missing_ticker", key, f"{key} must be text")
    return value.text.strip()


def _text(values: dict[str, _Value], keys: tuple[str, ...]) -> str | None:
    found = _first(values, keys)
    return found[1].text.strip() if found is not None else None


def _number(key: str, value: _Value, reason: str = "invalid_number") -> float:
    """A finite number from a JSON number or a numeric string (strict syntax, see _NUMBER_RE)."""
    text = value.text.strip()
    if value.kind in ("str", "num") and _NUMBER_RE.fullmatch(text):
        number = float(text)  # overflow gives inf, rejected below; never raises here
        if math.isfinite(number):
            return number
    raise SignalError(reason, key, f"{key} is not a finite number: {_clip(value.text)}")


def _finite(values: dict[str, _Value], keys: tuple[str, ...]) -> float | None:
    found = _first(values, keys)
    return _number(*found) if found is not None else None


def _positive(values: dict[str, _Value], keys: tuple[str, ...]) -> float | None:
    found = _first(values, keys)
    if found is None:
        return None
    number = _number(*found)
    if number <= 0:
        raise SignalError("invalid_number", found[0], f"{found[0]} must be positive")
    return number


def _non_negative(values: dict[str, _Value], keys: tuple[str, ...]) -> float | None:
    found = _first(values, keys)
    if found is None:
        return None
    number = _number(*found)
    if number < 0:
        raise SignalError("invalid_number", found[0], f"{found[0]} must not be negative")
    return number


def _quantity(values: dict[str, _Value]) -> int | None:
    found = _first(values, _QUANTITY_KEYS)
    if found is None:
        return None
    key, value = found
    number = _number(key, value, reason="invalid_quantity")
    if not number.is_integer() or not 0 < number <= MAX_QUANTITY:
        raise SignalError(
            "invalid_quantity",
            key,
            f"{key} must be a whole number of contracts from 1 to {MAX_QUANTITY}: "
            f"{_clip(value.text)}",
        )
    return int(number)


def _override(values: dict[str, _Value], keys: tuple[str, ...]) -> float | None:
    """takeProfit / stopLoss: a number, or an object whose first number is taken (TradersPost
    ``{"limitPrice"|"percent"|"amount"|"stopPrice": x}``). 0 means "none" (PickMyTrade sends
    ``"tp": 0`` by default); negative or non-numeric → ``invalid_number``."""
    found = _first(values, keys)
    if found is None:
        return None
    key, value = found
    if value.kind == "obj":
        first = _first_number(value.obj)
        if first is None:
            raise SignalError("invalid_number", key, f"{key} contains no number")
        value = first
    number = _number(key, value)
    if number < 0:
        raise SignalError("invalid_number", key, f"{key} must not be negative")
    return number or None


def _first_number(node: object) -> _Value | None:
    """Depth-first, in document order: the first JSON number or numeric string."""
    if isinstance(node, _JsonNumber):
        return _Value("num", str(node))
    if isinstance(node, str):
        return _Value("str", node) if _NUMBER_RE.fullmatch(node.strip()) else None
    children: list[object]
    if isinstance(node, dict):
        children = list(node.values())
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _first_number(child)
        if found is not None:
            return found
    return None


def _time(values: dict[str, _Value]) -> datetime | None:
    """``{{timenow}}`` / ``{{time}}`` (``2019-08-27T09:56:00Z``; any ISO-8601, naive = UTC) or
    unix seconds / milliseconds."""
    found = _first(values, _TIME_KEYS)
    if found is None:
        return None
    key, value = found
    text = value.text.strip()
    try:
        if value.kind not in ("str", "num"):
            raise ValueError(text)
        if _NUMBER_RE.fullmatch(text):
            seconds = float(text)
            if not math.isfinite(seconds) or seconds < 0:
                raise ValueError(text)
            if seconds >= _MS_THRESHOLD:
                seconds /= 1000.0
            return datetime.fromtimestamp(seconds, UTC)
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError, OSError):
        raise SignalError(
            "invalid_time",
            key,
            f"{key} is not an ISO-8601 time or unix timestamp: {_clip(value.text)}",
        ) from None


# --------------------------------------------------------------------------------------------
# Consistency


def _has_strategy_context(sig: ParsedSignal) -> bool:
    return (
        sig.prev_market_position is not None
        or sig.market_position_size is not None
        or any(key.startswith("strategy.") for key in sig.fields)
    )


def _check_consistency(sig: ParsedSignal) -> None:
    mp = sig.market_position
    target = round(sig.position_size) if sig.position_size is not None else None
    size = round(sig.market_position_size) if sig.market_position_size is not None else None
    if mp is not None and target is not None and not _sign_matches(mp, target):
        raise SignalError(
            "inconsistent_position",
            "position_size",
            f"position_size {sig.position_size:g} contradicts market_position {mp}",
        )
    if mp is not None and size is not None and (size == 0) != (mp == "flat"):
        raise SignalError(
            "inconsistent_position",
            "market_position_size",
            f"market_position_size {sig.market_position_size:g} contradicts market_position {mp}",
        )
    if target is not None and size is not None and abs(target) != size:
        raise SignalError(
            "inconsistent_position",
            "position_size",
            f"position_size {sig.position_size:g} contradicts market_position_size "
            f"{sig.market_position_size:g}",
        )


def _sign_matches(mp: MarketPosition, signed: int) -> bool:
    if mp == "long":
        return signed > 0
    if mp == "short":
        return signed < 0
    return signed == 0


def _clip(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "…")
