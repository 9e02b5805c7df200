"""Switchable faults of the Tradovate simulator (SIMULATOR ONLY).

Every switch models a documented behaviour of the real service so a client can be tested
against it; the section cited is where the behaviour is described in ``reference/tradovate.md``.

* ``penalty_count`` / ``penalty_p_time`` / ``penalty_captcha`` / ``penalty_endpoints`` — the
  next N matching requests answer HTTP 200 with ``{"p-ticket", "p-time"[, "p-captcha"]}`` (§3.1).
  Resending the identical request plus ``"p-ticket": <ticket>`` after ``p-time`` seconds is
  served; resending too early gets the same ticket with the remaining time (real behaviour
  UNCONFIRMED); a captcha ticket is never honoured (§3.1: "retry in ~1 hour").
* ``http429_count`` / ``http429_for_s`` — HTTP 429 with an empty body, or ``{"s":429,"i":id}``
  on a websocket (§3.2), for the next N requests or for a time window.
* ``reject_count`` / ``reject_reason`` / ``reject_text`` / ``reject_mode`` — the next N new
  orders fail with a ``failureReason`` (§4.1 enum): ``result`` answers
  ``{"failureReason","failureText"}`` and creates no order; ``report`` returns an ``orderId``
  and then rejects the order through ``executionReport``/``order`` events.
* ``fill_delay_ms`` — market orders (and triggered brackets) stay ``Working`` this long before
  they fill at the price current *then*.
* ``token_lifetime_s`` — lifetime of tokens issued from now on (§2.2: 80 or 90 minutes).
* ``heartbeat_timeout_s`` — a socket that sends no frame for this long is closed (0 disables;
  §5.5: the real timeout is UNCONFIRMED, drops after ~30–60 s were reported).
  ``server_heartbeat_s`` — idle interval after which the server sends ``h`` (§5.1: about
  2.5 s). ``auth_timeout_s`` — a socket not authorised by then is closed (§5.3, value
  UNCONFIRMED).
* ``max_sessions`` — concurrent sessions per user before the oldest is closed (§2.1).
* ``captcha_after_failures`` — consecutive wrong logins before the login answers with a
  ``p-captcha`` penalty (§2.1, §3.1).
* ``require_is_automated`` — strict mode, NOT real behaviour: orders without
  ``isAutomated: true`` are refused with ``failureReason: Unsupported``. Real Tradovate accepts
  them (the flag defaults to false, §4.1); the request log is the faithful way to check it.

One-shot actions (``POST /sim/faults`` keys, handled by the app, not stored here):
``expire_tokens_now``, ``ws_shutdown`` (a ``reasonCode``), ``ws_drop``, ``reset``.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import asdict, dataclass, field, fields
from typing import Any

__all__ = ["FaultState", "Faults", "Penalty"]

_FAILURE_REASONS = frozenset(
    [
        "AccountClosed",
        "AdvancedTrailingStopUnsupported",
        "AnotherCommandPending",
        "BackMonthProhibited",
        "ExecutionProviderNotConfigured",
        "ExecutionProviderUnavailable",
        "InvalidContract",
        "InvalidPrice",
        "LiquidationOnly",
        "LiquidationOnlyBeforeExpiration",
        "MaxOrderQtyIsNotSpecified",
        "MaxOrderQtyLimitReached",
        "MaxPosLimitMisconfigured",
        "MaxPosLimitReached",
        "MaxTotalPosLimitReached",
        "MultipleAccountPlanRequired",
        "NoQuote",
        "NotEnoughLiquidity",
        "OtherExecutionRelated",
        "ParentRejected",
        "RiskCheckTimeout",
        "SessionClosed",
        "Success",
        "TooLate",
        "TradingLocked",
        "TrailingStopNonOrderQtyModify",
        "Unauthorized",
        "UnknownReason",
        "Unsupported",
    ]
)


@dataclass(slots=True)
class Faults:
    """The switch board; see the module docstring for what each field models."""

    penalty_count: int = 0
    penalty_p_time: int = 1
    penalty_captcha: bool = False
    penalty_endpoints: list[str] | None = None
    http429_count: int = 0
    http429_for_s: float = 0.0
    reject_count: int = 0
    reject_reason: str = "OtherExecutionRelated"
    reject_text: str = "Rejected by the simulator"
    reject_mode: str = "result"
    fill_delay_ms: float = 0.0
    token_lifetime_s: float = 80 * 60.0
    heartbeat_timeout_s: float = 10.0
    server_heartbeat_s: float = 2.5
    auth_timeout_s: float = 10.0
    max_sessions: int = 2
    captcha_after_failures: int = 5
    require_is_automated: bool = False

    def validate(self) -> None:
        if self.reject_reason not in _FAILURE_REASONS:
            raise ValueError(
                f"reject_reason must be a Tradovate failureReason: {self.reject_reason}"
            )
        if self.reject_mode not in ("result", "report"):
            raise ValueError("reject_mode must be 'result' or 'report'")
        for name in ("penalty_count", "penalty_p_time", "http429_count", "reject_count"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("fill_delay_ms", "token_lifetime_s", "heartbeat_timeout_s", "http429_for_s"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0")
        if self.server_heartbeat_s <= 0 or self.auth_timeout_s <= 0 or self.max_sessions < 1:
            raise ValueError("server_heartbeat_s, auth_timeout_s and max_sessions must be > 0")


@dataclass(slots=True)
class Penalty:
    ticket: str
    endpoint: str
    ready_at: float
    captcha: bool


@dataclass(slots=True)
class FaultState:
    """Live fault switches plus the state they need (issued tickets, 429 window)."""

    faults: Faults = field(default_factory=Faults)
    tickets: dict[str, Penalty] = field(default_factory=dict)
    http429_until: float = 0.0

    def update(self, changes: dict[str, Any], now: float) -> None:
        """Apply switch changes atomically (all valid or none applied)."""
        known = {f.name for f in fields(Faults)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault switch(es): {sorted(unknown)}")
        candidate = Faults(**(asdict(self.faults) | changes))
        candidate.validate()
        self.faults = candidate
        if changes.get("http429_for_s"):
            self.http429_until = now + candidate.http429_for_s

    def reset(self) -> None:
        self.faults = Faults()
        self.tickets.clear()
        self.http429_until = 0.0

    def snapshot(self) -> dict[str, Any]:
        return asdict(self.faults) | {"open_tickets": len(self.tickets)}

    # ------------------------------------------------------------------ request gate

    def gate(
        self, endpoint: str, params: dict[str, Any], now: float, failures: int
    ) -> tuple[int, Any] | None:
        """(status, body) that replaces the real answer, or None to serve the request.

        Order: 429 first (the server "stops handling requests", §3.2), then a valid resend of a
        p-ticket, then the captcha penalty of repeated bad logins, then an armed penalty.
        """
        f = self.faults
        if f.http429_count > 0 or now < self.http429_until:
            if f.http429_count > 0:
                f.http429_count -= 1
            return 429, None
        ticket = params.get("p-ticket")
        if isinstance(ticket, str) and ticket in self.tickets:
            held = self.tickets[ticket]
            if held.endpoint == endpoint and not held.captcha:
                if now >= held.ready_at:
                    del self.tickets[ticket]
                    return None
                return 200, self._body(held, now)
            if held.captcha:
                return 200, self._body(held, now)
        if endpoint == "auth/accesstokenrequest" and failures >= f.captcha_after_failures > 0:
            return 200, self._issue(endpoint, now, 3600, captcha=True)
        if f.penalty_count > 0 and (
            f.penalty_endpoints is None or endpoint in {e.lower() for e in f.penalty_endpoints}
        ):
            f.penalty_count -= 1
            return 200, self._issue(endpoint, now, f.penalty_p_time, f.penalty_captcha)
        return None

    def _issue(self, endpoint: str, now: float, p_time: int, captcha: bool) -> dict[str, Any]:
        held = Penalty(secrets.token_urlsafe(12), endpoint, now + p_time, captcha)
        self.tickets[held.ticket] = held
        return self._body(held, now)

    @staticmethod
    def _body(held: Penalty, now: float) -> dict[str, Any]:
        """§3.1 shape; ``p-time`` in whole seconds (rounded up so a client that waits exactly
        ``p-time`` is never early)."""
        body: dict[str, Any] = {
            "p-ticket": held.ticket,
            "p-time": max(0, math.ceil(held.ready_at - now)),
        }
        if held.captcha:
            body["p-captcha"] = True
        return body

    def take_rejection(self) -> tuple[str, str, str] | None:
        """(failureReason, failureText, mode) for the next new order, if one is armed."""
        f = self.faults
        if f.reject_count <= 0:
            return None
        f.reject_count -= 1
        return f.reject_reason, f.reject_text, f.reject_mode
