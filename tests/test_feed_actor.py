"""The FeedActor on real Ray with live sources: the TradingView simulator over loopback sockets
delivers exact tick sequences to a recording target; an outage and a silent stall of the quote
socket fail over to the scanner and back, and the recorder sees exactly the expected prices."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.broker.tradovate.sim.server import SimServer
from actors.feed.actor import FeedActor
from actors.feed.cookies import box_for
from actors.feed.sources.base import Tick
from actors.feed.sources.tradingview import tv_symbol
from actors.feed.tv_sim import SimConfig
from actors.feed.tv_sim.thread import TvSimThread
from actors.instruments import normalize
from actors.runtime import tree_class
from actors.store import Store, ensure_local_user, repo
from tests.system import ensure_ray

pytestmark = [pytest.mark.ray]

MNQ = normalize("MNQ1!", datetime.now(UTC).date())  # what the feed quotes for MNQ1! today
ES = normalize("ES1!", datetime.now(UTC).date())
TV = {MNQ: tv_symbol(MNQ), ES: tv_symbol(ES)}


@ray.remote(num_cpus=0)
class TickSink:
    """A feed target that keeps every tick it is sent, in order."""

    def __init__(self) -> None:
        self.ticks: list[tuple[str, float, float]] = []
        self.numbers: list[tuple[str, int]] = []  # (symbol, feed number) of every tick
        self.batches: list[int] = []  # ticks per call received
        self.refuse = 0  # the next calls that fail, as a dead or restarting host's would
        self.received: list[float] = []  # when the feed received each tick, in order

    async def on_ticks(
        self,
        batch: dict[str, tuple[list[float], list[float]]],
        seqs: dict[str, int] | None = None,
        epoch: float | None = None,
        recv: dict[str, list[float]] | None = None,
    ) -> int:
        if self.refuse > 0:
            self.refuse -= 1
            raise ConnectionError("target down")
        self.batches.append(sum(len(tss) for tss, _ in batch.values()))
        for symbol, (tss, prices) in batch.items():
            self.ticks.extend((symbol, ts, px) for ts, px in zip(tss, prices, strict=True))
            if seqs is not None:
                self.numbers.extend((symbol, seqs[symbol] + i) for i in range(len(tss)))
            if recv is not None:
                assert len(recv[symbol]) == len(tss)  # one receive time per tick
                self.received.extend(recv[symbol])
        return sum(len(t) for t, _ in batch.values())

    def got(self) -> list[tuple[str, float, float]]:
        return self.ticks

    def got_numbers(self) -> list[tuple[str, int]]:
        return self.numbers

    def got_received(self) -> list[float]:
        return self.received

    def got_batches(self) -> list[int]:
        return self.batches

    def set_refuse(self, n: int) -> None:
        self.refuse = n


def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """The timeout only bounds a failing test; nothing asserts on time."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Rig:
    def __init__(self, sim: TvSimThread, feed: Any, sink: Any) -> None:
        self.sim, self.feed, self.sink = sim, feed, sink

    def status(self) -> dict[str, Any]:
        return ray.get(self.feed.status.remote())

    def sym(self, symbol: str = MNQ) -> dict[str, Any]:
        return self.status()["per_symbol"][symbol]

    def prices(self) -> list[tuple[str, float]]:
        return [(s, px) for s, _, px in ray.get(self.sink.got.remote())]

    def publish(self, symbol: str, price: float) -> None:
        self.sim.publish(Tick(TV[symbol], time.time(), price))

    def wait_prices(self, n: int) -> list[tuple[str, float]]:
        until(lambda: len(self.prices()) >= n, f"{n} ticks at the recorder")
        return self.prices()

    def wait_usable(self, source: str, symbol: str = MNQ) -> None:
        until(lambda: self.sym(symbol)["sources"][source]["usable"], f"{source} usable")

    def wait_active(self, source: str, symbol: str = MNQ) -> None:
        until(lambda: self.sym(symbol)["source"] == source, f"{source} active")


