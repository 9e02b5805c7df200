"""The TradingView simulator speaks the §3 protocol: checked with a raw websocket client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview_proto import (
    ANONYMOUS_TOKEN,
    HeartbeatFrame,
    MessageFrame,
    ProtocolError,
    RawFrame,
    decode,
    encode,
    encode_message,
)
from actors.feed.tv_sim import MALFORMED_FRAME, SimConfig, TvSim

MNQ, ES = "CME_MINI:MNQ1!", "CME_MINI:ES1!"
QS = "qs_abcdefghijkl"
T0 = 1_700_000_000


@pytest.fixture
async def sim() -> AsyncIterator[TvSim]:
    cfg = SimConfig(heartbeat_s=0.05, accepted_tokens=frozenset({"good-token"}))
    async with TvSim(cfg, symbols={MNQ: 21000.0, ES: None}) as s:
        yield s


class Raw:
    """A bare client: every websocket message decoded, heartbeats echoed only when asked."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.heartbeats = 0  # received so far, echoed or not

    async def frame(self, skip_heartbeats: bool = True, timeout: float = 5.0) -> Any:
        while True:
            text = await asyncio.wait_for(self.ws.recv(), timeout)
            assert isinstance(text, str)
            (frame,) = decode(text)  # the simulator sends one frame per websocket message
            if isinstance(frame, HeartbeatFrame):
                self.heartbeats += 1
                if skip_heartbeats:
                    continue
            return frame

    async def message(self, method: str) -> MessageFrame:
        while True:
            frame = await self.frame()
            if isinstance(frame, MessageFrame) and frame.method == method:
                return frame

    async def send(self, method: str, *params: Any) -> None:
        await self.ws.send(encode_message(method, list(params)))

    async def subscribe(
        self, *symbols: str, token: str = ANONYMOUS_TOKEN, fields: list[str]
    ) -> None:
        await self.send("set_auth_token", token)
        await self.send("quote_create_session", QS)
        await self.send("quote_set_fields", QS, *fields)
        await self.send("quote_add_symbols", QS, *symbols)


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def test_hello_then_numbered_heartbeats(sim: TvSim) -> None:
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        hello = await raw.frame()
        assert isinstance(hello, RawFrame) and isinstance(hello.data, dict)
        assert hello.data["protocol"] == "json" and "session_id" in hello.data
        beats = [await raw.frame(skip_heartbeats=False) for _ in range(3)]
    assert [b.payload for b in beats] == ["~h~1", "~h~2", "~h~3"]
    assert sim.stats.heartbeat_echoes == 0  # nobody echoed


async def test_echoes_are_checked_against_what_was_sent(sim: TvSim) -> None:
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await raw.frame()  # hello
        beat = await raw.frame(skip_heartbeats=False)
        await ws.send(encode(beat.payload))
        await ws.send(encode("~h~999999"))  # never sent by the server
        await until(lambda: sim.stats.bad_echoes == 1, "bad echo recorded")
    assert sim.stats.heartbeat_echoes == 1


async def test_snapshot_is_filtered_to_the_fields_set_then_completed(sim: TvSim) -> None:
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await raw.subscribe(MNQ, fields=["lp", "lp_time", "update_mode", "short_name"])
        qsd = await raw.message("qsd")
        assert qsd.params == [
            QS,
            {
                "n": MNQ,
                "s": "ok",
                "v": {
                    "lp": 21000.0,
                    "lp_time": 0,
                    "update_mode": "delayed_streaming_900",
                    "short_name": "MNQ1!",
                },
            },
        ]
        done = await raw.message("quote_completed")
        assert done.params == [QS, MNQ]


async def test_updates_are_deltas_of_changed_fields_only(sim: TvSim) -> None:
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await raw.subscribe(MNQ, fields=["lp", "lp_time", "bid", "ask", "update_mode"])
        await raw.message("quote_completed")
        await sim.publish(Tick(MNQ, T0, 21000.0))  # same price as the snapshot, new time
        assert (await raw.message("qsd")).params[1]["v"] == {"lp_time": T0}
        await sim.publish(Tick(MNQ, T0 + 1, 21000.5))
        assert (await raw.message("qsd")).params[1]["v"] == {
            "lp": 21000.5,
            "lp_time": T0 + 1,
            "bid": 21000.25,
            "ask": 21000.75,
        }
        await sim.publish_fields(MNQ, bid=21000.0, volume=5)  # volume was not asked for
        assert (await raw.message("qsd")).params[1]["v"] == {"bid": 21000.0}


async def test_unknown_and_rejected_symbols_get_no_such_symbol(sim: TvSim) -> None:
    sim.reject_symbol(ES)
    spec = '={"session":"regular","symbol":"CME_MINI:MNQ1!"}'
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await raw.subscribe("CME_MINI:XYZ1!", ES, spec, fields=["lp"])
        errors = [(await raw.message("qsd")).params[1] for _ in range(2)]
        assert errors == [
            {"n": "CME_MINI:XYZ1!", "s": "error", "errmsg": "no_such_symbol", "v": {}},
            {"n": ES, "s": "error", "errmsg": "no_such_symbol", "v": {}},
        ]
        ok = await raw.message("qsd")  # the ={...} form is answered under the key as sent
        assert ok.params[1] == {"n": spec, "s": "ok", "v": {"lp": 21000.0}}
        assert (await raw.message("quote_completed")).params == [QS, spec]
    sim.reject_symbol(ES, on=False)
    assert sim.faults.rejected == set()


async def test_accepted_token_streams_in_real_time(sim: TvSim) -> None:
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await raw.subscribe(MNQ, token="good-token", fields=["update_mode"])
        assert (await raw.message("qsd")).params[1]["v"] == {"update_mode": "streaming"}
    assert sim.stats.tokens == ["good-token"]


