"""TradingView quote client against the simulator over real loopback sockets (no socket mocks)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest

from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview import (
    DEFAULT_ORIGIN,
    TradingViewClient,
    TradingViewConfig,
    backoff_delay,
    tv_symbol,
)
from actors.feed.sources.tradingview_proto import ANONYMOUS_TOKEN
from actors.feed.tv_sim import SimConfig, TvSim
from actors.instruments import UnknownSymbol

MNQ, ES, RTY = "CME_MINI:MNQ1!", "CME_MINI:ES1!", "CME_MINI:RTY1!"
T0 = 1_700_000_000


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait for a condition; the timeout only bounds a failing test, nothing asserts on time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def config(url: str, **kw: Any) -> TradingViewConfig:
    base: dict[str, Any] = {
        "url": url,
        "stale_after_s": 2.0,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "open_timeout_s": 2.0,
    }
    return TradingViewConfig(**(base | kw))


@pytest.fixture
async def sim() -> AsyncIterator[TvSim]:
    async with TvSim(SimConfig(heartbeat_s=0.05, http_port=None), symbols=[MNQ, ES]) as s:
        yield s


@contextlib.asynccontextmanager
async def streaming(client: TradingViewClient) -> AsyncIterator[list[Tick]]:
    got: list[Tick] = []
    task = asyncio.get_running_loop().create_task(client.run(got.append))
    try:
        yield got
    finally:
        await client.stop()
        await asyncio.wait_for(task, 5.0)


def client_for(sim: TvSim, symbols: list[str], **kw: Any) -> TradingViewClient:
    return TradingViewClient(symbols, config(sim.ws_url, **kw), rng=random.Random(7))


async def subscribed(sim: TvSim, *tv: str) -> None:
    await until(lambda: all(sim.subscribers(s) == 1 for s in tv), f"subscription of {tv}")


# ------------------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("ours", "tv"),
    [
        ("MNQ1!", "CME_MINI:MNQ1!"),
        ("mnq", "CME_MINI:MNQ1!"),
        ("MYM2!", "CBOT_MINI:MYM2!"),
        ("CL1!", "NYMEX:CL1!"),
        ("ZN1!", "CBOT:ZN1!"),
        ("6E1!", "CME:6E1!"),
        ("CME_MINI_DL:MNQ1!", "CME_MINI:MNQ1!"),
        ("COMEX_MINI:MGC1!", "COMEX_MINI:MGC1!"),
        ("MNQZ5", "CME_MINI:MNQZ2025"),
        ("ESH27", "CME_MINI:ESH2027"),
        ("GCZ2026", "COMEX:GCZ2026"),
    ],
)
def test_tv_symbol_mapping(ours: str, tv: str) -> None:
    assert tv_symbol(ours, on=date(2026, 1, 10)) == tv


@pytest.mark.parametrize("bad", ["AAPL", "BTCUSD", "NASDAQ:MNQ1!", "MNQF6"])
def test_tv_symbol_rejects_non_contracts(bad: str) -> None:
    with pytest.raises(UnknownSymbol):
        tv_symbol(bad, on=date(2026, 1, 10))


def test_backoff_grows_exponentially_is_capped_and_jittered() -> None:
    rng = random.Random(3)
    exact = [backoff_delay(n, rng, 0.5, 2.0, 30.0, jitter=0.0) for n in range(8)]
    assert exact == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    jittered = [backoff_delay(n, rng, 0.5, 2.0, 30.0, jitter=0.25) for n in range(200)]
    bases = [min(30.0, 0.5 * 2.0**n) for n in range(200)]
    assert all(0.75 * b <= d <= b for d, b in zip(jittered, bases, strict=True))
    assert len({round(d / b, 6) for d, b in zip(jittered, bases, strict=True)}) > 100  # varies


# ------------------------------------------------------------------------------- over the wire


async def test_receives_exactly_the_scripted_ticks(sim: TvSim) -> None:
    client = client_for(sim, ["MNQ1!", "ES1!"])
    async with streaming(client) as got:
        await subscribed(sim, MNQ, ES)
        script = [
            Tick(MNQ, T0, 21000.0),
            Tick(ES, T0, 6000.0),
            Tick(MNQ, T0 + 1, 21000.25),
            Tick(MNQ, T0 + 2, 21000.25),  # same price, new time: the delta carries no lp
            Tick(ES, T0 + 3, 5999.75),
            Tick(MNQ, T0 + 3, 20999.5),
        ]
        for i, tick in enumerate(script):
            await sim.publish(tick)
            if i == 3:  # quote-only change (no trade): merged, but no tick
                await sim.publish_fields(MNQ, bid=20990.0, ask=21010.0)
        await until(lambda: len(got) >= len(script), "all scripted ticks")
        ours = {MNQ: "MNQ1!", ES: "ES1!"}
        assert got == [Tick(ours[t.symbol], float(t.ts), t.price) for t in script]
        status = client.status()
        assert status["symbols"]["MNQ1!"]["last_price"] == 20999.5
        assert status["symbols"]["ES1!"]["last_time"] == T0 + 3
    # Handshake order and identity as the reference describes (§3.1, §3.3).
    assert sim.stats.methods[:4] == [
        "set_auth_token",
        "quote_create_session",
        "quote_set_fields",
        "quote_add_symbols",
    ]
    assert sim.stats.tokens == [ANONYMOUS_TOKEN]
    assert sim.stats.origins == [DEFAULT_ORIGIN]


async def test_heartbeats_are_echoed_and_seen_by_the_server(sim: TvSim) -> None:
    client = client_for(sim, ["MNQ1!"])
    async with streaming(client):
        await until(lambda: sim.stats.heartbeat_echoes >= 3, "three echoed heartbeats")
        assert sim.stats.bad_echoes == 0
        assert client.status()["heartbeats"] >= 3


async def test_anonymous_is_marked_delayed_and_a_token_streams() -> None:
    cfg = SimConfig(heartbeat_s=0.05, http_port=None, accepted_tokens=frozenset({"tok-1"}))
    async with TvSim(cfg, symbols={MNQ: 21000.0}) as sim:
        anon = client_for(sim, ["MNQ1!"])
        authed = client_for(sim, ["MNQ1!"], auth_token="tok-1")
        async with streaming(anon), streaming(authed):
            await until(
                lambda: (
                    anon.status()["symbols"]["MNQ1!"]["completed"]
                    and authed.status()["symbols"]["MNQ1!"]["completed"]
                ),
                "both snapshots",
            )
            a, b = anon.status(), authed.status()
        assert a["anonymous"] and not b["anonymous"]
        assert a["symbols"]["MNQ1!"]["update_mode"] == "delayed_streaming_900"
        assert a["symbols"]["MNQ1!"]["delayed"] is True and a["symbols"]["MNQ1!"]["delay_s"] == 900
        assert b["symbols"]["MNQ1!"]["update_mode"] == "streaming"
        assert b["symbols"]["MNQ1!"]["delayed"] is False and b["symbols"]["MNQ1!"]["delay_s"] == 0
        assert sorted(sim.stats.tokens) == sorted([ANONYMOUS_TOKEN, "tok-1"])


async def test_no_such_symbol_is_surfaced_per_symbol(sim: TvSim) -> None:
    sim.reject_symbol(ES)  # listed, but the server refuses it
    client = client_for(sim, ["MNQ1!", "ES1!", "RTY1!"])  # RTY is not listed at all
    async with streaming(client):
        await until(
            lambda: all(
                client.status()["symbols"][s]["error"] == "no_such_symbol"
                for s in ("ES1!", "RTY1!")
            ),
            "errors for ES1! and RTY1!",
        )
        await subscribed(sim, MNQ)
        status = client.status()
    assert status["symbols"]["MNQ1!"]["error"] is None
    assert status["symbols"]["RTY1!"]["tv_symbol"] == RTY
    assert status["connects"] == 1  # a bad symbol is not a connection failure


async def test_drop_reconnects_resubscribes_everything_without_duplicate_ticks(
    sim: TvSim,
) -> None:
    client = client_for(sim, ["MNQ1!"])
    async with streaming(client) as got:
        await subscribed(sim, MNQ)
        await client.add_symbols(["ES1!"])  # added while connected: live at once
        await subscribed(sim, ES)
        await sim.publish(Tick(MNQ, T0, 21000.0))
        await sim.publish(Tick(ES, T0, 6000.0))
        await until(lambda: len(got) == 2, "two ticks before the drop")
        qsd_before = sim.stats.qsd_sent

        assert await sim.drop_connections() == 1
        await until(lambda: client.status()["connects"] == 2, "reconnect")
        await subscribed(sim, MNQ, ES)
        await until(
            lambda: all(v["completed"] for v in client.status()["symbols"].values()),
            "fresh snapshots",
        )
        assert sim.stats.qsd_sent >= qsd_before + 2  # the snapshots were re-sent ...
        assert len(got) == 2  # ... and did not repeat the last ticks

        await sim.publish(Tick(MNQ, T0 + 1, 21000.5))
        await until(lambda: len(got) == 3, "tick after reconnect")
    assert got == [
        Tick("MNQ1!", T0, 21000.0),
        Tick("ES1!", T0, 6000.0),
        Tick("MNQ1!", T0 + 1, 21000.5),
    ]
    assert sim.stats.methods.count("quote_add_symbols") == 3  # initial, add_symbols, reconnect
    assert client.status()["disconnects"] >= 1 and client.status()["last_error"]


async def test_silent_stall_is_detected_as_stale_and_reconnected(sim: TvSim) -> None:
    client = client_for(sim, ["MNQ1!"], stale_after_s=0.5)
    async with streaming(client) as got:
        await subscribed(sim, MNQ)
        assert sim.stall_connections() == 1
        await until(lambda: client.status()["stale"] == 1, "stale detection")
        await until(lambda: client.status()["connects"] == 2, "reconnect after stall")
        await subscribed(sim, MNQ)
        await until(lambda: len(sim.connections) == 1, "stalled socket closed by the client")
        assert not any(c.stalled for c in sim.connections)
        await sim.publish(Tick(MNQ, T0, 21000.0))
        await until(lambda: len(got) == 1, "tick on the new connection")
    assert got == [Tick("MNQ1!", T0, 21000.0)]
    assert client.status()["stale"] == 1


async def test_malformed_message_is_skipped_without_dropping_the_connection(sim: TvSim) -> None:
    client = client_for(sim, ["MNQ1!"])
    async with streaming(client) as got:
        await subscribed(sim, MNQ)
        assert await sim.send_malformed() == 1
        await until(lambda: client.status()["malformed"] == 1, "malformed counted")
        await sim.publish(Tick(MNQ, T0, 21000.0))
        await until(lambda: len(got) == 1, "tick after the malformed message")
        status = client.status()
    assert status["connects"] == 1 and status["fatal"] == 0
    assert got == [Tick("MNQ1!", T0, 21000.0)]


async def test_protocol_error_is_fatal_for_the_connection_and_recovered(sim: TvSim) -> None:
    client = client_for(sim, ["MNQ1!"])
    async with streaming(client) as got:
        await subscribed(sim, MNQ)
        await sim.publish(Tick(MNQ, T0, 21000.0))
        await until(lambda: len(got) == 1, "first tick")
        assert await sim.send_protocol_error() == 1
        await until(lambda: client.status()["fatal"] == 1, "fatal counted")
        assert "protocol_error" in (client.status()["last_error"] or "")
        await until(lambda: client.status()["connects"] == 2, "reconnect")
        await subscribed(sim, MNQ)
        await sim.publish(Tick(MNQ, T0 + 1, 21000.25))
        await until(lambda: len(got) == 2, "tick after recovery")
    assert got == [Tick("MNQ1!", T0, 21000.0), Tick("MNQ1!", T0 + 1, 21000.25)]


async def test_backoff_escalates_on_repeated_fatal_errors_and_resets_after_a_healthy_drop(
    sim: TvSim,
) -> None:
    client = client_for(sim, ["MNQ1!"])
    async with streaming(client):
        for n in (1, 2, 3):  # healthy subscription, then protocol_error: still escalates
            await until(
                lambda n=n: client.status()["connects"] == n and sim.subscribers(MNQ) == 1,
                f"connection {n} subscribed",
            )
            await sim.send_protocol_error()
            await until(lambda n=n: client.status()["fatal"] == n, f"fatal {n}")
            assert client.status()["retry_attempt"] == n
        await until(
            lambda: client.status()["connects"] == 4 and sim.subscribers(MNQ) == 1, "connection 4"
        )
        await sim.drop_connections()  # a healthy connection lost: back to the first delay
        await until(lambda: client.status()["connects"] == 5, "connection 5")
        assert client.status()["retry_attempt"] == 1


async def test_a_failing_callback_does_not_drop_the_stream(sim: TvSim) -> None:
    client = client_for(sim, ["MNQ1!"])
    seen: list[Tick] = []

    def on_tick(tick: Tick) -> None:
        seen.append(tick)
        if len(seen) == 1:
            raise RuntimeError("consumer bug")

    task = asyncio.get_running_loop().create_task(client.run(on_tick))
    try:
        await subscribed(sim, MNQ)
        await sim.publish(Tick(MNQ, T0, 21000.0))
        await sim.publish(Tick(MNQ, T0 + 1, 21000.25))
        await until(lambda: len(seen) == 2, "both ticks")
    finally:
        await client.stop()
        await asyncio.wait_for(task, 5.0)
    assert client.status()["callback_errors"] == 1 and client.status()["connects"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_retries_until_the_server_comes_up() -> None:
    port = _free_port()
    client = TradingViewClient(
        ["MNQ1!"], config(f"ws://127.0.0.1:{port}/socket.io/websocket"), rng=random.Random(1)
    )
    async with streaming(client) as got:
        await until(lambda: client.status()["connect_failures"] >= 3, "refused connects")
        assert client.status()["connects"] == 0
        cfg = SimConfig(ws_port=port, http_port=None, heartbeat_s=0.05)
        async with TvSim(cfg, symbols={MNQ: 21000.0}) as sim:
            await subscribed(sim, MNQ)
            await until(lambda: len(got) == 1, "initial snapshot tick")
    assert got[0].symbol == "MNQ1!" and got[0].price == 21000.0


async def test_stop_interrupts_a_long_backoff() -> None:
    port = _free_port()
    client = TradingViewClient(
        ["MNQ1!"],
        config(f"ws://127.0.0.1:{port}/socket.io/websocket", backoff_initial_s=3600.0),
        rng=random.Random(1),
    )
    task = asyncio.get_running_loop().create_task(client.run(lambda t: None))
    await until(lambda: client.status()["state"] == "backoff", "back-off after a refused connect")
    await client.stop()
    await asyncio.wait_for(task, 5.0)  # an hour-long back-off did not hold stop up
    assert client.status()["state"] == "stopped"
