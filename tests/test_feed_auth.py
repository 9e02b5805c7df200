"""Cookie -> auth token (reference tradingview.md §3.5) against the simulator's home page, and
the simulator's logged-in sessions: the token streams real time until the session ends."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview import TradingViewClient, TradingViewConfig
from actors.feed.tv_auth import cookie_header, extract_auth_token, fetch_auth_token
from actors.feed.tv_sim import SimConfig, TvSim

MNQ = "CME_MINI:MNQ1!"
COOKIES = {"sessionid": "s1", "sessionid_sign": "g1"}


@pytest.fixture
async def sim() -> AsyncIterator[TvSim]:
    config = SimConfig(heartbeat_s=0.05, cookie_sessions={"s1": ("g1", "tok-1")})
    async with TvSim(config, symbols=[MNQ]) as s:
        yield s


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """The timeout only bounds a failing test; nothing asserts on time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def test_extract_and_header() -> None:
    assert extract_auth_token('x {"auth_token":"abc.def-1"} y') == "abc.def-1"
    assert extract_auth_token('{"auth_token" : "t"}') == "t"
    assert extract_auth_token('{"user": null}') is None
    assert cookie_header(COOKIES) == "sessionid=s1; sessionid_sign=g1"
    with pytest.raises(ValueError, match="sessionid_sign"):
        cookie_header({"sessionid": "s1"})


async def test_valid_expired_and_unreachable(sim: TvSim) -> None:
    ok = await fetch_auth_token(COOKIES, sim.http_url)
    assert (ok.status, ok.token) == ("valid", "tok-1")
    assert "tok-1" not in repr(ok)
    wrong_sign = await fetch_auth_token({"sessionid": "s1", "sessionid_sign": "nope"}, sim.http_url)
    assert (wrong_sign.status, wrong_sign.token) == ("expired", None)
    await sim.expire_session("s1")
    gone = await fetch_auth_token(COOKIES, sim.http_url)
    assert gone.status == "expired"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    down = await fetch_auth_token(COOKIES, dead, timeout_s=2.0)
    assert down.status == "error" and down.token is None


async def test_session_token_streams_until_the_session_ends(sim: TvSim) -> None:
    token = (await fetch_auth_token(COOKIES, sim.http_url)).token
    assert token is not None
    cfg = TradingViewConfig(url=sim.ws_url, auth_token=token, stale_after_s=2.0)
    client = TradingViewClient(["MNQ1!"], cfg, rng=random.Random(1))
    got: list[Tick] = []
    task = asyncio.get_running_loop().create_task(client.run(got.append))
    try:
        await until(lambda: sim.subscribers(MNQ) == 1, "subscription")
        await sim.publish(Tick(MNQ, 1_800_000_000, 21000.0))
        await until(lambda: client.status()["symbols"]["MNQ1!"]["delayed"] is False, "real time")
        assert await sim.expire_session("s1") == 1
        await until(lambda: client.status()["symbols"]["MNQ1!"]["delayed"] is True, "delayed")
        assert client.status()["connects"] == 1  # announced on the open connection
    finally:
        await client.stop()
        await asyncio.wait_for(task, 5)
