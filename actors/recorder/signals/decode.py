"""Raw webhook bytes → a key/value mapping (lower-cased key → :class:`_Value`).

The body is sniffed, not trusted to its ``Content-Type`` (see the package docstring for why): a
JSON object first, then CrossTrade-style ``key=value;`` text or ``a=1&b=2`` form encoding. Size,
encoding and nesting depth are checked before anything else.

JSON numbers are kept as their source text (:class:`_JsonNumber`) so the field parsers see
exactly what was sent; nested objects are kept as compact JSON text plus the decoded value.
"""

from __future__ import annotations

import json
import re
from typing import Final, Literal, NamedTuple
from urllib.parse import unquote_plus

from actors.recorder.signals.errors import SignalError

#: Nested JSON deeper than this is rejected; real payloads nest at most twice
#: (``{"takeProfit": {"limitPrice": …}}``) and the limit keeps the helpers' recursion bounded.
MAX_DEPTH: Final = 32

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


#: One decoder for every body: ``json.loads`` with arguments builds a new one per call.
_DECODER: Final = json.JSONDecoder(
    parse_int=_JsonNumber, parse_float=_JsonNumber, parse_constant=_JsonNumber
)


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
        _DECODER.decode(text)
    except (ValueError, RecursionError):
        return _decode_kv(text)
    raise SignalError("unparseable_body", None, "body is a JSON value but not a JSON object")


def _decode_json(text: str) -> dict[str, _Value]:
    try:
        doc = _DECODER.decode(text)
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
    nested = any(type(v) is dict or type(v) is list for v in doc.values())
    if nested and not _depth_within(doc, MAX_DEPTH):
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
