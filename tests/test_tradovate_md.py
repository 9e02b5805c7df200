"""Tradovate market-data source against the Tradovate simulator over real loopback sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from actors.broker.tradovate.auth import Credentials
from actors.broker.tradovate.sim.server import SimServer
from actors.feed.sources.base import Tick
from actors.feed.sources.tradovate_md import TradovateMdClient, TradovateMdConfig, quote_tick_key

MNQ, ES = "MNQZ6", "ESZ6"
T0 = 1_800_000_000.0


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(faults={"server_heartbeat_s": 0.1}) as s:
        yield s


def creds() -> Credentials:
    return Credentials("simuser", "simpass", "tests", "1.0", 0, "secret", "device-md")


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """The timeout only bounds a failing test; nothing asserts on time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def client_for(server: SimServer, symbols: list[str], **kw: Any) -> TradovateMdClient:
    cfg = TradovateMdConfig(
        rest_url=server.base_url,
        md_url=server.md_ws_url,
        stale_s=2.0,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
        lookup_retry_s=0.05,
        **kw,
    )
    return TradovateMdClient(symbols, creds(), cfg)


@contextlib.asynccontextmanager
async def streaming(client: TradovateMdClient) -> AsyncIterator[list[Tick]]:
    got: list[Tick] = []
    task = asyncio.get_running_loop().create_task(client.run(got.append))
    try:
        yield got
    finally:
        await client.stop()
        await asyncio.wait_for(task, 10)


async def push(server: SimServer, ticks: list[dict[str, Any]]) -> None:
    await asyncio.to_thread(server.push_prices, ticks)


def test_tick_key_needs_a_trade_and_tells_repeats_by_volume() -> None:
    assert quote_tick_key({"Bid": {"price": 1.0}}, 5.0) is None
    a = quote_tick_key({"Trade": {"price": 1.0}, "TotalTradeVolume": {"size": 3}}, 5.0)
    b = quote_tick_key({"Trade": {"price": 1.0}, "TotalTradeVolume": {"size": 4}}, 5.0)
    assert a != b  # same price, one more contract traded: a new print
    assert quote_tick_key({"Trade": {"price": 1.0}}, 5.0) != quote_tick_key(
        {"Trade": {"price": 1.0}}, 6.0
    )


async def test_quotes_by_contract_id_become_exact_ticks(server: SimServer) -> None:
    client = client_for(server, [MNQ, ES])
    async with streaming(client) as got:
        await until(lambda: client.subscribed(MNQ) and client.subscribed(ES), "subscriptions")
        script = [
            {"symbol": MNQ, "price": 21000.0, "ts": T0},
            {"symbol": ES, "price": 6000.0, "ts": T0 + 0.5},
            {"symbol": MNQ, "price": 21000.25, "ts": T0 + 1},
            {"symbol": MNQ, "price": 21000.25, "ts": T0 + 2},  # same price, new print
            {"symbol": ES, "price": 5999.75, "ts": T0 + 3, "bid": 5999.5, "ask": 6000.0},
        ]
        await push(server, script)
        await until(lambda: len(got) == len(script), "every print")
        assert got == [Tick(t["symbol"], t["ts"], t["price"]) for t in script]
        status = client.status()
        es = status["symbols"][ES]
        assert (es["bid"], es["offer"], es["last_price"]) == (5999.5, 6000.0, 5999.75)
        assert es["contract_id"] == server.sim.catalog.find(ES)["id"]
        assert status["state"] == "connected" and status["subscribes"] == 2
    # The md socket was authorised and subscribed by name, as §5.7 shows.
    log = server.sim.log.entries("md/subscribeQuote")
    assert sorted(e["params"]["symbol"] for e in log[-2:]) == [ES, MNQ]


@pytest.mark.parametrize("fault", [{"ws_drop": True}, {"ws_shutdown": "Maintenance"}])
async def test_reconnect_resubscribes_without_repeating_the_last_tick(
    server: SimServer, fault: dict[str, Any]
) -> None:
    client = client_for(server, [MNQ])
    async with streaming(client) as got:
        await until(lambda: client.subscribed(MNQ), "subscription")
        await push(server, [{"symbol": MNQ, "price": 21100.0, "ts": T0 + 10}])
        await until(lambda: len(got) == 1, "first tick")
        connects = client.status()["connects"]
        await asyncio.to_thread(server.call_in_loop, lambda: server.sim.apply_faults(fault))
        await until(lambda: client.status()["connects"] == connects + 1, "reconnect")
        await until(lambda: client.subscribed(MNQ), "resubscription")
        assert client.status()["subscribes"] == 2
        # The server re-sent its last quote on subscribe; it is not a new print.
        await push(server, [{"symbol": MNQ, "price": 21100.25, "ts": T0 + 11}])
        await until(lambda: len(got) == 2, "tick after the reconnect")
    assert got == [Tick(MNQ, T0 + 10, 21100.0), Tick(MNQ, T0 + 11, 21100.25)]


async def test_unknown_contract_is_reported_per_symbol(server: SimServer) -> None:
    client = client_for(server, [MNQ, "MNQF7"])  # F is not an MNQ month: no such contract
    async with streaming(client) as got:
        await until(lambda: client.subscribed(MNQ), "subscription")
        await push(server, [{"symbol": MNQ, "price": 21200.0, "ts": T0 + 20}])
        await until(lambda: len(got) == 1, "tick")
        assert client.error("MNQF7") == "unknown_contract"
        assert not client.subscribed("MNQF7")
        assert client.error(MNQ) is None


async def test_lookup_is_retried_until_the_server_answers() -> None:
    from actors.broker.tradovate.sim.server import free_port

    port = free_port()
    client = TradovateMdClient(
        [MNQ],
        creds(),
        TradovateMdConfig(
            rest_url=f"http://127.0.0.1:{port}/v1",
            md_url=f"ws://127.0.0.1:{port}/md/v1/websocket",
            lookup_retry_s=0.05,
            backoff_initial_s=0.02,
            stale_s=2.0,
        ),
    )
    async with streaming(client) as got:
        await until(lambda: client.status()["last_error"] is not None, "a failed lookup")
        assert client.status()["state"] == "resolving"
        with SimServer(port=port, faults={"server_heartbeat_s": 0.1}) as late:
            await until(lambda: client.subscribed(MNQ), "subscription once the server is up")
            await push(late, [{"symbol": MNQ, "price": 21300.0, "ts": T0 + 30}])
            await until(lambda: len(got) == 1, "tick")
            await client.stop()
    assert got == [Tick(MNQ, T0 + 30, 21300.0)]


async def test_subscribing_delivers_the_last_print_once(server: SimServer) -> None:
    """The server answers a subscription with its last quote (simulator: UNCONFIRMED for the
    real one); that is the first tick, and bid/offer arrive with it."""
    await push(server, [{"symbol": MNQ, "price": 21400.0, "ts": T0 + 40, "bid": 21399.75}])
    client = client_for(server, [MNQ])
    async with streaming(client) as got:
        await until(lambda: len(got) == 1, "the snapshot tick")
        await until(lambda: client.subscribed(MNQ), "subscription")
        assert client.status()["symbols"][MNQ]["bid"] == 21399.75
    assert got == [Tick(MNQ, T0 + 40, 21400.0)]
