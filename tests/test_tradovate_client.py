"""Unit tests of the Tradovate client: auth, REST, framing, sync state (no real network).

HTTP goes through ``httpx.MockTransport``; time through a manual clock and a recording sleep,
so nothing here waits on the wall clock. The socket tests at the end use a loopback
``websockets`` server and wait on events (bounded by timeouts), never on sleeps.
"""

from __future__ import annotations

import asyncio
import json
import pickle
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import serve

from actors.broker.base import BrokerFill, BrokerPosition, OrderState
from actors.broker.tradovate.auth import (
    Credentials,
    Endpoints,
    OAuthApp,
    TradovateAuth,
    derive_device_id,
)
from actors.broker.tradovate.errors import (
    AuthError,
    CaptchaRequired,
    CommandRejected,
    ConnectionFailed,
    PenaltyTooLong,
    RateLimited,
    Unauthorized,
)
from actors.broker.tradovate.frames import (
    Event,
    FrameError,
    PropsEvent,
    Response,
    authorize_request,
    classify,
    encode_request,
    parse_frame,
    parse_props,
    snapshot_entities,
)
from actors.broker.tradovate.rest import Throttle, TradovateRest, bracket, order_body
from actors.broker.tradovate.sync import SyncBook, map_status
from actors.broker.tradovate.ws import TradovateSocket