async def test_wrong_path_and_wrong_origin_are_refused() -> None:
    cfg = SimConfig(http_port=None, require_origin="https://www.tradingview.com")
    async with TvSim(cfg) as sim:
        with pytest.raises(InvalidStatus) as not_found:
            async with connect(sim.ws_url.replace("/socket.io/websocket", "/nope")):
                pass
        assert not_found.value.response.status_code == 404
        with pytest.raises(InvalidStatus) as forbidden:
            async with connect(sim.ws_url, origin=Origin("https://evil.example")):
                pass
        assert forbidden.value.response.status_code == 403
        async with connect(sim.ws_url, origin=Origin("https://www.tradingview.com")) as ws:
            assert isinstance(await Raw(ws).frame(), RawFrame)
        assert sim.stats.origins == ["https://www.tradingview.com"]


async def test_garbage_from_the_client_gets_protocol_error_and_close(sim: TvSim) -> None:
    async with connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await ws.send("not a frame")
        err = await raw.message("protocol_error")
        assert err.params == ["wrong data"]
        with pytest.raises(ConnectionClosed):
            await raw.frame()
    assert sim.stats.client_errors == 1


# ----------------------------------------------------------------- faults via the control API


async def test_control_api_faults_act_on_open_connections(sim: TvSim) -> None:
    async with httpx.AsyncClient(base_url=sim.http_url) as http, connect(sim.ws_url) as ws:
        raw = Raw(ws)
        await raw.frame()  # hello
        r = await http.post("/sim/faults/malformed")
        assert r.json()["connections_affected"] == 1
        text = await ws.recv()
        assert text == MALFORMED_FRAME
        with pytest.raises(ProtocolError):
            decode(str(text))
        await http.post("/sim/faults/protocol_error")
        assert (await raw.message("protocol_error")).params == ["sim: injected fault"]

        r = await http.post("/sim/faults/stall")
        assert r.json()["stalled_connections"] == 1
        beats_at_stall = sim.stats.heartbeats_sent
        with pytest.raises(TimeoutError):  # only what was in flight, then nothing at all
            while True:
                assert isinstance(
                    await raw.frame(skip_heartbeats=False, timeout=0.3), HeartbeatFrame
                )
        assert raw.heartbeats == beats_at_stall == sim.stats.heartbeats_sent
        assert ws.state.name == "OPEN"

        await http.post("/sim/faults/drop")
        with pytest.raises(ConnectionClosed):
            await raw.frame(timeout=5.0)
        await until(lambda: not sim.connections, "connection gone")

    # A connection made after the stall is healthy.
    async with connect(sim.ws_url) as ws:
        assert isinstance(await Raw(ws).frame(skip_heartbeats=False), RawFrame)
        beat = await Raw(ws).frame(skip_heartbeats=False)
        assert isinstance(beat, HeartbeatFrame)


async def test_control_api_state_ticks_and_switches(sim: TvSim) -> None:
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        r = await http.post("/sim/ticks", json=[{"symbol": MNQ, "ts": T0, "price": 21001.0}])
        assert r.json() == {"published": 1}
        assert (await http.post("/sim/ticks", json=[{"symbol": MNQ}])).status_code == 400
        r = await http.post("/sim/faults/reject", json={"symbol": ES, "on": True})
        assert r.json()["rejected"] == [ES]
        r = await http.post("/sim/faults/scanner", json={"down": True})
        assert r.json()["scanner_down"] is True
        assert (await http.post("/sim/faults/nonsense")).status_code == 404
        state = (await http.get("/sim/state")).json()
    assert state["last"][MNQ] == 21001.0
    assert state["faults"] == {"rejected": [ES], "scanner_down": True, "stalled_connections": 0}


# ----------------------------------------------------------------------------------- scanner


async def test_scanner_answers_known_columns_in_order(sim: TvSim) -> None:
    await sim.publish(Tick(MNQ, T0, 21002.5))
    body = {
        "symbols": {"tickers": [MNQ, "CME_MINI:XYZ1!", ES], "query": {"types": []}},
        "columns": ["close", "update_mode", "close[1]"],
    }
    async with httpx.AsyncClient(base_url=sim.http_url) as http:
        r = await http.post("/futures/scan", json=body)
        assert r.status_code == 200
        # Unknown ticker left out; ES is listed but has no price yet.
        assert r.json() == {
            "totalCount": 2,
            "data": [
                {"s": MNQ, "d": [21002.5, "delayed_streaming_900", 21000.0]},
                {"s": ES, "d": [None, "delayed_streaming_900", None]},
            ],
        }
        bad = await http.post("/futures/scan", json=body | {"columns": ["close", "last_price"]})
        assert bad.status_code == 400 and "last_price" in bad.json()["error"]
        assert (await http.post("/nowhere/scan", json=body)).status_code == 404
        sim.set_scanner_down(True)
        assert (await http.post("/futures/scan", json=body)).status_code == 503
    assert sim.stats.scans == 4


async def test_walk_and_play_publish_prices(sim: TvSim) -> None:
    task = sim.walk({ES: 6000.0}, interval_s=0.001, seed=1)
    await until(lambda: sim.market.quotes[ES].get("volume", 0) >= 5, "five walk prints")
    task.cancel()
    es = sim.market.quotes[ES]
    assert es["lp"] % 0.25 == 0 and es["low_price"] <= es["lp"] <= es["high_price"]
    played = sim.play([Tick(MNQ, T0 + i, 21000.0 + i) for i in range(3)])
    await played
    assert sim.market.quotes[MNQ]["lp"] == 21002.0 and sim.market.quotes[MNQ]["lp_time"] == T0 + 2
