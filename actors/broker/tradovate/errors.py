"""Typed errors of the Tradovate client, plus the pure penalty-body parser.

Every error is picklable with its attributes (they cross Ray process boundaries). Section
numbers (§) refer to ``reference/tradovate.md``.

Which errors mean "not executed" matters for orders: :attr:`TradovateError.executed_unknown` is
False for every error the server answered with a refusal (penalty, 429, 401, rejection,
``errorText``), so the caller may resend or report a rejection; it is True only for a transport
failure after the request may have reached the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AuthError",
    "CaptchaRequired",
    "CommandRejected",
    "ConnectionFailed",
    "HttpError",
    "NotFound",
    "Penalty",
    "PenaltyTooLong",
    "RateLimited",
    "TradovateError",
    "Unauthorized",
    "WsClosed",
    "WsRequestError",
    "parse_penalty",
]


class TradovateError(Exception):
    """Base class. ``executed_unknown``: the request may have been executed (see module doc)."""

    executed_unknown = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))


def _rebuild(cls: type[TradovateError], message: str, state: dict[str, Any]) -> TradovateError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class AuthError(TradovateError):
    """Login, renewal or OAuth exchange refused: non-empty ``errorText`` on HTTP 200 (§2.1) or
    an OAuth ``error`` (§2.5). ``error_text`` is the server's wording."""

    def __init__(self, error_text: str) -> None:
        super().__init__(f"Tradovate authentication failed: {error_text}")
        self.error_text = error_text


class CaptchaRequired(TradovateError):
    """A penalty with ``p-captcha: true`` (§3.1): cannot be solved by a bot; a person must wait
    (about an hour) and retry. Never retried automatically."""

    def __init__(self, p_time: float, endpoint: str = "") -> None:
        super().__init__(
            f"Tradovate demands a captcha on {endpoint or 'a request'} (p-time {p_time:g}s): "
            "stop and retry by hand in about an hour"
        )
        self.p_time = p_time
        self.endpoint = endpoint


class PenaltyTooLong(TradovateError):
    """A ``p-time`` penalty longer than the client is configured to wait, or penalties repeated
    more often than allowed (§3.1). Not executed: safe to retry later."""

    def __init__(self, p_time: float, endpoint: str = "") -> None:
        super().__init__(f"Tradovate penalty of {p_time:g}s on {endpoint or 'a request'}")
        self.p_time = p_time
        self.endpoint = endpoint


class RateLimited(TradovateError):
    """HTTP 429 (or WS ``s: 429``): the server refused the request (§3.2). ``retry_after`` is the
    hard back-off the client applied, in seconds."""

    def __init__(self, retry_after: float, endpoint: str = "") -> None:
        super().__init__(f"Tradovate rate limit (429) on {endpoint}; back off {retry_after:g}s")
        self.retry_after = retry_after
        self.endpoint = endpoint


class HttpError(TradovateError):
    """A non-2xx answer that is none of the specific cases; ``body`` is its text (truncated)."""

    def __init__(self, status: int, endpoint: str, body: str = "") -> None:
        super().__init__(f"Tradovate HTTP {status} on {endpoint}: {body[:200]}")
        self.status = status
        self.endpoint = endpoint
        self.body = body[:2000]


class Unauthorized(HttpError):
    """HTTP 401 even after renewing the token and logging in again (§2.6, §7)."""


class NotFound(HttpError):
    """HTTP 404 (unknown endpoint, or an entity lookup that found nothing, §4.7)."""


class ConnectionFailed(TradovateError):
    """Transport failure. ``sent`` is False when the request certainly never left (connect
    error), True when it may have reached the server (the outcome is unknown)."""

    def __init__(self, endpoint: str, detail: str, sent: bool) -> None:
        super().__init__(f"Tradovate connection failed on {endpoint} ({detail})")
        self.endpoint = endpoint
        self.detail = detail
        self.sent = sent
        self.executed_unknown = sent


class CommandRejected(TradovateError):
    """A command answered with a non-``Success`` ``failureReason`` and/or ``failureText``, or
    with ``violations`` (§4.1). ``order_id`` is set when the server created an order anyway."""

    def __init__(
        self,
        failure_reason: str | None,
        failure_text: str | None = None,
        violations: list[Any] | None = None,
        order_id: int | None = None,
        endpoint: str = "",
    ) -> None:
        self.failure_reason = failure_reason
        self.failure_text = failure_text
        self.violations = list(violations or [])
        self.order_id = order_id
        self.endpoint = endpoint
        super().__init__(f"Tradovate rejected {endpoint}: {self.reason}")

    @property
    def reason(self) -> str:
        """One-line reason for an ``OrderState``: ``"<failureReason>: <failureText>"``."""
        parts = [p for p in (self.failure_reason, self.failure_text) if p]
        for v in self.violations:
            if isinstance(v, dict):
                parts.append(str(v.get("description") or v.get("constraint") or v))
            else:
                parts.append(str(v))
        return ": ".join(parts) or "rejected"


class WsClosed(TradovateError):
    """The websocket closed (``c`` frame, ``shutdown`` event, drop) while a request waited.
    The request may have been executed."""

    executed_unknown = True


class WsRequestError(TradovateError):
    """A websocket response with a non-2xx ``s``; ``d`` is the server's error string (§5.4)."""

    def __init__(self, status: int, endpoint: str, detail: Any = None) -> None:
        super().__init__(f"Tradovate WS {status} on {endpoint}: {detail!r}"[:300])
        self.status = status
        self.endpoint = endpoint
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Penalty:
    """A time-penalty body (§3.1): wait ``p_time`` seconds, resend with ``ticket``."""

    ticket: str
    p_time: float
    captcha: bool


def parse_penalty(body: Any) -> Penalty | None:
    """The penalty in a response body, or None. Delivered as HTTP 200 over REST and as ``d`` of a
    WS response (§3.1). ``p-time`` is in seconds (official sources; [T1]'s "minutes" claim is
    treated as wrong)."""
    if not isinstance(body, dict) or ("p-ticket" not in body and not body.get("p-captcha")):
        return None
    try:
        p_time = float(body.get("p-time") or 0.0)
    except (TypeError, ValueError):
        p_time = 0.0
    return Penalty(str(body.get("p-ticket") or ""), max(0.0, p_time), bool(body.get("p-captcha")))