@contextmanager
def rig(
    symbols: list[str], spec: str = "tradingview", batch_ms: float = 0.0, **options: Any
) -> Iterator[Rig]:
    ensure_ray()
    ns = f"jt-feed-{uuid.uuid4().hex[:8]}"
    config = SimConfig(heartbeat_s=0.05)
    with TvSimThread(config, symbols=[TV[s] for s in symbols]) as sim:
        source = {
            "spec": spec,
            "tradingview_url": sim.ws_url,
            "tradingview_www_url": sim.http_url,
            "scanner_url": sim.http_url,
            "scanner_interval_s": 0.05,
            "stale_s": 0.5,
            "symbol_stale_s": 0.0,
            "recover_s": 0.3,
            "check_s": 0.02,
        } | options
        sink_name = f"sink-{uuid.uuid4().hex[:6]}"
        sink = TickSink.options(name=sink_name, namespace=ns).remote()  # type: ignore[attr-defined]
        feed = (
            tree_class(FeedActor)
            .options(name="feed", namespace=ns, num_cpus=0)
            .remote(ns, source, symbols, [sink_name], 4.0, 1.0, batch_ms)
        )
        try:
            ray.get(feed.start.remote())
            yield Rig(sim, feed, sink)
        finally:
            ray.kill(feed)
            ray.kill(sink)


def test_exact_tick_sequence_through_the_tradingview_simulator() -> None:
    with rig([MNQ, ES]) as r:
        r.wait_usable("tradingview", MNQ)
        r.wait_usable("tradingview", ES)
        script = [(MNQ, 21000.0), (ES, 6000.0), (MNQ, 21000.25), (MNQ, 21000.25), (ES, 5999.75)]
        for symbol, price in script:
            r.publish(symbol, price)
        got_prices = r.wait_prices(len(script))
        for symbol in (MNQ, ES):  # batches are per symbol: the order is kept per symbol
            assert [p for p in got_prices if p[0] == symbol] == [
                p for p in script if p[0] == symbol
            ]
        assert len(got_prices) == len(script)
        got = ray.get(r.sink.got.remote())
        for symbol in (MNQ, ES):
            stamps = [ts for s, ts, _ in got if s == symbol]
            assert stamps == sorted(stamps)
        st = r.status()
        assert st["source"] == "tradingview" and st["chain"] == ["tradingview", "scanner"]
        mnq = st["per_symbol"][MNQ]
        assert (mnq["source"], mnq["last_price"], mnq["failovers"]) == ("tradingview", 21000.25, 0)
        assert mnq["delayed"] is True  # anonymous: TradingView labels the data delayed
        assert set(mnq["market"]) == {"open", "next_open", "next_close"}
        assert st["live"]["sources"]["tradingview"]["anonymous"] is True
        assert st["live"]["tradingview_login"]["state"] == "anonymous"


def test_outage_fails_over_to_the_scanner_and_back() -> None:
    with rig([MNQ]) as r:
        r.wait_usable("tradingview")
        r.publish(MNQ, 21000.0)
        r.wait_prices(1)
        r.wait_usable("scanner")  # the standby has priced it too

        r.sim.call(lambda sim: sim.set_ws_down(True))
        r.wait_active("scanner")
        r.publish(MNQ, 21001.0)  # only the scanner can see it now
        assert r.wait_prices(2) == [(MNQ, 21000.0), (MNQ, 21001.0)]

        until(lambda: r.sim.call(lambda sim: sim.stats.refused) >= 1, "a refused reconnect")
        assert r.sym()["source"] == "scanner"
        r.sim.call(lambda sim: sim.set_ws_down(False))
        r.wait_active("tradingview")
        r.publish(MNQ, 21002.0)
        assert r.wait_prices(3) == [(MNQ, 21000.0), (MNQ, 21001.0), (MNQ, 21002.0)]

        st = r.status()
        kinds = [(s["from"], s["to"], s["kind"]) for s in st["live"]["switches"]]
        assert kinds == [
            ("tradingview", "scanner", "failover"),
            ("scanner", "tradingview", "failback"),
        ]
        assert (st["live"]["failovers"], st["live"]["failbacks"]) == (1, 1)
        assert st["per_symbol"][MNQ]["failovers"] == 1
        stamps = [ts for _, ts, _ in ray.get(r.sink.got.remote())]
        assert stamps == sorted(stamps)


