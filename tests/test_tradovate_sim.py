"""Tradovate simulator over real HTTP and websockets on loopback (actors/broker/tradovate/sim).

Each test starts its own simulator (uvicorn in a thread on a free port) with a fixed trading
day, so MNQZ6 is the front month and ids are deterministic. Section numbers refer to
reference/tradovate.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import httpx
import pytest

from actors.broker.tradovate.sim import SimConfig, SimServer, SimUser
from actors.broker.tradovate.sim.__main__ import build_parser
from actors.broker.tradovate.sim.testing import Api, Socket, user_socket

DAY = date(2026, 11, 2)
MNQ = "MNQZ6"
USER, PASSWORD = "simuser", "simpass"


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["entityType"], e["eventType"]) for e in events]


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(on=DAY), {"server_heartbeat_s": 0.3}) as s:
        yield s


@pytest.fixture
def api(server: SimServer) -> Api:
    return Api(server)


# ---------------------------------------------------------------------- auth (§2)


def test_wrong_password_is_200_with_error_text(server: SimServer) -> None:
    r = httpx.post(
        f"{server.base_url}/auth/accesstokenrequest",
        json={"name": USER, "password": "wrong"},
        trust_env=False,
    )
    assert r.status_code == 200
    assert r.json()["errorText"] and "accessToken" not in r.json()


def test_login_renew_me_and_expiry_give_401(api: Api) -> None:
    auth = api.auth
    assert auth["userId"] == 1 and auth["name"] == USER and auth["mdAccessToken"]
    assert auth["expirationTime"].endswith("Z") and auth["hasLive"] is False
    assert api.get("auth/me")["userId"] == 1
    renewed = api.get("auth/renewaccesstoken")
    assert renewed["accessToken"] != api.token
    for token in (api.token, renewed["accessToken"]):  # the old token lives until its expiry
        assert api.raw("GET", "auth/me", token=token).status_code == 200
    assert api.http.get("/auth/me").status_code == 401  # no bearer
    assert api.raw("GET", "auth/me", token="forged").status_code == 401
    assert api.raw("GET", "no/such/endpoint").status_code == 404
    assert api.faults(expire_tokens_now=True)["done"]["expired_tokens"] >= 2
    for token in (api.token, renewed["accessToken"]):
        r = api.raw("POST", "order/placeorder", token=token, json={})
        assert r.status_code == 401 and r.content == b""


def test_short_token_lifetime_expires(api: Api) -> None:
    api.faults(token_lifetime_s=0.4)
    token = api.login()["accessToken"]
    assert api.raw("GET", "account/list", token=token).status_code == 200
    time.sleep(0.5)
    assert api.raw("GET", "account/list", token=token).status_code == 401


def test_third_session_closes_the_oldest(server: SimServer, api: Api) -> None:
    sock = user_socket(server, api.token, sync=False)
    second, third = api.login()["accessToken"], api.login()["accessToken"]
    assert api.raw("GET", "auth/me").status_code == 401  # the first session was closed (§2.1)
    assert api.raw("GET", "auth/me", token=second).status_code == 200
    assert api.raw("GET", "auth/me", token=third).status_code == 200
    event = sock.take(lambda m: m.get("e") == "shutdown")
    assert event["d"]["reasonCode"] == "ConnectionQuotaReached"


def test_oauth_code_flow(server: SimServer, api: Api) -> None:
    r = api.http.get(
        f"http://{server.host}:{server.port}/oauth",
        params={"response_type": "code", "client_id": "cid", "redirect_uri": "http://cb/x"},
    )
    assert r.status_code == 302
    code = httpx.URL(r.headers["location"]).params["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://cb/x"}
    token = api.http.post("/auth/oauthtoken", data=form | {"client_id": "cid"}).json()
    assert token["token_type"] == "bearer" and token["expires_in"] > 0
    assert api.raw("GET", "auth/me", token=token["access_token"]).json()["userId"] == 1
    again = api.http.post("/auth/oauthtoken", json=form).json()  # codes are single use
    assert again["error"] == "invalid_grant" and "access_token" not in again


def test_live_orders_need_an_approved_device() -> None:
    config = SimConfig(on=DAY, environment="live", approved_devices={"good"})
    with SimServer(config) as server:
        bad = Api(server, deviceId="unknown")
        assert bad.auth["hasLive"] is True
        order = {"accountId": bad.account["id"], "action": "Buy", "symbol": MNQ}
        order |= {"orderQty": 1, "orderType": "Market", "isAutomated": True}
        assert bad.raw("POST", "order/placeorder", json=order).status_code == 401
        good = Api(server, deviceId="good")
        good.prices(100.0)
        assert "orderId" in good.order("Buy")


# ---------------------------------------------------------------------- contracts (§4.7)


def test_contract_library(api: Api) -> None:
    contract = api.get("contract/find", name=MNQ)
    assert contract["name"] == MNQ and api.get("contract/item", id=contract["id"]) == contract
    maturity = api.get("contractMaturity/item", id=contract["contractMaturityId"])
    assert maturity["isFront"] is True and maturity["expirationMonth"] == 202612
    product = api.get("product/item", id=maturity["productId"])
    assert product == api.get("product/find", name="MNQ")
    assert (product["tickSize"], product["valuePerPoint"]) == (0.25, 2.0)
    suggested = api.get("contract/suggest", t="MNQ", l=2)
    assert [c["name"] for c in suggested] == ["MNQZ6", "MNQH7"]
    assert api.raw("GET", "contract/find", params={"name": "MNQZ2026"}).status_code == 404
    assert api.raw("GET", "contract/find", params={"name": "XYZZ6"}).status_code == 404
    assert api.get("contract/find", name="ESH8")["name"] == "ESH8"  # any listed contract


def test_order_refusals(api: Api) -> None:
    assert api.order("Buy", symbol="XYZZ6") == {
        "failureReason": "UnknownReason",
        "failureText": "Access is denied",
    }
    body = {"action": "Buy", "symbol": MNQ, "orderQty": 1, "orderType": "Market"}
    assert "violations" in api.post("order/placeorder", body)  # neither accountId nor spec
    assert api.order("Buy", accountSpec="SOMEONE-ELSE")["failureText"] == "Access is denied"
    assert api.order("Buy", kind="Stop")["failureReason"] == "InvalidPrice"
    assert api.order("Buy", kind="TrailingStop")["failureReason"] == "Unsupported"


# ---------------------------------------------------------------------- orders and events


def test_market_order_fills_at_pushed_price_with_events_in_order(
    server: SimServer, api: Api
) -> None:
    sock = user_socket(server, api.token)
    api.prices(21000.0, 21000.25)
    order_id = api.order("Buy", 2, clOrdId="jt-1")["orderId"]
    events = sock.props(until=lambda d: d["entityType"] == "position")
    assert kinds(events) == [
        ("order", "Created"),
        ("command", "Created"),
        ("orderVersion", "Created"),
        ("commandReport", "Created"),
        ("executionReport", "Created"),
        ("order", "Updated"),
        ("executionReport", "Created"),
        ("fill", "Created"),
        ("order", "Updated"),
        ("position", "Created"),
    ]
    entity = [e["entity"] for e in events]
    assert entity[0]["ordStatus"] == "PendingNew" and entity[0]["id"] == order_id
    assert entity[1]["clOrdId"] == "jt-1" and entity[1]["isAutomated"] is True
    assert entity[2]["id"] == entity[1]["id"]  # orderVersion id == command id (§4.4)
    assert [entity[4]["execType"], entity[5]["ordStatus"]] == ["New", "Working"]
    assert entity[6]["execType"] == "Trade" and entity[6]["lastPx"] == 21000.25
    assert (entity[7]["price"], entity[7]["qty"], entity[7]["action"]) == (21000.25, 2, "Buy")
    assert entity[8]["ordStatus"] == "Filled"
    assert (entity[9]["netPos"], entity[9]["netPrice"]) == (2, 21000.25)
    [position] = api.get("position/list")
    assert (position["netPos"], position["netPrice"], position["bought"]) == (2, 21000.25, 2)
    assert [f["id"] for f in api.get("fill/deps", masterid=order_id)] == [entity[7]["id"]]

    api.prices(21010.25)  # close one contract at +10 points: $20 realised on MNQ
    api.order("Sell", 1, clOrdId="jt-2")
    later = sock.props(until=lambda d: d["entityType"] == "cashBalance")
    position = next(e["entity"] for e in later if e["entityType"] == "position")
    assert (position["netPos"], position["netPrice"], position["sold"]) == (1, 21000.25, 1)
    assert later[-1]["entity"]["realizedPnL"] == pytest.approx(20.0)
    snapshot = api.post("cashBalance/getcashbalancesnapshot", {"accountId": api.account["id"]})
    assert snapshot["realizedPnL"] == pytest.approx(20.0)
    assert snapshot["openPnL"] == pytest.approx(20.0)  # 1 contract, +10 points

    placed = api.admin.get("/requests", params={"endpoint": "order/placeorder"}).json()
    assert [r["params"]["clOrdId"] for r in placed["requests"]] == ["jt-1", "jt-2"]
    assert all(r["params"]["isAutomated"] is True for r in placed["requests"])


def test_stop_triggers_at_first_price_at_or_beyond_and_fills_there(api: Api) -> None:
    api.prices(21010.0)
    api.order("Buy")
    stop_id = api.order("Sell", kind="Stop", stopPrice=21000.0)["orderId"]
    api.prices(21005.0, 21000.25)
    assert api.status(stop_id) == "Working"
    api.prices(20990.0)  # gaps through the stop: fills at the print, not at the stop
    assert api.status(stop_id) == "Filled"
    [fill] = api.get("fill/deps", masterid=stop_id)
    assert (fill["price"], fill["action"]) == (20990.0, "Sell")
    assert api.get("position/list")[0]["netPos"] == 0


def test_limit_rests_until_price_at_or_better(api: Api) -> None:
    api.prices(21010.0)
    limit_id = api.order("Buy", kind="Limit", price=21000.0)["orderId"]
    api.prices(21000.25)
    assert api.status(limit_id) == "Working"
    api.prices(21000.0)
    assert api.status(limit_id) == "Filled"
    assert api.get("fill/deps", masterid=limit_id)[0]["price"] == 21000.0


def test_cancel_and_modify(api: Api) -> None:
    api.prices(21000.0)
    stop_id = api.order("Buy", kind="Stop", stopPrice=21010.0)["orderId"]
    modified = api.post(
        "order/modifyorder",
        {"orderId": stop_id, "orderQty": 1, "orderType": "Stop", "stopPrice": 21020.0},
    )
    versions = api.get("orderVersion/deps", masterid=stop_id)
    assert versions[-1]["id"] == modified["commandId"] and versions[-1]["stopPrice"] == 21020.0
    api.prices(21015.0)  # the old stop price no longer triggers
    assert api.status(stop_id) == "Working"
    cancelled = api.post("order/cancelorder", {"orderId": stop_id, "isAutomated": True})
    assert cancelled["commandId"] > 0 and api.status(stop_id) == "Canceled"
    api.prices(21030.0)
    assert api.status(stop_id) == "Canceled" and api.get("fill/list") == []
    assert api.post("order/cancelorder", {"orderId": stop_id})["failureReason"] == "TooLate"


def test_liquidate_position_cancels_orders_and_flattens(api: Api) -> None:
    api.prices(21000.0)
    api.order("Buy", 3)
    stop_id = api.order("Sell", 3, kind="Stop", stopPrice=20900.0)["orderId"]
    contract = api.get("contract/find", name=MNQ)
    result = api.post(
        "order/liquidateposition",
        {"accountId": api.account["id"], "contractId": contract["id"], "admin": False},
    )
    assert api.status(stop_id) == "Canceled"
    [fill] = api.get("fill/deps", masterid=result["orderId"])
    assert (fill["action"], fill["qty"]) == ("Sell", 3)
    assert api.get("position/list")[0]["netPos"] == 0


def test_oso_brackets_work_after_entry_and_cancel_each_other(api: Api) -> None:
    api.prices(21000.0)
    body = {
        "accountId": api.account["id"],
        "accountSpec": api.account["name"],
        "action": "Buy",
        "symbol": MNQ,
        "orderQty": 1,
        "orderType": "Limit",
        "price": 20990.0,
        "isAutomated": True,
        "bracket1": {"action": "Sell", "orderType": "Limit", "price": 21010.0},
        "bracket2": {"action": "Sell", "orderType": "Stop", "stopPrice": 20980.0},
    }
    ids = api.post("order/placeoso", body)
    assert api.status(ids["oso1Id"]) == "Suspended" and api.status(ids["oso2Id"]) == "Suspended"
    api.prices(20990.0)
    assert [api.status(ids[k]) for k in ("orderId", "oso1Id", "oso2Id")] == [
        "Filled",
        "Working",
        "Working",
    ]
    api.prices(21010.0)
    assert api.status(ids["oso1Id"]) == "Filled" and api.status(ids["oso2Id"]) == "Canceled"
    assert api.get("position/list")[0]["netPos"] == 0


# ---------------------------------------------------------------------- faults


def test_p_ticket_penalty_and_resend_with_ticket(api: Api) -> None:
    api.prices(21000.0)
    api.faults(penalty_count=1, penalty_p_time=1, penalty_endpoints=["order/placeorder"])
    penalty = api.order("Buy")
    assert set(penalty) == {"p-ticket", "p-time"} and penalty["p-time"] == 1
    early = api.order("Buy", **{"p-ticket": penalty["p-ticket"]})
    assert early["p-ticket"] == penalty["p-ticket"] and "orderId" not in early
    time.sleep(1.05)
    assert "orderId" in api.order("Buy", **{"p-ticket": penalty["p-ticket"]})
    assert "orderId" in api.order("Buy")  # the penalty was for one request only
    assert len(api.get("fill/list")) == 2

    api.faults(penalty_count=1, penalty_p_time=0, penalty_captcha=True, penalty_endpoints=None)
    captcha = api.get("account/list")
    assert captcha["p-captcha"] is True
    again = api.raw("GET", "account/list", params={"p-ticket": captcha["p-ticket"]}).json()
    assert again["p-captcha"] is True  # a captcha ticket is never honoured (§3.1)


def test_repeated_bad_logins_get_a_captcha_penalty(api: Api) -> None:
    api.faults(captcha_after_failures=2)
    for _ in range(2):
        assert "errorText" in api.login(password="wrong")
    assert api.login()["p-captcha"] is True  # even the right password (§2.1)


def test_429_and_penalty_over_rest_and_websocket(server: SimServer, api: Api) -> None:
    sock = user_socket(server, api.token, sync=False)
    api.faults(http429_count=2)
    r = api.raw("GET", "account/list")
    assert r.status_code == 429 and r.content == b""
    rid = sock.send("account/list")
    assert sock.take(lambda m: m.get("i") == rid) == {"s": 429, "i": rid}
    assert api.raw("GET", "account/list").status_code == 200
    api.faults(http429_for_s=0.2)  # a 429 window instead of a count
    assert api.raw("GET", "auth/me").status_code == 429
    time.sleep(0.25)
    assert api.raw("GET", "auth/me").status_code == 200
    api.faults(penalty_count=1)  # a p-ticket over the socket is a normal 200 response (§3.1)
    penalty = sock.request("account/list")
    assert penalty["s"] == 200 and penalty["d"]["p-time"] == 1 and "p-ticket" in penalty["d"]


def test_rejections_in_result_and_report_mode(api: Api) -> None:
    api.prices(21000.0)
    api.faults(reject_count=1, reject_reason="MaxPosLimitReached", reject_text="too big")
    assert api.order("Buy") == {"failureReason": "MaxPosLimitReached", "failureText": "too big"}
    assert api.get("order/list") == []
    api.faults(reject_count=1, reject_reason="RiskCheckTimeout", reject_mode="report")
    order_id = api.order("Buy")["orderId"]
    assert api.status(order_id) == "Rejected"
    [command] = api.get("command/deps", masterid=order_id)
    reports = api.get("executionReport/deps", masterid=command["id"])
    assert reports[-1]["execType"] == "Rejected"
    assert reports[-1]["rejectReason"] == "RiskCheckTimeout"
    assert api.get("fill/list") == []


def test_delayed_fill_uses_the_price_after_the_delay(api: Api) -> None:
    api.prices(21000.0)
    api.faults(fill_delay_ms=300)
    order_id = api.order("Buy")["orderId"]
    assert api.status(order_id) == "Working"
    api.prices(21002.5)
    time.sleep(0.5)
    assert api.status(order_id) == "Filled"
    assert api.get("fill/deps", masterid=order_id)[0]["price"] == 21002.5


def test_shutdown_event_then_close(server: SimServer, api: Api) -> None:
    sock = user_socket(server, api.token)
    api.faults(ws_shutdown="Maintenance")
    event = sock.take(lambda m: m.get("e") == "shutdown")
    assert event["d"]["reasonCode"] == "Maintenance"
    assert sock.closed() == 1000
    assert any(f.startswith("c[1000,") for f in sock.raw)


def test_drop_closes_without_shutdown(server: SimServer, api: Api) -> None:
    sock = user_socket(server, api.token)
    assert api.faults(ws_drop=True)["done"]["dropped_sockets"] == 1
    assert sock.closed() == 1011
    assert not any(m.get("e") == "shutdown" for m in sock.backlog)


def test_missed_heartbeats_disconnect_and_server_sends_h(server: SimServer, api: Api) -> None:
    api.faults(heartbeat_timeout_s=0.6)
    silent, beating = user_socket(server, api.token), user_socket(server, api.token)
    deadline = time.monotonic() + 1.2
    while time.monotonic() < deadline:
        beating.ws.send("[]")
        time.sleep(0.1)
    assert silent.closed(timeout=1) == 1000 and silent.close_reason == "Heartbeat timeout"
    assert "h" in silent.raw  # idle server heartbeats (§5.1)
    assert beating.request("account/list")["s"] == 200  # still open


def test_unauthorised_socket_is_closed(server: SimServer, api: Api) -> None:
    api.faults(auth_timeout_s=0.3)
    sock = Socket(server.ws_url)
    assert sock.closed(timeout=2) == 1000 and sock.close_reason == "Authorization timeout"


def test_socket_framing_errors_and_rest_over_socket(server: SimServer, api: Api) -> None:
    sock = Socket(server.ws_url)
    assert sock.request("account/list")["s"] == 401  # before authorize
    bad = sock.request("authorize", "not-a-token")
    assert bad["s"] == 401 and bad["d"] == "Invalid access token"
    assert sock.request("authorize", json.dumps(api.token))["s"] == 200  # quoted token (§5.3)
    sock.ws.send("account/list\n7\n")  # three fields only (§5.2)
    assert sock.take(lambda m: m.get("i") == 7)["s"] == 400
    assert sock.request("contract/find", "{'name': 'MNQZ6'}")["s"] == 400  # single quotes
    assert sock.request("contract/find", query="name=MNQZ6")["d"]["name"] == MNQ
    assert sock.request("account/list")["d"][0]["id"] == api.account["id"]
    missing = sock.request("quote/subscribe")
    assert missing["s"] == 404 and isinstance(missing["d"], str)
    assert sock.request("md/subscribeQuote", {"symbol": MNQ})["s"] == 404  # wrong socket


def test_md_quotes_after_price_push(server: SimServer, api: Api) -> None:
    contract = api.get("contract/find", name=MNQ)
    user_sock = Socket(server.ws_url)
    assert user_sock.request("authorize", api.auth["mdAccessToken"])["s"] == 401
    md = Socket(server.md_ws_url)
    assert md.request("authorize", api.auth["mdAccessToken"])["s"] == 200
    assert md.request("md/subscribequote", {"symbol": MNQ})["s"] == 200  # any case (§5.7)
    api.prices(21000.0)
    quote = md.take(lambda m: m.get("e") == "md")["d"]["quotes"][0]
    assert quote["contractId"] == contract["id"]
    entries = quote["entries"]
    assert entries["Trade"]["price"] == 21000.0
    assert (entries["Bid"]["price"], entries["Offer"]["price"]) == (21000.0, 21000.25)
    assert md.request("md/unsubscribeQuote", {"symbol": contract["id"]})["s"] == 200
    api.prices(21001.0)
    assert md.request("md/subscribeQuote", {"symbol": contract["id"]})["s"] == 200
    snapshot = md.take(lambda m: m.get("e") == "md")["d"]["quotes"][0]
    assert snapshot["entries"]["Trade"]["price"] == 21001.0  # the only quote since unsubscribing
    assert md.request("md/subscribeQuote", {"symbol": "NOPE"})["s"] == 400


def test_in_process_price_sources() -> None:
    with SimServer(SimConfig(on=DAY), walk={"MNQ1!": 21000.0}, walk_interval_s=0.02) as server:
        time.sleep(0.25)
        quotes = server.call_in_loop(lambda: list(server.sim.engine.quotes.values()))
        [quote] = quotes
        ticks = quote["entries"]["TotalTradeVolume"]["size"]
        price = quote["entries"]["Trade"]["price"]
        assert ticks >= 3 and abs(price - 21000.0) <= 0.25 * ticks and price % 0.25 == 0
        assert server.push_prices([{"symbol": "ESZ6", "price": 6000.0}]) == {"applied": 1}
        last = server.call_in_loop(lambda: server.sim.engine.matcher.last_price("ESZ6"))
        assert last == 6000.0
    with pytest.raises(ValueError):
        SimServer(walk={"NOPE": 1.0})


def test_admin_rejects_bad_input(api: Api) -> None:
    assert api.admin.post("/faults", json={"no_such_switch": 1}).status_code == 400
    assert api.admin.post("/faults", json={"reject_reason": "Nope"}).status_code == 400
    assert api.admin.post("/prices", json=[{"symbol": "XYZ", "price": 1}]).status_code == 400
    assert api.admin.get("/faults").json()["reject_reason"] == "OtherExecutionRelated"


def test_cli_parser_and_users() -> None:
    args = build_parser().parse_args(["--port", "9999", "--account", "A", "--account", "B"])
    assert (args.port, args.accounts, args.environment) == (9999, ["A", "B"], "demo")
    with pytest.raises(ValueError):
        SimConfig(users=[SimUser(accounts=["X"]), SimUser(user_id=2, accounts=["X"])])