BASE = "https://demo.test/v1"
T0 = 1_750_000_000.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Sleeps:
    """Recording fake sleep: returns at once."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Limiter:
    def __init__(self) -> None:
        self.penalties: list[float] = []

    def penalty(self, seconds: float) -> None:
        self.penalties.append(seconds)


CREDS = Credentials("bob", "pw", "JustTrades", "1.0", "42", "s3cret", "dev-1")


def token_body(token: str, clock: Clock, lifetime: float = 80 * 60, **extra: Any) -> dict:
    return {
        "accessToken": token,
        "mdAccessToken": "md-" + token,
        "expirationTime": iso(clock.now + lifetime),
        "userId": 7,
        "name": "bob",
        **extra,
    }


Handler = Callable[[httpx.Request], httpx.Response]


def make(
    handler: Handler, clock: Clock | None = None, throttle: Throttle | None = None, **kw: Any
) -> tuple[TradovateAuth, TradovateRest, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = httpx.AsyncClient(transport=httpx.MockTransport(record))
    endpoints = Endpoints(BASE, "wss://demo.test/v1/websocket", oauth_token_urls=(
        "https://live.test/v1/auth/oauthtoken", "https://demo.test/v1/auth/oauthtoken",
    ))  # fmt: skip
    throttle = throttle or Throttle(sleep=Sleeps(), clock=clock or Clock())
    auth = TradovateAuth(
        client, endpoints, kw.pop("credentials", CREDS), clock=clock or Clock(),
        throttle=throttle, **kw,
    )  # fmt: skip
    return auth, TradovateRest(client, auth), seen


def path(request: httpx.Request) -> str:
    return request.url.path.removeprefix("/v1/")


def body(request: httpx.Request) -> dict:
    return json.loads(request.content) if request.content else {}


# --------------------------------------------------------------------------- auth


def test_device_id_is_stable_per_secret_and_login() -> None:
    a = derive_device_id("secret", "bob")
    assert a == derive_device_id("secret", "bob")
    assert a != derive_device_id("secret", "alice")
    assert a != derive_device_id("other", "bob")
    assert len(a) == 64
    with pytest.raises(ValueError):
        derive_device_id("", "bob")


def test_credentials_body_sends_numeric_cid_and_device_id() -> None:
    b = CREDS.body()
    assert b == {
        "name": "bob", "password": "pw", "appId": "JustTrades", "appVersion": "1.0",
        "deviceId": "dev-1", "cid": 42, "sec": "s3cret",
    }  # fmt: skip
    assert "pw" not in repr(CREDS) and "s3cret" not in repr(CREDS)


async def test_token_renewed_within_margin_before_expiry() -> None:
    clock = Clock()
    issued = iter(["T1", "T2"])

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body(next(issued), clock))
        assert path(request) == "auth/renewaccesstoken"
        assert request.method == "GET"
        assert request.headers["Authorization"] == "Bearer T1"
        return httpx.Response(
            200, json={"accessToken": "T2", "expirationTime": iso(clock.now + 4800)}
        )

    auth, _, seen = make(handler, clock, renew_margin_s=600)
    assert await auth.token() == "T1"
    clock.now += 80 * 60 - 601  # just outside the margin: no call
    assert await auth.token() == "T1"
    assert len(seen) == 1
    clock.now += 2  # inside the margin: renewed, not a new login
    assert await auth.token() == "T2"
    assert [path(r) for r in seen] == ["auth/accesstokenrequest", "auth/renewaccesstoken"]
    assert auth.current is not None and auth.current.user_id == 7  # kept from the login
    assert auth.counts["renew"] == 1 and auth.counts["login"] == 1


async def test_expired_token_logs_in_again_and_short_lifetimes_cap_the_margin() -> None:
    clock = Clock()
    n = iter(range(1, 100))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=token_body(f"T{next(n)}", clock, lifetime=60))

    auth, _, seen = make(handler, clock, renew_margin_s=900)
    await auth.token()
    assert auth.seconds_until_renewal() == pytest.approx(30)  # margin capped at lifetime/2
    clock.now += 10
    await auth.token()
    assert len(seen) == 1
    clock.now += 100  # past expiry: renewal would fail, log in
    await auth.token()
    assert [path(r) for r in seen][-1] == "auth/accesstokenrequest"


async def test_401_renews_once_then_logs_in_again() -> None:
    clock = Clock()
    tokens = iter(["T1", "T3"])

    def handler(request: httpx.Request) -> httpx.Response:
        p = path(request)
        if p == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body(next(tokens), clock))
        if p == "auth/renewaccesstoken":
            return httpx.Response(200, json=token_body("T2", clock))
        if request.headers["Authorization"] == "Bearer T3":
            return httpx.Response(200, json=[{"id": 1}])
        return httpx.Response(401, text="Access is denied")

    _, rest, seen = make(handler, clock)
    assert await rest.list_orders() == [{"id": 1}]
    assert [(path(r), r.headers.get("Authorization")) for r in seen] == [
        ("auth/accesstokenrequest", None),
        ("order/list", "Bearer T1"),
        ("auth/renewaccesstoken", "Bearer T1"),
        ("order/list", "Bearer T2"),
        ("auth/accesstokenrequest", None),
        ("order/list", "Bearer T3"),
    ]


async def test_401_after_relogin_raises_unauthorized() -> None:
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request).startswith("auth/"):
            return httpx.Response(200, json=token_body("T", clock))
        return httpx.Response(401)

    _, rest, seen = make(handler, clock)
    with pytest.raises(Unauthorized):
        await rest.list_positions()
    assert sum(path(r) == "position/list" for r in seen) == 3


async def test_error_text_on_http_200_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"errorText": "Incorrect username or password."})

    auth, _, _ = make(handler)
    with pytest.raises(AuthError) as err:
        await auth.login()
    assert err.value.error_text == "Incorrect username or password."
    assert auth.current is None


async def test_penalty_waits_p_time_and_resends_with_the_ticket() -> None:
    clock, sleeps, limiter = Clock(), Sleeps(), Limiter()
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(body(request))
        if len(sent) == 1:
            return httpx.Response(200, json={"p-ticket": "tk-1", "p-time": 7})
        return httpx.Response(200, json=token_body("T1", clock))

    auth, _, _ = make(handler, clock, Throttle(sleep=sleeps, clock=clock))
    tok = await auth.login(limiter)
    assert tok.access_token == "T1"
    assert sleeps.calls == [7.0] and limiter.penalties == [7.0]
    assert sent[1] == {**sent[0], "p-ticket": "tk-1"}  # identical body plus the ticket


async def test_penalty_on_a_get_puts_the_ticket_in_the_query() -> None:
    clock = Clock()
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T1", clock))
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(200, json={"p-ticket": "q", "p-time": 1})
        return httpx.Response(200, json={"id": 5, "name": "MNQZ5"})

    _, rest, _ = make(handler, clock)
    assert await rest.find_contract("MNQZ5") == {"id": 5, "name": "MNQZ5"}
    assert dict(calls[1].url.params) == {"name": "MNQZ5", "p-ticket": "q"}


async def test_captcha_penalty_stops_without_resending() -> None:
    sleeps = Sleeps()
    seen_count = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal seen_count
        seen_count += 1
        return httpx.Response(200, json={"p-ticket": "x", "p-time": 3600, "p-captcha": True})

    auth, _, _ = make(handler, throttle=Throttle(sleep=sleeps))
    with pytest.raises(CaptchaRequired) as err:
        await auth.login()
    assert err.value.p_time == 3600
    assert seen_count == 1 and sleeps.calls == []


async def test_penalty_longer_than_allowed_is_not_waited() -> None:
    sleeps, limiter = Sleeps(), Limiter()

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"p-ticket": "x", "p-time": 500})

    auth, _, _ = make(handler, throttle=Throttle(sleep=sleeps, max_penalty_wait_s=60))
    with pytest.raises(PenaltyTooLong):
        await auth.login(limiter)
    assert sleeps.calls == [] and limiter.penalties == [500]


async def test_429_backs_off_hard_and_refuses_locally_meanwhile() -> None:
    clock, limiter = Clock(), Limiter()
    answers = [httpx.Response(429), httpx.Response(429, headers={"Retry-After": "42"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T", clock))
        return answers.pop(0) if answers else httpx.Response(200, json=[])

    throttle = Throttle(sleep=Sleeps(), clock=clock, rate_limit_base_s=10)
    _, rest, seen = make(handler, clock, throttle)
    with pytest.raises(RateLimited) as err:
        await rest.list_fills(limiter)
    assert err.value.retry_after == 10 and limiter.penalties == [10]
    before = len(seen)
    clock.now += 5
    with pytest.raises(RateLimited) as err:  # still backing off: nothing sent
        await rest.list_fills(limiter)
    assert len(seen) == before and err.value.retry_after == pytest.approx(5)
    clock.now += 5
    with pytest.raises(RateLimited) as err:  # server's Retry-After wins over the doubling
        await rest.list_fills(limiter)
    assert err.value.retry_after == 42
    clock.now += 42
    assert await rest.list_fills(limiter) == []
    assert throttle.consecutive_429 == 0


def test_429_backoff_doubles_without_retry_after() -> None:
    throttle = Throttle(clock=Clock(), rate_limit_base_s=10, rate_limit_max_s=35)
    assert [throttle.on_429(None) for _ in range(4)] == [10, 20, 35, 35]


def test_placeorder_body_is_automated_with_clordid_and_both_account_fields() -> None:
    b = order_body(
        account_id=700001, account_spec="DEMO0001", symbol="MNQZ5", action="Sell", qty=2,
        order_type="Stop", cl_ord_id="p1-s1-stop", stop_price=21000.25,
    )  # fmt: skip
    assert b == {
        "accountSpec": "DEMO0001", "accountId": 700001, "action": "Sell", "symbol": "MNQZ5",
        "orderQty": 2, "orderType": "Stop", "isAutomated": True, "clOrdId": "p1-s1-stop",
        "stopPrice": 21000.25,
    }  # fmt: skip
    market = order_body(account_id=1, account_spec="A", symbol="ESZ5", action="Buy", qty=1)
    assert market["isAutomated"] is True and "stopPrice" not in market
    with pytest.raises(ValueError):
        order_body(account_id=1, account_spec="A", symbol="ESZ5", action="buy", qty=1)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ({"failureReason": "UnknownReason", "failureText": "Access is denied"}, "UnknownReason: Access is denied"),
        ({"failureReason": "SessionClosed"}, "SessionClosed"),
        ({"violations": [{"constraint": "accountId", "description": "Account is not specified"}]}, "Account is not specified"),
        ({"failureText": "something odd"}, "something odd"),
    ],
)  # fmt: skip
async def test_failure_reason_is_a_typed_rejection(answer: dict, reason: str) -> None:
    clock = Clock()
    placed: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T", clock))
        placed.append(body(request))
        return httpx.Response(200, json=answer)

    _, rest, _ = make(handler, clock)
    with pytest.raises(CommandRejected) as err:
        await rest.place_order(
            account_id=1, account_spec="DEMO1", symbol="MNQZ5", action="Buy", qty=1, cl_ord_id="c1"
        )
    assert err.value.reason == reason
    assert not err.value.executed_unknown
    assert placed[0]["isAutomated"] is True and placed[0]["clOrdId"] == "c1"
    assert placed[0]["accountId"] == 1 and placed[0]["accountSpec"] == "DEMO1"


async def test_success_answers_return_the_order_id() -> None:
    clock = Clock()
    answers = [{"orderId": 11}, {"failureReason": "Success", "orderId": 12}, {"commandId": 3}]

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T", clock))
        return httpx.Response(200, json=answers.pop(0))

    _, rest, _ = make(handler, clock)
    kw = {"account_id": 1, "account_spec": "A", "symbol": "MNQZ5", "action": "Buy", "qty": 1}
    assert await rest.place_order(**kw) == 11
    assert await rest.place_order(**kw) == 12
    assert (await rest.cancel_order(11))["commandId"] == 3


async def test_placeoso_and_liquidate_bodies() -> None:
    clock = Clock()
    sent: list[tuple[str, dict]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T", clock))
        sent.append((path(request), body(request)))
        if path(request) == "order/placeoso":
            return httpx.Response(200, json={"orderId": 1, "oso1Id": 2})
        return httpx.Response(200, json={"orderId": 3})

    _, rest, _ = make(handler, clock)
    result = await rest.place_oso(
        bracket("Sell", "Stop", stop_price=95.0, cl_ord_id="c1-stop"),
        account_id=1, account_spec="A", symbol="MNQZ5", action="Buy", qty=1, cl_ord_id="c1",
    )  # fmt: skip
    assert result == {"orderId": 1, "oso1Id": 2}
    assert sent[0][1]["bracket1"] == {
        "action": "Sell", "orderType": "Stop", "stopPrice": 95.0, "clOrdId": "c1-stop",
    }  # fmt: skip
    assert sent[0][1]["isAutomated"] is True and "bracket2" not in sent[0][1]
    assert (await rest.liquidate_position(1, 55))["orderId"] == 3
    assert sent[1] == (
        "order/liquidateposition",
        {"accountId": 1, "contractId": 55, "admin": False},
    )


async def test_transport_errors_say_whether_the_request_may_have_been_sent() -> None:
    clock = Clock()
    errors: list[Exception] = [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T", clock))
        raise errors.pop(0)

    _, rest, _ = make(handler, clock)
    kw = {"account_id": 1, "account_spec": "A", "symbol": "MNQZ5", "action": "Buy", "qty": 1}
    with pytest.raises(ConnectionFailed) as err:
        await rest.place_order(**kw)
    assert err.value.sent is False and not err.value.executed_unknown
    with pytest.raises(ConnectionFailed) as err:
        await rest.place_order(**kw)
    assert err.value.sent is True and err.value.executed_unknown


async def test_contract_find_not_found_is_none() -> None:
    clock = Clock()

    def handler(request: httpx.Request) -> httpx.Response:
        if path(request) == "auth/accesstokenrequest":
            return httpx.Response(200, json=token_body("T", clock))
        if path(request) == "contract/find":
            return httpx.Response(404, text="Not found")
        if path(request) == "contract/suggest":
            assert dict(request.url.params) == {"t": "MNQ", "l": "5"}
            return httpx.Response(200, json=[{"id": 1, "name": "MNQZ5"}])
        return httpx.Response(
            200, json={"id": 9, "name": "MNQ", "tickSize": 0.25, "valuePerPoint": 2}
        )

    _, rest, _ = make(handler, clock)
    assert await rest.find_contract("XXZ9") is None
    assert await rest.suggest_contracts("MNQ", 5) == [{"id": 1, "name": "MNQZ5"}]
    product = await rest.find_product("MNQ")
    assert product is not None and product["valuePerPoint"] == 2


async def test_oauth_code_exchange_falls_back_to_demo_on_429() -> None:
    clock = Clock()
    hosts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        if request.url.host == "live.test":
            return httpx.Response(429)
        form = dict(x.split("=") for x in request.content.decode().split("&"))
        assert form["grant_type"] == "authorization_code" and form["code"] == "abc"
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        return httpx.Response(
            200, json={"access_token": "OA", "token_type": "Bearer", "expires_in": 4800}
        )

    app = OAuthApp("cid", "csecret", "https://jt.example/cb")
    auth, _, _ = make(handler, clock, credentials=None, oauth=app)
    tok = await auth.exchange_code("abc")
    assert hosts == ["live.test", "demo.test"]
    assert tok.access_token == "OA" and tok.expires_at == clock.now + 4800
    assert await auth.token() == "OA"  # used as a normal bearer token
    assert auth.throttle.backoff_remaining() == 0  # the live host's 429 blocks nothing else


async def test_oauth_error_is_an_auth_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, json={"error": "invalid_grant", "error_description": "code used"}
        )

    auth, _, _ = make(handler, credentials=None, oauth=OAuthApp("c", "s", "https://x/cb"))
    with pytest.raises(AuthError, match="code used"):
        await auth.exchange_code("abc")


def test_authorize_url_and_endpoints() -> None:
    e = Endpoints.for_env("live")
    assert e.rest == "https://live.tradovateapi.com/v1"
    assert e.ws == "wss://live.tradovateapi.com/v1/websocket"
    assert e.md == "wss://md.tradovateapi.com/v1/websocket"
    url = e.authorize_url("cid", "https://jt.example/cb")
    assert url.startswith("https://trader.tradovate.com/oauth?response_type=code&client_id=cid")
    local = Endpoints.local("http://127.0.0.1:9000")
    assert local.rest == "http://127.0.0.1:9000/v1"
    assert local.ws == "ws://127.0.0.1:9000/v1/websocket"


# --------------------------------------------------------------------------- framing


def test_parse_frame_kinds() -> None:
    assert parse_frame("o").kind == "open"
    assert parse_frame("h").kind == "heartbeat"
    frame = parse_frame('a[{"s":200,"i":2},{"e":"props","d":{"entityType":"fill"}},"{\\"i\\":3}"]')
    assert frame.kind == "array" and len(frame.messages) == 3
    assert frame.messages[2] == {"i": 3}  # a JSON-string item (plain SockJS) is decoded
    close = parse_frame('c[1000,"Normal closure"]')
    assert (close.kind, close.code, close.reason) == ("close", 1000, "Normal closure")
    assert parse_frame(b"o").kind == "open"
    for bad in ("", "x[]", "a{", 'a{"i":1}'):
        with pytest.raises(FrameError):
            parse_frame(bad)


def test_encode_request_keeps_every_line() -> None:
    assert encode_request("executionReport/list", 4) == "executionReport/list\n4\n\n"
    assert encode_request("/tradingPermission/ldeps", 8, "masterids=1") == (
        "tradingPermission/ldeps\n8\nmasterids=1\n"
    )
    assert encode_request("user/syncrequest", 3, body={"users": [7]}) == (
        'user/syncrequest\n3\n\n{"users":[7]}'
    )
    assert authorize_request(0, "tok en") == "authorize\n0\n\ntok en"


def test_classify_responses_and_events() -> None:
    assert classify({"s": 200, "i": 2}) == Response(2, 200, None)
    assert classify({"i": 1, "s": 404, "d": "Not found"}) == Response(1, 404, "Not found")
    assert classify({"e": "props", "d": {"x": 1}}) == Event("props", {"x": 1})
    assert classify({"e": "shutdown"}) == Event("shutdown", None)
    assert classify([1]) is None and classify({"foo": 1}) is None


def test_props_entity_object_or_array_and_tolerance() -> None:
    one = parse_props({"entityType": "order", "eventType": "Created", "entity": {"id": 1}})
    assert one == [PropsEvent("order", "Created", {"id": 1})]
    many = parse_props(
        {"entityType": "fill", "eventType": "Created", "entity": [{"id": 1}, {"id": 2}, 3]}
    )
    assert [p.entity["id"] for p in many] == [1, 2]
    odd = parse_props({"entityType": "brandNewThing", "entity": {"id": 1, "new": "field"}})
    assert odd == [PropsEvent("brandNewThing", "Updated", {"id": 1, "new": "field"})]
    assert parse_props(None) == [] and parse_props({"entity": {}}) == []


def test_snapshot_collection_names_map_to_entity_types() -> None:
    d = {
        "users": [{"id": 7}],
        "positions": [{"id": 1}],
        "contractMaturities": [{"id": 2}],
        "accountRiskStatuses": [{"id": 3}],
        "fills": [{"id": 4}, "junk"],
        "somethingScalar": 5,
    }
    out = snapshot_entities(d)
    assert out["position"] == [{"id": 1}] and out["contractMaturity"] == [{"id": 2}]
    assert out["accountRiskStatus"] == [{"id": 3}] and out["fill"] == [{"id": 4}]
    assert "somethingScalar" not in out and snapshot_entities(None) == {}


# --------------------------------------------------------------------------- sync state


def test_map_status_is_monotonic_and_tolerates_unknown_values() -> None:
    assert map_status("Working", 0, "pending") == "working"
    assert map_status("PendingNew", 0, "working") == "working"
    assert map_status("SomethingNew", 0, "working") == "working"
    assert map_status("Canceled", 0, "filled") == "filled"
    assert map_status("Completed", 1, "working") == "filled"
    assert map_status("Completed", 0, "working") == "cancelled"


def _book() -> tuple[SyncBook, list[Any]]:
    events: list[Any] = []
    book = SyncBook(events.append, clock=Clock())
    book.learn_account({"id": 700, "name": "DEMO1"})
    book.learn_contract({"id": 55, "name": "MNQZ5"})
    return book, events


def _market_fill_sequence(oid: int = 900, fid: int = 905) -> list[PropsEvent]:
    order = {"id": oid, "accountId": 700, "contractId": 55, "action": "Buy"}
    return [
        PropsEvent("order", "Created", order | {"ordStatus": "PendingNew"}),
        PropsEvent("command", "Created", {"id": oid + 1, "orderId": oid, "clOrdId": "c1", "commandType": "New"}),
        PropsEvent("orderVersion", "Created", {"id": oid + 1, "orderId": oid, "orderQty": 1, "orderType": "Market"}),
        PropsEvent("executionReport", "Created", {"id": oid + 2, "orderId": oid, "execType": "New", "ordStatus": "Working"}),
        PropsEvent("order", "Updated", order | {"ordStatus": "Working"}),
        PropsEvent("executionReport", "Created", {"id": oid + 3, "orderId": oid, "execType": "Trade", "ordStatus": "Filled", "cumQty": 1}),
        PropsEvent("fill", "Created", {"id": fid, "orderId": oid, "contractId": 55, "action": "Buy", "qty": 1, "price": 100.25, "timestamp": iso(T0)}),
        PropsEvent("order", "Updated", order | {"ordStatus": "Filled"}),
        PropsEvent("position", "Updated", {"id": 1, "accountId": 700, "contractId": 55, "netPos": 1, "netPrice": 100.25}),
    ]  # fmt: skip


def test_events_before_the_place_answer_wait_and_come_out_in_order() -> None:
    book, events = _book()
    rec = book.new_order("c1", "DEMO1", "MNQZ5", 1)
    rec.account_id, rec.contract_id = 700, 55
    book.sending["c1"] = rec
    seq = _market_fill_sequence()
    book.push_props(seq[:1])
    assert events == [] and book.waiting == 1  # unknown order while placing: wait
    book.push_props(seq[1:])  # the command names clOrdId c1 → linked, inbox drains
    del book.sending["c1"]
    assert rec.order_id == 900
    kinds = [type(e).__name__ + ":" + getattr(e, "status", "") for e in events]
    assert kinds == [
        "OrderState:pending", "OrderState:working", "BrokerFill:", "OrderState:filled",
        "BrokerPosition:",
    ]  # fmt: skip
    fill = events[2]
    assert isinstance(fill, BrokerFill)
    assert (fill.cl_ord_id, fill.account, fill.symbol, fill.side, fill.qty, fill.price) == (
        "c1", "DEMO1", "MNQZ5", "buy", 1, 100.25,
    )  # fmt: skip
    assert fill.fill_id == "905" and fill.broker_order_id == "900"
    assert events[3] == OrderState("c1", "filled", "900", 1, 100.25, None, T0, "DEMO1", "MNQZ5")
    assert events[4] == BrokerPosition("DEMO1", "MNQZ5", 1, 100.25)
    # Late entities with other timestamps only (creation time, later report) change nothing.
    order = {"id": 900, "accountId": 700, "contractId": 55, "ordStatus": "Filled"}
    book.push_props([
        PropsEvent("order", "Updated", order | {"timestamp": iso(T0 - 5)}),
        PropsEvent("executionReport", "Created", {"id": 999, "orderId": 900, "ordStatus": "Filled", "timestamp": iso(T0 + 5)}),
        PropsEvent("fill", "Created", seq[6].entity),  # a replayed fill
    ])  # fmt: skip
    assert len(events) == 5


def test_an_order_seen_before_its_command_gets_our_id_and_its_fills_again() -> None:
    """A broker actor died while placing: its successor never had the order in ``sending``, and
    the Order entity came in an earlier frame than the Command naming our clOrdId. The order
    was filed as foreign; once the command names it, its state and fills are published again
    under our id (else the pair would never book them and would take it for never placed)."""
    book, events = _book()
    seq = _market_fill_sequence()
    book.push_props(seq[:1])  # the order alone: nobody is placing, so it is someone else's
    assert "tradovate-900" in book.by_cl and book.counts["foreign_orders"] == 1
    book.push_props([seq[3], seq[5], seq[6], seq[7]])  # working, filled, the fill: still foreign
    assert [e.cl_ord_id for e in events if isinstance(e, BrokerFill)] == ["tradovate-900"]
    before = len(events)
    book.push_props([seq[1]])  # the command with clOrdId c1, in its own frame
    assert "c1" in book.by_cl and "tradovate-900" not in book.by_cl
    again = events[before:]
    fills = [e for e in again if isinstance(e, BrokerFill)]
    assert [(f.cl_ord_id, f.side, f.qty, f.price, f.fill_id) for f in fills] == [
        ("c1", "buy", 1, 100.25, "905")
    ]
    states = [e for e in again if isinstance(e, OrderState)]
    assert states and states[-1].cl_ord_id == "c1" and states[-1].status == "filled"
    assert book.counts["rekeyed"] == 1 and book.counts["foreign_orders"] == 0


def test_foreign_orders_on_other_contracts_do_not_wait_for_our_placements() -> None:
    book, events = _book()
    book.learn_contract({"id": 66, "name": "ESZ5"})
    rec = book.new_order("c1", "DEMO1", "MNQZ5", 1)
    rec.account_id, rec.contract_id = 700, 55
    book.sending["c1"] = rec
    other = {
        "id": 500,
        "accountId": 700,
        "contractId": 66,
        "ordStatus": "Working",
        "action": "Sell",
    }
    book.push_props([PropsEvent("order", "Created", other)])  # by hand, another contract
    assert [(e.cl_ord_id, e.status, e.symbol) for e in events] == [
        ("tradovate-500", "working", "ESZ5")
    ]
    same = other | {"id": 501, "contractId": 55}
    book.push_props([PropsEvent("order", "Created", same)])  # could be ours: waits
    assert len(events) == 1 and book.waiting == 1
    del book.sending["c1"]
    book.pump()
    assert events[-1].cl_ord_id == "tradovate-501" and rec.order_id is None


def test_resync_snapshot_never_repeats_a_fill_and_reports_what_was_missed() -> None:
    book, events = _book()
    book.new_order("c1", "DEMO1", "MNQZ5", 1)
    book.push_props(_market_fill_sequence())
    count = len(events)
    snapshot = {
        "command": [{"id": 901, "orderId": 900, "clOrdId": "c1", "commandType": "New"}],
        "order": [
            {"id": 900, "accountId": 700, "contractId": 55, "ordStatus": "Filled"},
            {"id": 950, "accountId": 700, "contractId": 55, "ordStatus": "Filled", "action": "Sell"},
        ],
        "fill": [
            {"id": 905, "orderId": 900, "contractId": 55, "action": "Buy", "qty": 1, "price": 100.25},
            {"id": 955, "orderId": 950, "contractId": 55, "action": "Sell", "qty": 1, "price": 101.0},
        ],
        "position": [{"id": 1, "accountId": 700, "contractId": 55, "netPos": 0, "netPrice": None}],
    }  # fmt: skip
    book.push_snapshot(snapshot)
    book.push_snapshot(snapshot)  # a second resync changes nothing
    new = events[count:]
    assert book.counts["duplicate_fills"] == 3
    assert [type(e).__name__ for e in new] == ["BrokerFill", "OrderState", "BrokerPosition"]
    assert new[0].cl_ord_id == "tradovate-950" and new[0].fill_id == "955"  # entered by hand
    assert new[1].status == "filled" and new[1].account == "DEMO1"
    assert new[2] == BrokerPosition("DEMO1", "MNQZ5", 0, None)


def test_unknown_contract_waits_for_its_name() -> None:
    asked: list[int] = []
    events: list[Any] = []
    book = SyncBook(events.append, asked.append, Clock())
    book.learn_account({"id": 700, "name": "DEMO1"})
    pos = {"id": 1, "accountId": 700, "contractId": 77, "netPos": -2, "netPrice": 5000.5}
    book.push_props([PropsEvent("position", "Created", pos)])
    book.push_props([PropsEvent("position", "Updated", pos | {"netPos": -1})])
    assert events == [] and asked == [77]  # asked once, both wait in order
    book.learn_contract({"id": 77, "name": "ESZ5"})
    book.pump()
    assert events == [
        BrokerPosition("DEMO1", "ESZ5", -2, 5000.5),
        BrokerPosition("DEMO1", "ESZ5", -1, 5000.5),
    ]


def test_rejection_reason_from_reports() -> None:
    book, events = _book()
    rec = book.new_order("c9", "DEMO1", "MNQZ5", 1)
    book.link(rec, 300)
    book.push_props([
        PropsEvent("command", "Created", {"id": 301, "orderId": 300, "clOrdId": "c9"}),
        PropsEvent("executionReport", "Created", {"id": 302, "orderId": 300, "execType": "Rejected", "ordStatus": "Rejected", "rejectReason": "NoQuote", "text": "No quote"}),
        PropsEvent("order", "Updated", {"id": 300, "accountId": 700, "contractId": 55, "ordStatus": "Rejected"}),
    ])  # fmt: skip
    assert [(e.status, e.reason) for e in events] == [("rejected", "NoQuote: No quote")]


# --------------------------------------------------------------------------- socket (loopback)


async def _fake_server(script: Callable[[Any, int], Any]) -> tuple[Any, str]:
    connection_no = 0

    async def handler(ws: Any) -> None:
        nonlocal connection_no
        connection_no += 1
        await script(ws, connection_no)

    server = await serve(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"ws://127.0.0.1:{port}"


async def test_socket_authorizes_routes_events_heartbeats_and_reconnects_on_close() -> None:
    received: list[str] = []
    heartbeat = asyncio.Event()

    async def script(ws: Any, n: int) -> None:
        await ws.send("o")
        auth = await ws.recv()
        endpoint, rid, _, token = auth.split("\n", 3)
        received.append(f"{n}:{endpoint}:{token}")
        await ws.send(f'a[{{"s":200,"i":{rid}}}]')
        sync = (await ws.recv()).split("\n")
        received.append(f"{n}:{sync[0]}")
        events = [
            {
                "e": "props",
                "d": {"entityType": "fill", "eventType": "Created", "entity": {"id": n}},
            },
            {"s": 200, "i": int(sync[1]), "d": {"users": []}},
        ]
        await ws.send("a" + json.dumps(events))
        if n == 1:
            while await ws.recv() != "[]":
                pass
            heartbeat.set()
            await ws.send('c[3000,"Go away!"]')
        else:
            await asyncio.Future()  # hold the connection open

    server, url = await _fake_server(script)
    events: list[Event] = []
    opened: list[Any] = []

    async def on_open(sock: TradovateSocket) -> None:
        with sock.hold():
            opened.append(await sock.request("user/syncrequest", {"users": [7]}))

    async def token() -> str:
        return "TOK"

    sock = TradovateSocket(
        url, token, events.append, on_open=on_open, heartbeat_s=0.02, stale_s=5,
        backoff_initial_s=0, sleep=Sleeps(),
    )  # fmt: skip
    sock.start()
    try:
        await asyncio.wait_for(heartbeat.wait(), 5)
        while len(opened) < 2:
            await asyncio.sleep(0.01)
        await asyncio.wait_for(sock.ready.wait(), 5)
    finally:
        await sock.close()
        server.close()
    assert received == [
        "1:authorize:TOK",
        "1:user/syncrequest",
        "2:authorize:TOK",
        "2:user/syncrequest",
    ]
    assert opened == [{"users": []}, {"users": []}]
    assert [e.data["entity"]["id"] for e in events] == [1, 2]  # held until the sync returned
    assert sock.counts["closes"] == 1 and sock.counts["connects"] == 2


async def test_socket_stale_connection_reconnects() -> None:
    connects = 0
    second = asyncio.Event()

    async def script(ws: Any, n: int) -> None:
        nonlocal connects
        connects = n
        await ws.send("o")
        rid = (await ws.recv()).split("\n")[1]
        await ws.send(f'a[{{"s":200,"i":{rid}}}]')
        if n == 2:
            second.set()
        await asyncio.Future()  # then silence: no frames at all

    server, url = await _fake_server(script)

    async def token() -> str:
        return "TOK"

    sock = TradovateSocket(url, token, lambda e: None, heartbeat_s=10, stale_s=0.2, sleep=Sleeps())
    sock.start()
    try:
        await asyncio.wait_for(second.wait(), 5)
    finally:
        await sock.close()
        server.close()
    assert connects == 2 and sock.counts["stale"] >= 1


async def test_socket_request_waits_out_a_penalty_and_resends_with_the_ticket() -> None:
    bodies: list[str] = []

    async def script(ws: Any, n: int) -> None:
        await ws.send("o")
        rid = (await ws.recv()).split("\n")[1]
        await ws.send(f'a[{{"s":200,"i":{rid}}}]')
        for answer in ({"p-ticket": "wt", "p-time": 4}, {"users": []}):
            _, rid, _, text = (await ws.recv()).split("\n", 3)
            bodies.append(text)
            await ws.send("a" + json.dumps([{"s": 200, "i": int(rid), "d": answer}]))
        _, rid, _, _ = (await ws.recv()).split("\n", 3)
        await ws.send("a" + json.dumps([{"s": 429, "i": int(rid)}]))
        await asyncio.Future()

    server, url = await _fake_server(script)
    sleeps = Sleeps()
    results: list[Any] = []

    async def on_open(sock: TradovateSocket) -> None:
        results.append(await sock.request("user/syncrequest", {"users": [7]}))
        with pytest.raises(RateLimited):
            await sock.request("user/syncrequest", {"users": [7]})
        results.append("429")

    async def token() -> str:
        return "TOK"

    sock = TradovateSocket(url, token, lambda e: None, on_open=on_open, sleep=sleeps)
    sock.start()
    try:
        await asyncio.wait_for(sock.ready.wait(), 5)
    finally:
        await sock.close()
        server.close()
    assert results == [{"users": []}, "429"]
    assert sleeps.calls == [4.0]
    assert [json.loads(b) for b in bodies] == [{"users": [7]}, {"users": [7], "p-ticket": "wt"}]


def test_errors_survive_pickling_with_their_attributes() -> None:
    rejected = pickle.loads(
        pickle.dumps(CommandRejected("NoQuote", "No quote", [], 5, "order/placeorder"))
    )
    assert (rejected.reason, rejected.order_id, str(rejected)) == (
        "NoQuote: No quote", 5, "Tradovate rejected order/placeorder: NoQuote: No quote",
    )  # fmt: skip
    lost = pickle.loads(
        pickle.dumps(ConnectionFailed("order/placeorder", "ReadTimeout", sent=True))
    )
    assert lost.sent and lost.executed_unknown
    limited = pickle.loads(pickle.dumps(RateLimited(12.5, "order/list")))
    assert limited.retry_after == 12.5 and isinstance(limited, RateLimited)
