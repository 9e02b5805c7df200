"""Decoded key/value mapping → validated field values: key aliases, placeholder checks and the
number / quantity / time / action / position parsers.

Users copy templates from TradersPost, PickMyTrade and CrossTrade, so their key aliases are
accepted; values, on the other hand, are parsed strictly (ASCII number syntax, whole contracts,
finite numbers), because trading on a misread value is worse than rejecting the signal.

Key-lookup conventions: keys are matched case-insensitively (and stripped); when the same key
appears twice (also in different case) the later one wins, as with duplicate JSON keys; when
several aliases are present the first in the documented priority order wins. An empty string or
JSON ``null`` counts as "not given". Only top-level keys are read; nested objects are kept as
compact JSON text in :attr:`ParsedSignal.fields` (``takeProfit``/``stopLoss`` also yield their
first number).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final, TypeVar

from actors.recorder.signals.decode import _JsonNumber, _Value
from actors.recorder.signals.errors import SignalError, _clip
from actors.recorder.signals.model import Action, MarketPosition

#: Sanity cap on contracts per signal. No futures order is this large; the cap keeps absurd
#: values ("1e300") from turning into gigantic ints further down the pipeline.
MAX_QUANTITY: Final = 1_000_000

#: Unix timestamps at or above this are milliseconds (1e11 s would be the year 5138).
_MS_THRESHOLD: Final = 1e11

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

_W = TypeVar("_W", bound=str)


# --------------------------------------------------------------------------------------------
# Placeholders


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
    return _word_of(values, keys, _ACTION_WORDS, "buy, sell, close/exit/flat or add")


def _position(values: dict[str, _Value], keys: tuple[str, ...]) -> MarketPosition | None:
    return _word_of(values, keys, _POSITION_WORDS, "long, short or flat")


def _word_of(
    values: dict[str, _Value], keys: tuple[str, ...], words: Mapping[str, _W], expected: str
) -> _W | None:
    """The first alias's value looked up in ``words`` (after strip/lower); None when no alias
    is given, ``unknown_action`` when the value is not one of the words (or not text)."""
    found = _first(values, keys)
    if found is None:
        return None
    key, value = found
    word = _word(key, value)
    result = words.get(word) if word is not None else None
    if result is None:
        raise SignalError(
            "unknown_action",
            key,
            f"unknown {key} {_clip(value.text)}: expected {expected}",
        )
    return result


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
