"""Tradovate REST client (``httpx.AsyncClient``) and the shared request/penalty loop.

Section numbers (§) refer to ``reference/tradovate.md``.

* :func:`send` is one HTTP exchange with the protocol rules every endpoint shares: a penalty body
  (``p-ticket``/``p-time``, HTTP 200, §3.1) is waited out with the injectable sleep and resent
  with ``"p-ticket"`` added (§3.3), ``p-captcha`` raises :class:`~.errors.CaptchaRequired`,
  HTTP 429 starts a hard back-off (§3.2) and raises :class:`~.errors.RateLimited` carrying it.
  Each penalty or back-off is also reported to the optional ``limiter`` (the broker actor's
  :class:`~actors.broker.limiter.RateLimiter`) through ``limiter.penalty(seconds)``.
* :class:`TradovateRest` adds the bearer token (§2.6) and 401 recovery (renew once, then log in
  again, §7), and one method per endpoint used. Command answers with a non-``Success``
  ``failureReason``, a ``failureText`` without an id, ``errorText`` or ``violations`` raise
  :class:`~.errors.CommandRejected` (§4.1); the adapter turns that into a ``rejected`` order.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from actors.broker.tradovate.errors import (
    CaptchaRequired,
    CommandRejected,
    ConnectionFailed,
    HttpError,
    NotFound,
    PenaltyTooLong,
    RateLimited,
    Unauthorized,
    parse_penalty,
)

if TYPE_CHECKING:
    from actors.broker.tradovate.auth import TradovateAuth

__all__ = ["PenaltyLimiter", "Throttle", "TradovateRest", "bracket", "order_body", "send"]


class PenaltyLimiter(Protocol):
    """What the client needs from a rate limiter: be told to grant nothing for a while."""

    def penalty(self, seconds: float) -> None: ...


class Throttle:
    """Penalty and 429 policy plus the hard back-off state of one client.

    ``max_penalty_wait_s``: longest ``p-time`` waited out in-line (longer → PenaltyTooLong);
    ``max_penalties``: resends per request. 429 back-off: ``Retry-After`` when the server sends
    one, else ``rate_limit_base_s`` doubling per consecutive 429 up to ``rate_limit_max_s``
    (the reference documents no retry delay; partner docs say "wait", [T1] uses 10, 20, 40, 80 s).
    While backing off, requests are refused locally without being sent.
    """

    def __init__(
        self,
        *,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        max_penalty_wait_s: float = 120.0,
        max_penalties: int = 3,
        rate_limit_base_s: float = 10.0,
        rate_limit_max_s: float = 3600.0,
    ) -> None:
        self.sleep = sleep
        self.clock = clock
        self.max_penalty_wait_s = max_penalty_wait_s
        self.max_penalties = max_penalties
        self.rate_limit_base_s = rate_limit_base_s
        self.rate_limit_max_s = rate_limit_max_s
        self.blocked_until = 0.0
        self.consecutive_429 = 0
        self.counts: dict[str, int] = {"penalties": 0, "rate_limited": 0, "captcha": 0}

    def backoff_remaining(self) -> float:
        return max(0.0, self.blocked_until - self.clock())

    def check_blocked(self, endpoint: str) -> None:
        remaining = self.backoff_remaining()
        if remaining > 0:
            raise RateLimited(remaining, endpoint)

    def on_429(self, retry_after: str | None) -> float:
        self.consecutive_429 += 1
        self.counts["rate_limited"] += 1
        wait: float | None = None
        if retry_after:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = None
        if wait is None or not math.isfinite(wait) or wait < 0:
            wait = self.rate_limit_base_s * 2 ** (self.consecutive_429 - 1)
        wait = min(wait, self.rate_limit_max_s)
        self.blocked_until = max(self.blocked_until, self.clock() + wait)
        return wait

    def on_success(self) -> None:
        self.consecutive_429 = 0


def _decode(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except (ValueError, jsonlib.JSONDecodeError):
        return resp.text


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    throttle: Throttle,
    *,
    json: Mapping[str, Any] | None = None,
    form: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    token: str | None = None,
    limiter: PenaltyLimiter | None = None,
    endpoint: str = "",
    respect_block: bool = True,
) -> tuple[int, Any]:
    """One request with the penalty loop and the 429 rule (module docstring); returns
    ``(status, decoded body)`` for every other answer, 401 and 404 included."""
    if respect_block:
        throttle.check_blocked(endpoint)
    body = dict(json) if json is not None else None
    data = dict(form) if form is not None else None
    query = dict(params) if params is not None else None
    penalties = 0
    while True:
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = await client.request(
                method, url, json=body, data=data, params=query, headers=headers
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ConnectionFailed(endpoint, repr(exc), sent=False) from exc
        except httpx.HTTPError as exc:
            raise ConnectionFailed(endpoint, repr(exc), sent=True) from exc
        if resp.status_code == 429:
            wait = throttle.on_429(resp.headers.get("Retry-After"))
            if limiter is not None:
                limiter.penalty(wait)
            raise RateLimited(wait, endpoint)
        decoded = _decode(resp)
        penalty = parse_penalty(decoded) if resp.status_code == 200 else None
        if penalty is None:
            throttle.on_success()
            return resp.status_code, decoded
        throttle.counts["penalties"] += 1
        if penalty.captcha:
            throttle.counts["captcha"] += 1
            raise CaptchaRequired(penalty.p_time, endpoint)
        if limiter is not None:
            limiter.penalty(penalty.p_time)
        penalties += 1
        if penalty.p_time > throttle.max_penalty_wait_s or penalties > throttle.max_penalties:
            raise PenaltyTooLong(penalty.p_time, endpoint)
        await throttle.sleep(penalty.p_time)
        # Resend the identical request plus the ticket (§3.1).
        if body is not None:
            body["p-ticket"] = penalty.ticket
        elif data is not None:
            data["p-ticket"] = penalty.ticket
        else:
            query = {**(query or {}), "p-ticket": penalty.ticket}


def order_body(
    *,
    account_id: int,
    account_spec: str,
    symbol: str,
    action: str,
    qty: int,
    order_type: str = "Market",
    cl_ord_id: str | None = None,
    stop_price: float | None = None,
    price: float | None = None,
    time_in_force: str | None = None,
) -> dict[str, Any]:
    """A ``PlaceOrder`` body (§4.1): both ``accountId`` and ``accountSpec`` (a "Violation"
    otherwise), ``isAutomated: true`` always (exchange policy for algorithmic orders)."""
    if action not in ("Buy", "Sell"):
        raise ValueError(f"action must be 'Buy' or 'Sell', got {action!r}")
    body: dict[str, Any] = {
        "accountSpec": account_spec,
        "accountId": int(account_id),
        "action": action,
        "symbol": symbol,
        "orderQty": int(qty),
        "orderType": order_type,
        "isAutomated": True,
    }
    if cl_ord_id:
        body["clOrdId"] = cl_ord_id
    if stop_price is not None:
        body["stopPrice"] = float(stop_price)
    if price is not None:
        body["price"] = float(price)
    if time_in_force:
        body["timeInForce"] = time_in_force
    return body


def bracket(
    action: str,
    order_type: str,
    *,
    stop_price: float | None = None,
    price: float | None = None,
    cl_ord_id: str | None = None,
) -> dict[str, Any]:
    """A ``RestrainedOrderVersion`` for :meth:`TradovateRest.place_oso` (§4.2)."""
    out: dict[str, Any] = {"action": action, "orderType": order_type}
    if stop_price is not None:
        out["stopPrice"] = float(stop_price)
    if price is not None:
        out["price"] = float(price)
    if cl_ord_id:
        out["clOrdId"] = cl_ord_id
    return out


def _checked(body: Any, endpoint: str, id_field: str) -> dict[str, Any]:
    """A command result, or CommandRejected (§4.1: failureReason/failureText/violations)."""
    if not isinstance(body, dict):
        raise HttpError(200, endpoint, f"unexpected body {body!r}")
    reason = body.get("failureReason")
    text = body.get("failureText") or body.get("errorText")
    violations = body.get("violations")
    ident = body.get(id_field)
    failed = (reason not in (None, "", "Success")) or bool(violations) or (text and not ident)
    if failed:
        order_id = body.get("orderId")
        raise CommandRejected(
            reason, text, violations, order_id if isinstance(order_id, int) else None, endpoint
        )
    return body


class TradovateRest:
    """Endpoint methods over :func:`send` with bearer auth and 401 recovery (module docstring).

    Every method takes ``limiter``: the hook told about penalties and 429 back-offs.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        auth: TradovateAuth,
        base_url: str | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        self.client = client
        self.auth = auth
        self.base_url = (base_url or auth.endpoints.rest).rstrip("/")
        self.throttle = throttle or auth.throttle

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        limiter: PenaltyLimiter | None = None,
    ) -> Any:
        """Authorised call; 401 → renew → retry → log in → retry → :class:`Unauthorized`.
        A 401 means the request was not executed, so the retry cannot duplicate an order."""
        endpoint = path.strip("/")
        url = f"{self.base_url}/{endpoint}"
        token = await self.auth.token(limiter)
        for attempt in range(3):
            status, body = await send(
                self.client, method, url, self.throttle,
                json=json, params=params, token=token, limiter=limiter, endpoint=endpoint,
            )  # fmt: skip
            if status == 401:
                if attempt == 2:
                    raise Unauthorized(status, endpoint, str(body))
                token = await self.auth.recover(token, attempt + 1, limiter)
                continue
            if status == 404:
                raise NotFound(status, endpoint, str(body))
            if status >= 300:
                raise HttpError(status, endpoint, str(body))
            return body
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ orders (§4.1-§4.3)

    async def place_order(self, limiter: PenaltyLimiter | None = None, **fields: Any) -> int:
        """``POST /order/placeorder`` with :func:`order_body` ``fields``; returns ``orderId``."""
        body = order_body(**fields)
        result = _checked(
            await self.request("POST", "order/placeorder", json=body, limiter=limiter),
            "order/placeorder",
            "orderId",
        )
        order_id = result.get("orderId")
        if not isinstance(order_id, int):
            raise HttpError(200, "order/placeorder", f"no orderId in {result!r}")
        return order_id

    async def place_oso(
        self,
        bracket1: Mapping[str, Any],
        bracket2: Mapping[str, Any] | None = None,
        limiter: PenaltyLimiter | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """``POST /order/placeoso`` (§4.2): entry + ``bracket1`` (+ ``bracket2``, linked OCO).
        Returns ``{orderId, oso1Id, oso2Id}``."""
        body = {**order_body(**fields), "bracket1": dict(bracket1)}
        if bracket2 is not None:
            body["bracket2"] = dict(bracket2)
        return _checked(
            await self.request("POST", "order/placeoso", json=body, limiter=limiter),
            "order/placeoso",
            "orderId",
        )

    async def cancel_order(
        self, order_id: int, cl_ord_id: str | None = None, limiter: PenaltyLimiter | None = None
    ) -> dict[str, Any]:
        """``POST /order/cancelorder`` (§4.3) → ``CommandResult``."""
        body: dict[str, Any] = {"orderId": int(order_id), "isAutomated": True}
        if cl_ord_id:
            body["clOrdId"] = cl_ord_id
        return _checked(
            await self.request("POST", "order/cancelorder", json=body, limiter=limiter),
            "order/cancelorder",
            "commandId",
        )

    async def liquidate_position(
        self, account_id: int, contract_id: int, limiter: PenaltyLimiter | None = None
    ) -> dict[str, Any]:
        """``POST /order/liquidateposition`` (§4.3, ``admin: false``): cancels the contract's
        orders and exits the position."""
        body = {"accountId": int(account_id), "contractId": int(contract_id), "admin": False}
        return _checked(
            await self.request("POST", "order/liquidateposition", json=body, limiter=limiter),
            "order/liquidateposition",
            "orderId",
        )

    # ------------------------------------------------------------------ lists (§4.4-§4.6)

    async def _list(self, path: str, limiter: PenaltyLimiter | None) -> list[dict[str, Any]]:
        body = await self.request("GET", path, limiter=limiter)
        if body is None:
            return []
        if not isinstance(body, list):
            raise HttpError(200, path, f"expected a list, got {body!r}")
        return [item for item in body if isinstance(item, dict)]

    async def list_orders(self, limiter: PenaltyLimiter | None = None) -> list[dict[str, Any]]:
        return await self._list("order/list", limiter)

    async def list_positions(self, limiter: PenaltyLimiter | None = None) -> list[dict[str, Any]]:
        return await self._list("position/list", limiter)

    async def list_fills(self, limiter: PenaltyLimiter | None = None) -> list[dict[str, Any]]:
        return await self._list("fill/list", limiter)

    async def list_accounts(self, limiter: PenaltyLimiter | None = None) -> list[dict[str, Any]]:
        return await self._list("account/list", limiter)

    # ------------------------------------------------------------------ contracts (§4.7)

    async def _entity(
        self, path: str, params: Mapping[str, Any], limiter: PenaltyLimiter | None
    ) -> dict[str, Any] | None:
        # Unknown names: 404 or an empty/null body, both seen as "not found" (UNCONFIRMED which).
        try:
            body = await self.request("GET", path, params=params, limiter=limiter)
        except NotFound:
            return None
        if not isinstance(body, dict) or not body or body.get("errorText"):
            return None
        return body

    async def find_contract(
        self, name: str, limiter: PenaltyLimiter | None = None
    ) -> dict[str, Any] | None:
        """``GET /contract/find?name=MNQZ5`` → ``Contract {id, name, contractMaturityId}``."""
        return await self._entity("contract/find", {"name": name}, limiter)

    async def contract_item(
        self, contract_id: int, limiter: PenaltyLimiter | None = None
    ) -> dict[str, Any] | None:
        """``GET /contract/item?id=`` (names a contract id seen in a sync event)."""
        return await self._entity("contract/item", {"id": int(contract_id)}, limiter)

    async def suggest_contracts(
        self, text: str, limit: int = 10, limiter: PenaltyLimiter | None = None
    ) -> list[dict[str, Any]]:
        """``GET /contract/suggest?t=<text>&l=<max>`` (the spec's parameter names, §4.7)."""
        body = await self.request(
            "GET", "contract/suggest", params={"t": text, "l": int(limit)}, limiter=limiter
        )
        return [c for c in body if isinstance(c, dict)] if isinstance(body, list) else []

    async def find_product(
        self, name: str, limiter: PenaltyLimiter | None = None
    ) -> dict[str, Any] | None:
        """``GET /product/find?name=MNQ`` → ``Product`` with ``tickSize``, ``valuePerPoint``."""
        return await self._entity("product/find", {"name": name}, limiter)