def test_silent_stall_fails_over_and_back() -> None:
    with rig([MNQ]) as r:
        r.wait_usable("tradingview")
        r.publish(MNQ, 21000.0)
        r.wait_prices(1)
        r.wait_usable("scanner")

        def stall(sim: Any) -> int:
            sim.faults.ws_down = True  # reconnects are refused until the test says so
            return sim.stall_connections()  # the open socket goes silent (no heartbeats)

        assert r.sim.call(stall) == 1
        r.wait_active("scanner")
        switch = r.status()["live"]["switches"][-1]
        assert switch["kind"] == "failover" and "silent" in switch["reason"]
        r.publish(MNQ, 20999.0)
        assert r.wait_prices(2) == [(MNQ, 21000.0), (MNQ, 20999.0)]

        r.sim.call(lambda sim: setattr(sim.faults, "ws_down", False))
        r.wait_active("tradingview")
        r.publish(MNQ, 20999.5)
        assert r.wait_prices(3) == [(MNQ, 21000.0), (MNQ, 20999.0), (MNQ, 20999.5)]
        assert r.status()["live"]["sources"]["tradingview"]["stale"] >= 1


def tradovate_store(tmp_path: Path) -> str:
    """A database with one Tradovate login (sealed credentials), as the accounts API leaves it."""
    url = f"sqlite:///{tmp_path / 'jt.db'}"
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    plain = {
        "username": "simuser",
        "password": "simpass",
        "app_id": "tests",
        "app_version": "1.0",
        "cid": 0,
        "sec": "secret",
        "device_id": "device-feed",
    }
    sealed = box_for(None, url).seal(plain)
    assert user.id is not None
    repo.create_account(store, user.id, "tradovate", "TV demo", "demo", sealed)
    store.dispose()
    return url


def test_tradovate_primary_fails_over_to_tradingview_and_back(tmp_path: Path) -> None:
    url = tradovate_store(tmp_path)
    with (
        SimServer(faults={"server_heartbeat_s": 0.1}) as tradovate,
        rig(
            [MNQ],
            spec="tradovate",
            database_url=url,
            tradovate_demo_url=tradovate.base_url,
            tradovate_md_url=tradovate.md_ws_url,
        ) as r,
    ):
        r.wait_usable("tradovate")
        r.wait_active("tradovate")  # (a slow start-up may have begun on tradingview)
        assert r.sym()["delayed"] is False
        before = len(r.status()["live"]["switches"])
        tradovate.push_prices([{"symbol": MNQ, "price": 21000.0, "ts": time.time()}])
        r.wait_prices(1)
        r.wait_usable("tradingview")

        # Tradovate stops answering (429 on every request) and drops the md socket.
        faults = {"http429_for_s": 3600, "ws_drop": True}
        tradovate.call_in_loop(lambda: tradovate.sim.apply_faults(faults))
        r.wait_active("tradingview")
        r.publish(MNQ, 21000.5)
        assert r.wait_prices(2) == [(MNQ, 21000.0), (MNQ, 21000.5)]

        healed = {"reset": True, "server_heartbeat_s": 0.1}
        tradovate.call_in_loop(lambda: tradovate.sim.apply_faults(healed))
        r.wait_active("tradovate")
        tradovate.push_prices([{"symbol": MNQ, "price": 21001.0, "ts": time.time()}])
        assert r.wait_prices(3) == [(MNQ, 21000.0), (MNQ, 21000.5), (MNQ, 21001.0)]
        md = r.status()["live"]["sources"]["tradovate"]
        assert md["symbols"][MNQ]["last_price"] == 21001.0 and md["subscribes"] >= 2
        switches = r.status()["live"]["switches"][before:]
        assert [(s["from"], s["to"]) for s in switches] == [
            ("tradovate", "tradingview"),
            ("tradingview", "tradovate"),
        ]


