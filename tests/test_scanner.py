"""Scanner fallback: pure request/response functions, and polling the simulator over loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import date
from typing import Any

import pytest

from actors.feed.sources.base import Tick
from actors.feed.sources.scanner import (
    SCAN_COLUMNS,
    ScanError,
    ScannerPoller,
    build_scan_request,
    parse_scan_response,
    scan_url,
)
from actors.feed.tv_sim import SimConfig, TvSim

MNQ, ESZ = "CME_MINI:MNQ1!", "CME_MINI:ESZ2025"
ON = date(2025, 10, 1)


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


@pytest.fixture
async def sim() -> AsyncIterator[TvSim]:
    async with TvSim(SimConfig(heartbeat_s=1.0), symbols={MNQ: 21000.0, ESZ: 6000.0}) as s:
        yield s


# ------------------------------------------------------------------------------------ pure parts


def test_request_asks_for_close_only() -> None:
    assert SCAN_COLUMNS == ("close",)
    assert build_scan_request([MNQ, ESZ]) == {
        "symbols": {"tickers": [MNQ, ESZ], "query": {"types": []}},
        "columns": ["close"],
    }
    with pytest.raises(ValueError):
        build_scan_request([])


def test_scan_url() -> None:
    assert scan_url("https://scanner.tradingview.com/", "futures") == (
        "https://scanner.tradingview.com/futures/scan"
    )


def test_parse_response_keeps_finite_closes() -> None:
    body = {
        "totalCount": 4,
        "data": [
            {"s": MNQ, "d": [21000.25]},
            {"s": ESZ, "d": [6000]},
            {"s": "NYMEX:CL1!", "d": [None]},  # no price: left out
            {"s": "COMEX:GC1!", "d": [float("nan")]},
        ],
    }
    assert parse_scan_response(body) == {MNQ: 21000.25, ESZ: 6000.0}
    assert parse_scan_response({"totalCount": 0, "data": []}) == {}


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        {"totalCount": 0, "error": "Unknown field", "data": None},
        {"data": [{"d": [1.0]}]},
        {"data": [{"s": MNQ, "d": []}]},
        {"data": [{"s": MNQ, "d": 1.0}]},
        {"data": ["x"]},
    ],
)
def test_parse_response_rejects_bad_shapes(body: Any) -> None:
    with pytest.raises(ScanError):
        parse_scan_response(body)


# -------------------------------------------------------------------------------- over the wire


async def test_poll_once_returns_closes_for_our_symbols(sim: TvSim) -> None:
    poller = ScannerPoller(["MNQ1!", "ESZ5", "CME_MINI:MNQ1!"], base=sim.http_url, on=ON)
    assert poller.tickers == [MNQ, ESZ]
    assert await poller.poll_once() == {"MNQ1!": 21000.0, "CME_MINI:MNQ1!": 21000.0, "ESZ5": 6000.0}
    await sim.publish(Tick(MNQ, 1, 21000.75))
    assert (await poller.poll_once())["MNQ1!"] == 21000.75
    assert sim.stats.scans == 2  # the simulator answers 400 to unknown columns: these were valid


async def test_unpriced_symbols_are_absent(sim: TvSim) -> None:
    sim.market.list_symbol("CME_MINI:NQ1!")  # listed, no price yet
    poller = ScannerPoller(["NQ1!", "RTY1!"], base=sim.http_url)  # RTY unknown to the scanner
    assert await poller.poll_once() == {}


async def test_poll_once_raises_when_scanner_is_down_or_unreachable(sim: TvSim) -> None:
    poller = ScannerPoller(["MNQ1!"], base=sim.http_url)
    sim.set_scanner_down(True)
    with pytest.raises(ScanError, match="503"):
        await poller.poll_once()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    nowhere = ScannerPoller(["MNQ1!"], base=f"http://127.0.0.1:{port}", timeout_s=2.0)
    with pytest.raises(ScanError, match="Connect"):
        await nowhere.poll_once()


async def test_polling_emits_only_changes_and_survives_an_outage(sim: TvSim) -> None:
    poller = ScannerPoller(["MNQ1!"], base=sim.http_url, interval_s=0.01, clock=lambda: 42.0)
    got: list[Tick] = []
    task = asyncio.get_running_loop().create_task(poller.run(got.append))
    try:
        await until(lambda: len(got) == 1, "first close")
        polls = poller.polls
        await until(lambda: poller.polls >= polls + 3, "more polls")
        assert len(got) == 1  # unchanged close: no tick

        await sim.publish(Tick(MNQ, 2, 21000.5))
        await until(lambda: len(got) == 2, "changed close")

        sim.set_scanner_down(True)
        await until(lambda: poller.consecutive_failures >= 2, "failures while down")
        status = poller.status()
        assert status["available"] is False and "503" in status["last_error"]
        await sim.publish(Tick(MNQ, 3, 20999.75))  # missed while down ...
        sim.set_scanner_down(False)
        await until(lambda: len(got) == 3, "close after recovery")  # ... and caught up after
        assert poller.status()["available"] is True
    finally:
        await poller.stop()
        await asyncio.wait_for(task, 5.0)
    assert got == [
        Tick("MNQ1!", 42.0, 21000.0),
        Tick("MNQ1!", 42.0, 21000.5),
        Tick("MNQ1!", 42.0, 20999.75),
    ]
    assert poller.status()["last_close"] == {"MNQ1!": 20999.75}
    assert poller.failures >= 2


def test_poller_validates_inputs() -> None:
    with pytest.raises(ValueError):
        ScannerPoller(["MNQ1!"], interval_s=0)
    with pytest.raises(ValueError):
        ScannerPoller(["AAPL"])
