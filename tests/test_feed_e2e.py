"""End to end through the TradingView simulator: the whole tree (Ray + uvicorn + SQLite) with
``JT_FEED=tradingview`` pointed at the simulator's quote socket. A recorder opens on a webhook
and rides a random walk the simulator streams; its live worst and best unrealised P&L equal the
naive reference computed from the simulator's own tick list, to the cent."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import ray

from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview import tv_symbol
from actors.feed.tv_sim import SimConfig
from actors.feed.tv_sim.thread import TvSimThread
from actors.instruments import normalize, spec_for
from actors.recorder.config import RecorderSettings
from actors.runtime import FEED, get
from tests.reference.naive import NaiveRecorder
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

MNQ = normalize("MNQ1!", datetime.now(UTC).date())
SETTINGS = {"sizing": {"initial_size": 2}}


def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """The timeout only bounds a failing test; nothing asserts on time."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def sim() -> Iterator[TvSimThread]:
    with TvSimThread(SimConfig(heartbeat_s=0.05), symbols=[tv_symbol(MNQ)]) as s:
        yield s


@pytest.fixture(scope="module")
def system(sim: TvSimThread, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    db: Path = tmp_path_factory.mktemp("feed-e2e") / "jt.db"
    with running_system(
        f"sqlite:///{db}",
        feed="tradingview",
        feed_symbols="MNQ1!",
        feed_tradingview_url=sim.ws_url,
        feed_tradingview_www_url=sim.http_url,
        feed_scanner_url=sim.http_url,
        feed_scanner_interval_s=0.2,
        feed_stale_s=5.0,
        feed_symbol_stale_s=0.0,
        feed_check_s=0.05,
    ) as sut:
        yield sut


def walk(rng: random.Random, start: float, n: int, tick: float) -> list[float]:
    out, px = [], start
    for _ in range(n):
        step = rng.choice([0, 1, -1, 1, -1, 2, -2, -3])
        if rng.random() < 0.03:
            step *= 5  # a gap
        px = round(px + step * tick, 2)
        out.append(px)
    return out


def delivered(system: System) -> int:
    return system.client.get("/status").json()["feed"]["per_symbol"][MNQ]["delivered"]


def stream(system: System, sim: TvSimThread, ticks: list[Tick]) -> None:
    """Publish through the simulator and wait until every tick reached every recorder host."""
    before = delivered(system)
    sim.publish(*ticks)
    until(lambda: delivered(system) == before + len(ticks), f"{len(ticks)} ticks through the feed")
    feed = get(FEED, system.settings.namespace)
    assert ray.get(feed.drain.remote()) is True


def test_drawdown_through_the_tradingview_simulator_equals_the_reference(
    system: System, sim: TvSimThread
) -> None:
    until(
        lambda: system.client.get("/status").json()["feed"]["per_symbol"][MNQ]["sources"][
            "tradingview"
        ]["usable"],
        "the quote socket subscribed",
    )
    spec = spec_for(MNQ)
    ref = NaiveRecorder(RecorderSettings.model_validate(SETTINGS), spec.tick_size, spec.tick_value)
    rec = system.create_recorder("via-tradingview", SETTINGS)
    token = rec["webhook_url"].rsplit("/", 1)[1]
    rng = random.Random(11)
    t0 = float(int(time.time()))
    prices = walk(rng, 21000.0, 260, spec.tick_size)
    ticks = [Tick(tv_symbol(MNQ), t0 + i, px) for i, px in enumerate(prices)]

    stream(system, sim, ticks[:20])
    for t in ticks[:20]:
        ref.tick(t.ts, t.price)
    body = {"action": "buy", "ticker": "MNQ1!", "price": ticks[19].price}
    r = system.post_alert(token, json.dumps(body))
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert ref.signal(ticks[19].ts, "buy", body["price"], None) == "applied"

    stream(system, sim, ticks[20:])
    for t in ticks[20:]:
        ref.tick(t.ts, t.price)

    pos = system.client.get(f"/api/recorders/{rec['id']}/positions").json()
    want = ref.position()
    assert want is not None and len(pos) == 1
    assert (pos[0]["side"], pos[0]["quantity"]) == (want.side, want.quantity)
    assert round(pos[0]["worst_unrealised"], 2) == round(float(want.worst_unrealised), 2)
    assert round(pos[0]["best_unrealised"], 2) == round(float(want.best_unrealised), 2)
    assert pos[0]["worst_unrealised"] < 0 < pos[0]["best_unrealised"]  # the walk went both ways
    st = system.client.get("/status").json()["feed"]
    assert st["per_symbol"][MNQ]["source"] == "tradingview"
    assert st["per_symbol"][MNQ]["failovers"] == 0