def test_tradovate_without_a_login_leaves_the_chain_to_tradingview(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    Store(url).migrate()
    with rig([MNQ], spec="tradovate", database_url=url, stale_s=0.3) as r:
        r.wait_active("tradingview")
        assert r.sym()["sources"]["tradovate"]["reason"] == "no Tradovate account with credentials"
        r.publish(MNQ, 21000.0)
        assert r.wait_prices(1) == [(MNQ, 21000.0)]


def test_a_target_that_fails_gets_every_tick_later_in_order_and_numbered() -> None:
    """Nothing is dropped for a target that is down: failed batches go back in front of the
    queue, and the history answers what a restarted host lost, by number."""
    with rig([MNQ], spec="none") as r:
        ray.get(r.sink.set_refuse.remote(3))
        prices = [21000.0 + 0.25 * i for i in range(40)]
        pushed = []
        for i, px in enumerate(prices):
            pushed.append(time.time())
            ray.get(r.feed.push.remote([{"symbol": MNQ, "ts": 1000.0 + i, "price": px}]))
        assert r.wait_prices(len(prices)) == [(MNQ, px) for px in prices]
        assert ray.get(r.sink.got_numbers.remote()) == [(MNQ, n) for n in range(1, 41)]
        # each tick's receive time stays with it through the failed sends: taken when the feed
        # got it (after the push began, before the next push), not when it was finally sent
        received = ray.get(r.sink.got_received.remote())
        assert len(received) == 40
        assert all(
            a <= t <= b for a, t, b in zip(pushed, received, [*pushed[1:], 1e18], strict=True)
        )
        # the sink holds the last batch before the feed hears its call returned: wait for that
        assert ray.get(r.feed.drain.remote())
        st = r.status()
        assert st["errors"] >= 3 and st["targets_down"] == {} and st["ticks_dropped"] == 0
        hist = ray.get(r.feed.history.remote({MNQ: {"epoch": 0.0, "seq": 5.0}}))
        assert hist["ticks"][MNQ][2] == 1  # another numbering: everything kept
        epoch = hist["epoch"]
        hist = ray.get(r.feed.history.remote({MNQ: {"epoch": epoch, "seq": 35.0}}))
        # tick n is stamped 1000 + n - 1
        assert hist["ticks"][MNQ] == ([1035.0, 1036.0, 1037.0, 1038.0, 1039.0], prices[35:], 36)
        assert hist["before"][MNQ] == (1034.0, prices[34]) and hist["last"][MNQ] == 40


def test_a_lone_tick_goes_at_once_and_the_window_coalesces_what_follows() -> None:
    """The coalescing window counts from the previous batch: the first tick goes at once (it
    used to wait the window out, and take the ticks after it along), and the ticks pushed right
    after it wait for the window's end and go as one batch."""
    with rig([MNQ], spec="none", batch_ms=2000.0) as r:
        ray.get(r.feed.push.remote([{"symbol": MNQ, "ts": 1000.0, "price": 21000.0}]))
        r.status()  # a call later: the feed's loop has run in between
        later = [{"symbol": MNQ, "ts": 1000.0 + i, "price": 21000.0 + 0.25 * i} for i in (1, 2)]
        ray.get(r.feed.push.remote(later))  # well inside the window
        r.wait_prices(3)
        assert ray.get(r.sink.got_batches.remote()) == [1, 2]
