"""Tradovate websocket framing and message parsing: pure functions, no I/O.

Section numbers (§) refer to ``reference/tradovate.md``.

* :func:`parse_frame` — SockJS-style server frames (§5.1): ``o`` open, ``h`` heartbeat,
  ``a[...]`` a JSON array of messages (several per frame), ``c[code,"reason"]`` close.
* :func:`encode_request` — client frames ``endpoint\\nid\\nquery\\nbody`` with every field
  present (§5.2); :func:`authorize_request` sends the raw token (§5.3).
* :func:`classify` — response ``{"i","s","d"}`` vs event ``{"e","d"}`` by the presence of ``e``
  (§5.4); ``d`` may be missing.
* :func:`parse_props` — a ``props`` event's ``entity`` as an object *or* an array (§5.4, C#
  client); unknown entity types, enum values and extra fields pass through untouched.
* :func:`snapshot_entities` — the ``user/syncrequest`` response as entity type → entities (§5.6).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "HEARTBEAT",
    "Event",
    "Frame",
    "FrameError",
    "PropsEvent",
    "Response",
    "authorize_request",
    "classify",
    "encode_request",
    "parse_frame",
    "parse_props",
    "snapshot_entities",
]

#: Client heartbeat frame, sent every 2.5 s (§5.5).
HEARTBEAT = "[]"


class FrameError(ValueError):
    """A server frame that is not valid SockJS framing."""


@dataclass(frozen=True, slots=True)
class Frame:
    kind: Literal["open", "heartbeat", "array", "close"]
    messages: tuple[Any, ...] = ()
    code: int | None = None
    reason: str = ""


def parse_frame(raw: str | bytes) -> Frame:
    """One server frame (§5.1). ``a`` items that are JSON strings (plain SockJS) are decoded."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    if not text:
        raise FrameError("empty frame")
    kind, rest = text[0], text[1:]
    if kind == "o":
        return Frame("open")
    if kind == "h":
        return Frame("heartbeat")
    if kind not in "ac":
        raise FrameError(f"unknown frame type {text[:20]!r}")
    try:
        payload = json.loads(rest)
    except json.JSONDecodeError as exc:
        raise FrameError(f"bad JSON in {kind!r} frame: {exc}") from exc
    if not isinstance(payload, list):
        raise FrameError(f"{kind!r} frame is not a JSON array")
    if kind == "c":
        code = payload[0] if payload and isinstance(payload[0], int) else None
        reason = str(payload[1]) if len(payload) > 1 else ""
        return Frame("close", code=code, reason=reason)
    items: list[Any] = []
    for item in payload:
        if isinstance(item, str):
            with contextlib.suppress(json.JSONDecodeError):
                item = json.loads(item)
        items.append(item)
    return Frame("array", tuple(items))


def encode_request(endpoint: str, request_id: int, query: str = "", body: Any = None) -> str:
    """``endpoint\\nid\\nquery\\nbody`` (§5.2). ``body``: None → empty, str → raw, else JSON
    with double quotes (single-quoted Python reprs fail, §5.2)."""
    if body is None:
        text = ""
    elif isinstance(body, str):
        text = body
    else:
        text = json.dumps(body, separators=(",", ":"))
    return f"{endpoint.lstrip('/')}\n{int(request_id)}\n{query}\n{text}"


def authorize_request(request_id: int, token: str) -> str:
    """``authorize\\n<id>\\n\\n<token>`` with the raw token (§5.3)."""
    return encode_request("authorize", request_id, "", token)


@dataclass(frozen=True, slots=True)
class Response:
    request_id: int
    status: int
    data: Any = None


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    data: Any = None


def classify(message: Any) -> Response | Event | None:
    """Response or event (§5.4: an ``e`` key makes it an event); None for anything else."""
    if not isinstance(message, dict):
        return None
    if "e" in message:
        return Event(str(message["e"]), message.get("d"))
    if "i" in message:
        try:
            return Response(int(message["i"]), int(message.get("s", 200)), message.get("d"))
        except (TypeError, ValueError):
            return None
    return None


@dataclass(frozen=True, slots=True)
class PropsEvent:
    """One entity change: ``event_type`` is Created/Updated/Deleted (or anything newer)."""

    entity_type: str
    event_type: str
    entity: dict[str, Any]


def parse_props(data: Any) -> list[PropsEvent]:
    """Entities of a ``props`` event's ``d`` (§5.4); entity object or array, missing parts → []."""
    if not isinstance(data, dict):
        return []
    entity_type = data.get("entityType")
    if not isinstance(entity_type, str):
        return []
    event_type = str(data.get("eventType") or "Updated")
    entity = data.get("entity")
    items = entity if isinstance(entity, list) else [entity]
    return [PropsEvent(entity_type, event_type, e) for e in items if isinstance(e, dict)]


def _entity_type(collection: str) -> str:
    # The C# cache's mapping (§5.6): contractMaturities → contractMaturity, …ses → drop "es".
    if collection.endswith("ies"):
        return collection[:-3] + "y"
    if collection.endswith("ses"):
        return collection[:-2]
    return collection[:-1] if collection.endswith("s") else collection


def snapshot_entities(data: Any) -> dict[str, list[dict[str, Any]]]:
    """``user/syncrequest`` response (§5.6) as entity type → list of entities; non-list
    collections and non-object items are skipped."""
    if not isinstance(data, dict):
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for collection, items in data.items():
        if isinstance(items, list):
            out[_entity_type(collection)] = [i for i in items if isinstance(i, dict)]
    return out
