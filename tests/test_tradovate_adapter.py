"""TradovateBroker against the project's Tradovate simulator over real loopback sockets.

The simulator (``actors.broker.tradovate.sim``) runs in a uvicorn thread on a free port, one
fresh instance per test; prices and faults are pushed through its ``/sim`` admin endpoints.
Waits poll the adapter's state with a deadline (no fixed sleeps); the only real waits are the
simulator's 1 s ``p-time`` and a 2 s token lifetime.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
import uvicorn

from actors.broker.actor import BrokerActor
from actors.broker.base import (
    Broker,
    BrokerFill,
    BrokerPosition,
    OrderRequest,
    OrderState,
    Priority,
    UnknownOrder,
)
from actors.broker.tradovate.adapter import TradovateBroker, TradovateConfig
from actors.broker.tradovate.auth import Credentials, Endpoints, derive_device_id
from actors.broker.tradovate.sim.app import create_app
from actors.broker.tradovate.sim.core import TradovateSim
from actors.instruments import front_month

ACCOUNT = "DEMO0001"
SYMBOL = front_month("MNQ", date.today())  # what the simulator's catalog calls the front month
DEVICE = derive_device_id("test-device-secret", "simuser")


@dataclass
class Sim:
    base: str
    sim: TradovateSim
    http: httpx.AsyncClient

    async def prices(self, *prices: float, symbol: str = SYMBOL) -> None:
        resp = await self.http.post(
            "/sim/prices", json=[{"symbol": symbol, "price": p} for p in prices]
        )
        assert resp.status_code == 200, resp.text

    async def faults(self, **changes: Any) -> dict[str, Any]:
        resp = await self.http.post("/sim/faults", json=changes)
        assert resp.status_code == 200, resp.text
        return resp.json()

    async def requests(self, endpoint: str) -> list[dict[str, Any]]:
        resp = await self.http.get("/sim/requests", params={"endpoint": endpoint})
        return resp.json()["requests"]

    async def state(self) -> dict[str, Any]:
        return (await self.http.get("/sim/state")).json()


@pytest.fixture
def sim_server() -> Iterator[tuple[str, TradovateSim]]:
    sim = TradovateSim()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(sim), log_level="warning", ws="websockets-sansio", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}", sim
    server.should_exit = True
    thread.join(5)


@pytest.fixture
async def env(sim_server: tuple[str, TradovateSim]) -> AsyncIterator[Sim]:
    base, sim = sim_server
    async with httpx.AsyncClient(base_url=base) as http:
        yield Sim(base, sim, http)


class Limiter:
    def __init__(self) -> None:
        self.penalties: list[float] = []

    def penalty(self, seconds: float) -> None:
        self.penalties.append(seconds)


def make_broker(env: Sim, **overrides: Any) -> tuple[TradovateBroker, list[Any]]:
    creds = Credentials("simuser", "simpass", "JustTrades", "1.0", 0, "sec", DEVICE)
    config = TradovateConfig(
        credentials=creds, endpoints=Endpoints.local(env.base), stale_s=5.0,
        rate_limit_base_s=0.05, cancel_wait_s=3.0, reconnect_initial_s=0.3, **overrides,
    )  # fmt: skip
    broker = TradovateBroker.from_config(config)
    events: list[Any] = []
    broker.set_listener(events.append)
    return broker, events


@pytest.fixture
async def broker(env: Sim) -> AsyncIterator[tuple[TradovateBroker, list[Any]]]:
    b, events = make_broker(env)
    b.set_limiter(Limiter())
    await b.start()
    yield b, events
    await b.close()


async def until(check: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.01)


def order(cl: str, side: str, qty: int = 1, stop: float | None = None) -> OrderRequest:
    return OrderRequest(
        cl, ACCOUNT, SYMBOL, side,  # type: ignore[arg-type]
        qty, "stop" if stop is not None else "market", stop,
    )  # fmt: skip


def of(events: list[Any], cl: str) -> list[Any]:
    return [e for e in events if isinstance(e, OrderState | BrokerFill) and e.cl_ord_id == cl]


def positions(events: list[Any]) -> list[BrokerPosition]:
    return [e for e in events if isinstance(e, BrokerPosition)]


def fill_ids(events: list[Any]) -> list[str]:
    return [e.fill_id for e in events if isinstance(e, BrokerFill)]


# --------------------------------------------------------------------------- scenarios


async def test_login_and_sync(env: Sim, broker: tuple[TradovateBroker, list[Any]]) -> None:
    b, events = broker
    assert isinstance(b, Broker) and b.kind == "tradovate"
    status = b.status()
    assert status["connected"] and status["synced"] and status["syncs"] == 1
    assert await b.positions(ACCOUNT) == [] and await b.orders(ACCOUNT) == []
    logins = await env.requests("auth/accesstokenrequest")
    assert len(logins) == 1 and logins[0]["params"]["deviceId"] == DEVICE
    syncs = await env.requests("user/syncrequest")
    assert [s["transport"] for s in syncs] == ["ws"]
    assert events == []


async def test_market_buy_fill_reported_in_order(
    env: Sim, broker: tuple[TradovateBroker, list[Any]]
) -> None:
    b, events = broker
    await env.prices(21000.25)
    state = await b.place(order("buy-1", "buy"))
    await until(lambda: positions(events), what="position event")
    assert state.status in ("pending", "working", "filled") and state.broker_order_id
    mine = of(events, "buy-1")
    kinds = [type(e).__name__ + ":" + getattr(e, "status", "") for e in mine]
    assert kinds[-2:] == ["BrokerFill:", "OrderState:filled"]
    fill = mine[-2]
    assert (fill.side, fill.qty, fill.price, fill.account, fill.symbol) == (
        "buy", 1, 21000.25, ACCOUNT, SYMBOL,
    )  # fmt: skip
    assert events.index(mine[-1]) < events.index(positions(events)[-1])  # fill, order, position
    assert positions(events)[-1] == BrokerPosition(ACCOUNT, SYMBOL, 1, 21000.25)
    final = (await b.orders(ACCOUNT))[0]
    assert (final.status, final.filled_qty, final.avg_fill_price) == ("filled", 1, 21000.25)
    placed = await env.requests("order/placeorder")
    assert len(placed) == 1
    params = placed[0]["params"]
    assert params["isAutomated"] is True and params["clOrdId"] == "buy-1"
    assert params["accountSpec"] == ACCOUNT and isinstance(params["accountId"], int)
    assert (params["action"], params["orderType"], params["orderQty"]) == ("Buy", "Market", 1)
    # idempotent by cl_ord_id: a second place is answered from memory, nothing sent
    again = await b.place(order("buy-1", "buy"))
    assert again.status == "filled" and len(await env.requests("order/placeorder")) == 1


async def test_short_is_closed_with_a_buy(
    env: Sim, broker: tuple[TradovateBroker, list[Any]]
) -> None:
    b, events = broker
    await env.prices(100.0)
    await b.place(order("short", "sell", 2))
    await until(lambda: positions(events) and positions(events)[-1].net_pos == -2)
    await env.prices(99.0)
    await b.place(order("cover", "buy", 2))
    await until(lambda: positions(events)[-1].net_pos == 0, what="flat")
    assert positions(events)[-1] == BrokerPosition(ACCOUNT, SYMBOL, 0, None)
    assert await b.positions(ACCOUNT) == []
    placed = await env.requests("order/placeorder")
    assert [p["params"]["action"] for p in placed] == ["Sell", "Buy"]
    sim_pos = (await env.state())["positions"]
    assert [p["netPos"] for p in sim_pos] == [0]


async def test_resting_stop_triggers(env: Sim, broker: tuple[TradovateBroker, list[Any]]) -> None:
    b, events = broker
    await env.prices(100.0)
    await b.place(order("long", "buy"))
    await until(lambda: positions(events) and positions(events)[-1].net_pos == 1)
    state = await b.place(order("stop", "sell", stop=95.0))
    await until(lambda: b.book.by_cl["stop"].status == "working", what="stop working")
    assert state.status in ("pending", "working")
    await env.prices(96.0)
    await asyncio.sleep(0)  # nothing may fill above the stop
    assert not [e for e in of(events, "stop") if isinstance(e, BrokerFill)]
    await env.prices(94.75)
    await until(lambda: b.book.by_cl["stop"].status == "filled", what="stop filled")
    fill = [e for e in of(events, "stop") if isinstance(e, BrokerFill)]
    assert len(fill) == 1 and fill[0].price == 94.75 and fill[0].side == "sell"
    await until(lambda: positions(events)[-1].net_pos == 0)
    stop_params = (await env.requests("order/placeorder"))[-1]["params"]
    assert stop_params["orderType"] == "Stop" and stop_params["stopPrice"] == 95.0


async def test_resting_stop_can_be_cancelled(
    env: Sim, broker: tuple[TradovateBroker, list[Any]]
) -> None:
    b, events = broker
    await env.prices(100.0)
    await b.place(order("stop-c", "sell", stop=90.0))
    state = await b.cancel("stop-c")
    assert state.status == "cancelled"
    assert (await b.cancel("stop-c")).status == "cancelled"  # too late is not an error
    with pytest.raises(UnknownOrder):
        await b.cancel("never-placed")
    await env.prices(89.0)
    assert not fill_ids(events)
    cancels = await env.requests("order/cancelorder")
    assert len(cancels) == 1 and cancels[0]["params"]["orderId"] == int(state.broker_order_id or 0)


async def test_liquidate_closes_the_position_and_contract_info(
    env: Sim, broker: tuple[TradovateBroker, list[Any]]
) -> None:
    b, events = broker
    await env.prices(100.0)
    await b.place(order("liq-entry", "sell", 3))
    await until(lambda: positions(events) and positions(events)[-1].net_pos == -3)
    await b.liquidate(ACCOUNT, SYMBOL)
    await until(lambda: positions(events)[-1].net_pos == 0, what="liquidated")
    info = await b.contract_info(SYMBOL)
    assert info is not None and info["name"] == SYMBOL
    assert info["product"]["tickSize"] == 0.25 and info["product"]["valuePerPoint"] == 2.0
    assert len(await env.requests("contract/find")) == 1  # cached after the first lookup


@pytest.mark.parametrize("mode", ["result", "report"])
async def test_rejected_order_has_reason_and_no_position(
    env: Sim, broker: tuple[TradovateBroker, list[Any]], mode: str
) -> None:
    b, events = broker
    await env.prices(100.0)
    await env.faults(
        reject_count=1, reject_reason="MaxPosLimitReached", reject_text="Too big", reject_mode=mode
    )
    state = await b.place(order("rej", "buy"))
    await until(lambda: b.book.by_cl["rej"].status == "rejected", what="rejected")
    final = b.book.by_cl["rej"].state()
    assert final.reason is not None and "MaxPosLimitReached" in final.reason
    if mode == "result":
        assert state.status == "rejected" and state.broker_order_id is None
    assert not positions(events) and not fill_ids(events)
    assert await b.positions(ACCOUNT) == []
    assert [e.status for e in of(events, "rej")][-1] == "rejected"


async def test_token_expiry_mid_run_renews_without_a_failed_order(
    env: Sim, broker: tuple[TradovateBroker, list[Any]]
) -> None:
    b, events = broker
    await env.prices(100.0)
    assert (await b.place(order("t1", "buy"))).status != "rejected"
    await env.faults(expire_tokens_now=True)
    state = await b.place(order("t2", "buy"))
    assert state.status != "rejected", state
    await until(lambda: b.book.by_cl["t2"].status == "filled", what="t2 filled")
    assert b.auth.counts["recover"] >= 1
    statuses = [e.status for e in events if isinstance(e, OrderState)]
    assert "rejected" not in statuses
    served = [r for r in await env.requests("order/placeorder") if r["status"] == 200]
    assert sorted(r["params"]["clOrdId"] for r in served) == ["t1", "t2"]


async def test_short_token_lifetime_is_renewed_in_the_background(env: Sim) -> None:
    await env.faults(token_lifetime_s=2.0)
    b, _ = make_broker(env)
    await b.start()
    try:
        await until(lambda: b.auth.counts["renew"] >= 1, timeout=5, what="background renewal")
        await env.prices(100.0)
        await b.place(order("late", "buy"))
        await until(lambda: b.book.by_cl["late"].status == "filled")
        assert b.auth.counts["login"] == 1  # renewed, never logged in again
        assert len(await env.requests("auth/renewaccesstoken")) >= 1
    finally:
        await b.close()


@pytest.mark.parametrize("fault", [{"ws_drop": True}, {"ws_shutdown": "Maintenance"}])
async def test_websocket_drop_resyncs_without_duplicate_fills(
    env: Sim, broker: tuple[TradovateBroker, list[Any]], fault: dict[str, Any]
) -> None:
    b, events = broker
    await env.prices(100.0)
    await b.place(order("before", "buy"))
    await until(lambda: len(fill_ids(events)) == 1)
    await env.faults(**fault)
    await until(lambda: not b.status()["connected"], what="disconnect noticed")
    # Placed while the socket is down: its events are lost and must come from the resync.
    state = await b.place(order("during", "buy"))
    assert state.status == "pending" and state.broker_order_id  # accepted, events lost
    await until(lambda: b.counts["syncs"] >= 2, what="resync")
    await until(lambda: b.book.by_cl["during"].status == "filled", what="fill from resync")
    ids = fill_ids(events)
    assert len(ids) == len(set(ids)) == 2  # each fill once, none replayed
    sim_fills = {str(f["id"]) for f in (await env.state())["fills"]}
    assert set(ids) == sim_fills
    assert positions(events)[-1] == BrokerPosition(ACCOUNT, SYMBOL, 2, 100.0)
    assert b.book.counts["duplicate_fills"] >= 1  # the resync did contain the old fill
    if "ws_shutdown" in fault:
        assert b.socket is not None and b.socket.counts["shutdowns"] == 1


async def test_penalty_and_429_lose_no_order(
    env: Sim, broker: tuple[TradovateBroker, list[Any]]
) -> None:
    b, events = broker
    limiter = b.limiter
    assert isinstance(limiter, Limiter)
    await env.prices(100.0)
    await env.faults(penalty_count=1, penalty_p_time=1, penalty_endpoints=["order/placeorder"])
    assert (await b.place(order("pen", "buy"))).status != "rejected"
    await env.faults(http429_count=2)
    assert (await b.place(order("r429", "buy"))).status != "rejected"
    await until(lambda: all(b.book.by_cl[c].status == "filled" for c in ("pen", "r429")))
    log = await env.requests("order/placeorder")
    served = Counter(r["params"]["clOrdId"] for r in log if r["status"] == 200 and not r["penalty"])
    assert served == Counter({"pen": 1, "r429": 1})  # every order exactly once
    resent = [r for r in log if r["params"].get("clOrdId") == "pen"]
    assert resent[0]["penalty"] and resent[-1]["params"].get("p-ticket")
    assert 1.0 in limiter.penalties and any(p == pytest.approx(0.05) for p in limiter.penalties)
    assert b.counts["retries_429"] >= 1
    assert positions(events)[-1].net_pos == 2


async def test_broker_actor_drives_the_adapter_and_kill_switch_flattens(env: Sim) -> None:
    adapter, _ = make_broker(env)
    actor = BrokerActor(name="tv-test", broker=adapter)
    adapter.set_limiter(actor.limiter)
    try:
        await env.prices(100.0)
        entry = OrderRequest("a-entry", ACCOUNT, SYMBOL, "buy", 2, pair_key="p1")
        await actor.place(entry)
        await until(lambda: bool(actor._positions), what="actor position")
        assert (await actor.positions(ACCOUNT))[0].net_pos == 2
        stop = OrderRequest(
            "a-stop", ACCOUNT, SYMBOL, "sell", 2, "stop", 90.0, Priority.PROTECT, "p1"
        )
        await actor.place(stop)
        result = await actor.kill(ACCOUNT)
        # one liquidateposition per open contract: the broker cancels the stop and exits
        assert result["liquidated"] == [
            {"account": ACCOUNT, "symbol": SYMBOL, "outcome": "accepted"}
        ]
        assert result["cancelled"] == [] and result["flatten"] == []
        await until(lambda: not [p for p in adapter.book.positions.values() if p.net_pos])
        assert await actor.positions(ACCOUNT) == []
        assert [p["netPos"] for p in (await env.state())["positions"]] == [0]
        await until(lambda: actor._states["a-stop"].status == "cancelled", what="stop cancelled")
        assert len(await env.requests("order/liquidateposition")) == 1
        assert [r["params"]["clOrdId"] for r in await env.requests("order/placeorder")] == [
            "a-entry",
            "a-stop",
        ]  # no separate flatten order
        again = await actor.kill(ACCOUNT)  # flat now: nothing to liquidate or flatten
        assert again["liquidated"] == [] and again["flatten"] == []
    finally:
        await adapter.close()


async def test_broker_actor_builds_the_tradovate_adapter_from_config(env: Sim) -> None:
    """kind="tradovate" builds the adapter itself and wires its limiter: the same path a
    deployment uses (no hand-made adapter)."""
    creds = Credentials("simuser", "simpass", "JustTrades", "1.0", 0, "sec", DEVICE)
    config = TradovateConfig(credentials=creds, endpoints=Endpoints.local(env.base), stale_s=5.0)
    actor = BrokerActor(name="tv-config", kind="tradovate", tradovate=config, accounts=[ACCOUNT])
    adapter = actor.broker
    assert isinstance(adapter, TradovateBroker) and adapter.limiter is actor.limiter
    try:
        await env.prices(200.0)
        state = await actor.place(OrderRequest("cfg-1", ACCOUNT, SYMBOL, "sell", 1, pair_key="p"))
        # placeorder answers with an order id only; the status follows on the stream
        assert state.status in ("pending", "working", "filled") and state.broker_order_id
        await until(lambda: bool(actor._positions), what="actor position")
        assert (await actor.positions(ACCOUNT))[0].net_pos == -1
        orders = await env.requests("order/placeorder")
        assert [(o["params"]["isAutomated"], o["params"]["clOrdId"]) for o in orders] == [
            (True, "cfg-1")
        ]
    finally:
        await adapter.close()
    with pytest.raises(ValueError, match="TradovateConfig"):
        BrokerActor(name="bad", kind="tradovate")
