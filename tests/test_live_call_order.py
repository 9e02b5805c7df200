"""A cancel (or lookup) that reaches the broker actor before the placement it is about.

Ray does not keep the order of calls to an async actor, even from one caller: a ``cancel`` or
``lookup`` sent a moment after a ``place_many`` can run first (measured on Ray 2.60: about 2% of
back-to-back cancels overtook their own placement, the first cancel after a batch most often).
The broker actor then answers "never seen", the desk settles the order as never placed and
forgets it, and the placement, run next, sends it: an order at the broker that no pair tracks.
A stop left like that fills some time later; once the broker actor has restarted meanwhile, its
fill comes without a pair key (the new actor did not place it) and no lookup asks for it, so
the pair's book and the broker part for good. The chaos flake of issue #6 has exactly that
shape (a ×1 pair short 1 on a flat account; the ×1 cancel is the first call after the batch
placement of the three traders' stops, the one most likely to overtake it).

Everything here runs in one event loop against the Tradovate simulator, without Ray: the desk
talks to the broker actor through :class:`Route`, which can hold a call back to reproduce the
overtaking deterministically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import actors.recorder.desk_orders as desk_orders
from actors.broker.actor import BrokerActor
from actors.broker.base import UNKNOWN_AT_BROKER, OrderRequest, UnknownOrder, event_to_dict
from actors.broker.tradovate.adapter import TradovateConfig
from actors.broker.tradovate.auth import Credentials, Endpoints
from actors.broker.tradovate.sim import SimConfig, SimServer, SimUser
from actors.instruments import front_month
from actors.recorder.book import LONG, SHORT
from actors.recorder.config import RecorderSettings
from actors.recorder.desk import LiveDesk, live_key
from actors.runtime import broker_name
from actors.store import Store, repo

SYMBOL = front_month("MNQ", date.today())  # the simulator's front month
TICK = 0.25
ACCOUNT = "DEMO0001"
SETTINGS = RecorderSettings.model_validate(
    {"take_profit": {"targets": [{"value": 12, "trim": 100}]}, "stop_loss": {"value": 10}}
)


class ActorDown(Exception):
    """What a call to a broker actor that is restarting raises (Ray's ActorUnavailableError)."""


class Listeners:
    """Stands in for the broker actor's subscriber list: its events go to the desk, each on a
    later loop iteration and in order, as the real listeners deliver them."""

    def __init__(self, name: str, deliver: Callable[[list[dict[str, Any]]], None]) -> None:
        self.name = name
        self.deliver = deliver
        self.seq = 0

    def add(self, name: str) -> None:
        pass

    def remove(self, name: str) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {}

    def publish(self, event: Any, pair_key: str | None, origin: str | None = None) -> None:
        self.seq += 1
        message = {**event_to_dict(event), "seq": self.seq, "broker": self.name}
        message.update(pair_key=pair_key, origin=origin)
        asyncio.get_running_loop().call_soon(self.deliver, [message])


class Route:
    """The desk's handle on the broker actor, in process. A call runs as a task on the running
    loop; a call ``hold`` picks waits until :meth:`release` (it was overtaken), one ``fail``
    picks raises :class:`ActorDown` (lost on the way)."""

    def __init__(self) -> None:
        self.actor: BrokerActor | None = None
        self.hold: Callable[[str, tuple[Any, ...]], bool] = lambda method, args: False
        self.fail: Callable[[str, tuple[Any, ...]], bool] = lambda method, args: False
        self.held: list[tuple[asyncio.Event, asyncio.Task[Any]]] = []

    def __getattr__(self, method: str) -> Any:
        return SimpleNamespace(remote=lambda *args: self._call(method, args))

    def _call(self, method: str, args: tuple[Any, ...]) -> asyncio.Task[Any]:
        gate = asyncio.Event() if self.hold(method, args) else None
        down = self.fail(method, args)
        actor = self.actor  # a call goes to the actor's life it was sent to

        async def run() -> Any:
            if down:
                raise ActorDown(f"{method}: the actor is restarting")
            if gate is not None:
                await gate.wait()
            assert actor is not None
            return await getattr(actor, method)(*args)

        task = asyncio.get_running_loop().create_task(run())
        if gate is not None:
            self.held.append((gate, task))
        return task

    async def release(self) -> None:
        """Run the held calls now, and wait until the broker actor answered them."""
        held, self.held = self.held, []
        for gate, _ in held:
            gate.set()
        await asyncio.gather(*(task for _, task in held), return_exceptions=True)


@dataclass
class Desk:
    """One live pair (trader ×1 on DEMO0001) on a desk, its store, the simulator and the
    broker actor behind :class:`Route`."""

    sim: SimServer
    store: Store
    desk: LiveDesk
    route: Route
    config: TradovateConfig
    name: str  # the broker actor's
    rid: int
    key: str
    ts: float = 0.0
    sid: int = 0

    def commit(self, write: Any) -> None:
        self.store.run_write(write)
        self.desk.send()

    def apply(self, write: Any) -> None:
        if write is None:
            self.desk.send()
        else:
            self.commit(write)

    def deliver(self, events: list[dict[str, Any]]) -> None:
        self.apply(self.desk.on_events(events, time.time()))

    def start_broker(self) -> None:
        """A broker actor life: a fresh one knows only what the broker's sync tells it, and
        has placed nothing itself."""
        actor = BrokerActor(name=self.name, kind="tradovate", tradovate=self.config)
        actor._listeners = Listeners(self.name, self.deliver)  # type: ignore[assignment]
        self.route.actor = actor

    async def restart_broker(self) -> None:
        """The broker actor dies and comes back; the supervisor rewires the host."""
        await self.stop_broker()
        self.start_broker()
        assert self.desk.rewire(self.name, time.time())

    async def stop_broker(self) -> None:
        if self.route.actor is not None:
            await self.route.actor.broker.close()  # type: ignore[attr-defined]
            self.route.actor = None

    def price(self, price: float, desk: bool = True) -> None:
        """The broker sees the price first, then (``desk``) the pair."""
        self.sim.push_prices([{"symbol": SYMBOL, "price": price}])
        if desk:
            self.ts += 1.0
            self.apply(self.desk.on_ticks(SYMBOL, [self.ts], [round(price / TICK)]))

    def signal(self, kind: str) -> None:
        self.sid += 1
        self.ts += 1.0
        intent = {"kind": kind, "symbol": SYMBOL, "quantity": None, "target": None}
        sides = frozenset((LONG, SHORT))
        self.apply(self.desk.on_signal(self.rid, self.sid, intent, sides, self.ts))

    def timer(self) -> None:
        self.apply(self.desk.on_timer(time.time()))

    @property
    def book(self) -> Any:
        return self.desk.by_key[self.key].pair.book(SYMBOL)

    def orders(self, role: str) -> list[Any]:
        return [o for o in self.book.orders.values() if o.role == role]

    def broker_net(self) -> int:
        state = httpx.get(f"{self.sim.admin_url}/state", timeout=10).json()
        names = {a["id"]: a["name"] for a in state["accounts"]}
        return sum(p["netPos"] for p in state["positions"] if names[p["accountId"]] == ACCOUNT)

    def placed(self, cl: str) -> int:
        """How many times ``cl`` reached the broker (the simulator's request log)."""
        requests = httpx.get(f"{self.sim.admin_url}/requests", timeout=10).json()["requests"]
        return sum(
            1
            for r in requests
            if r["endpoint"] == "order/placeorder" and r["params"].get("clOrdId") == cl
        )

    async def until(self, check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)


@pytest.fixture
def sim() -> Iterator[SimServer]:
    server = SimServer(SimConfig(users=[SimUser(accounts=[ACCOUNT])])).start()
    yield server
    server.stop()


@pytest.fixture
async def live(
    sim: SimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Desk]:
    store = Store(f"sqlite:///{tmp_path / 'jt.db'}")
    store.migrate()
    user = repo.ensure_local_user(store)
    assert user.id is not None
    rec = repo.create_recorder(store, user.id, "order", SYMBOL, SETTINGS)
    acc = repo.create_account(store, user.id, "tradovate", "TV", "demo", None, [("1", ACCOUNT)])
    assert rec.id is not None and acc.id is not None
    with store.read() as s:
        (sub,) = repo.list_sub_accounts(s, acc.id)
    trader = repo.create_trader(store, user.id, rec.id, acc.id, sub.id, multiplier=1.0)
    assert trader.id is not None
    route = Route()
    monkeypatch.setattr(desk_orders, "ray", SimpleNamespace(get_actor=lambda *a, **k: route))
    # Every call goes through the Route (which reorders and drops them as Ray may): with Ray
    # running in this process (an earlier test module's), the in-process broker actor would
    # answer ``channel()`` and the desk would bypass the Route over a direct channel.
    monkeypatch.setenv("JT_CHANNELS", "0")
    config = TradovateConfig(
        credentials=Credentials("simuser", "simpass", "JustTrades", "1.0", 0, "sec", "dev"),
        endpoints=Endpoints.local(sim.base_url.removesuffix("/v1")),
        cancel_wait_s=3.0,
        reconnect_initial_s=0.2,
    )
    desk = LiveDesk(None, "recorder-host-0")
    name = broker_name("tradovate", acc.id)
    d = Desk(sim, store, desk, route, config, name, rec.id, live_key(rec.id, trader.id))
    d.ts = time.time()
    desk.commit = d.commit
    with store.read() as s:
        desk.load(s, rec.id, SETTINGS)
    assert desk.by_key[d.key].pair.t.multiplier == Fraction(1)
    d.start_broker()
    try:
        yield d
    finally:
        await d.stop_broker()
        store.dispose()


@pytest.mark.parametrize("overtaken_by", ["cancel", "lookup"])
async def test_a_stop_whose_placement_is_overtaken_never_leaves_the_pair_behind(
    live: Desk, overtaken_by: str
) -> None:
    """Short 1 with its protective stop's placement held back; a close cancels that stop
    (``cancel``: the cancel runs first; ``lookup``: the cancel is lost on the way and the
    next sweep's lookup runs first). Then the placement runs; the broker actor restarts; the
    pair goes short again with a higher stop, and the price rises through the first stop's
    level only. The pair and the broker must still agree."""
    d = live
    d.price(20000.0)
    stops: list[str] = []

    def first_stop_placement(method: str, args: tuple[Any, ...]) -> bool:
        if method != "place_many" or stops:
            return False
        stops.extend(o.cl_ord_id for o in args[0] if o.order_type == "stop")
        return bool(stops)

    d.route.hold = first_stop_placement
    d.signal("sell")
    await d.until(lambda: d.book.net == -1 and bool(stops), "short 1, its stop's placement held")
    (stop,) = stops
    level = d.book.orders[stop].stop
    assert level is not None and level * TICK > 20000.0

    if overtaken_by == "lookup":  # the cancel is lost on the way; the sweep asks instead
        d.route.fail = lambda method, args: method == "cancel" and args[0] == stop
    d.signal("close")  # cancel the stop first, then exit at market
    assert d.book.orders[stop].cancel_sent
    if overtaken_by == "lookup":
        await asyncio.sleep(0.05)
        assert not d.book.orders[stop].terminal  # a lost cancel settles nothing
        d.route.fail = lambda method, args: False
        d.desk._sweep(time.time(), 0.0)  # the lookup of unsettled orders
    await d.until(lambda: d.book.pos is None and not d.book.orders, "flat, nothing working")
    assert d.broker_net() == 0

    await d.route.release()  # the overtaken placement runs now
    await d.restart_broker()  # the new life never placed that stop

    entry = 20000.0 + 5 * TICK  # short again, below the first stop's level
    d.price(entry)
    d.signal("sell")
    await d.until(lambda: d.book.net == -1 and bool(d.orders("stop")), "short 1 again")
    assert d.orders("stop")[0].stop > level  # the new stop rests above the first one
    await d.until(lambda: d.broker_net() == -1, "the broker short 1")

    d.price(level * TICK + TICK, desk=False)  # through the first stop's level, not the new one
    for _ in range(20):  # a second of timer beats (sweeps, retries): time to book a fill
        d.timer()
        await asyncio.sleep(0.05)
    assert (d.book.net, d.broker_net()) == (-1, -1), (
        f"the pair holds {d.book.net}, the broker {d.broker_net()}: "
        f"the first stop reached the broker {d.placed(stop)} time(s) after it was settled"
    )
    assert d.placed(stop) == 0


async def test_a_placement_after_its_cancel_answered_unknown_is_not_sent() -> None:
    """The broker actor's side of it, on the paper broker: once a cancel was answered "never
    seen", a placement of that id that arrives afterwards is answered as cancelled and never
    reaches the broker."""
    actor = BrokerActor(name="broker", kind="paper", accounts=["A1"])
    order = OrderRequest("late-1", "A1", "MNQZ5", "buy", 1, "stop", 20010.0)
    with pytest.raises(UnknownOrder):
        await actor.cancel("late-1")
    (state,) = await actor.place_many([order])
    assert (state.status, state.reason) == ("cancelled", UNKNOWN_AT_BROKER)
    assert await actor.sent_orders() == []
    assert await actor.broker.orders("A1") == []
    assert (await actor.lookup(["late-1"]))["states"]["late-1"] is None


class Inbox:
    """A listener actor's handle, in process: what ``on_broker_events`` received."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.on_broker_events = SimpleNamespace(remote=self._receive)

    async def _receive(self, batch: list[dict[str, Any]]) -> None:
        self.events += batch


@pytest.mark.parametrize("named", [True, False])
async def test_a_placement_that_overtakes_the_subscribe_still_reports_its_fill(
    monkeypatch: pytest.MonkeyPatch, named: bool
) -> None:
    """A host's first placement can run before its ``subscribe`` (Ray does not keep the order
    of calls to an async actor): the placement names its listener, so the fill reaches the host
    at once instead of through the lookup sweep seconds later. Without the name (``named``
    False: the old call) the fill goes to nobody, which is the race this closes."""
    inbox = Inbox()
    monkeypatch.setattr("actors.broker.listeners.ray.get_actor", lambda name, namespace=None: inbox)
    actor = BrokerActor(name="broker", kind="paper", accounts=["A1"])
    await actor.on_ticks({"MNQZ5": ([time.time()], [20000.0])})
    order = OrderRequest("first-1", "A1", "MNQZ5", "buy", 1, pair_key="r1:t1")
    args = ("jt-host-0",) if named else ()
    (state,) = await actor.place_many([order], *args)
    for _ in range(10):  # delivery runs from the next loop iterations
        await asyncio.sleep(0)
    assert state.status == "filled"
    fills = [ev for ev in inbox.events if ev["type"] == "fill" and ev["pair_key"] == "r1:t1"]
    assert len(fills) == (1 if named else 0)
    if named:
        await actor.subscribe("jt-host-0")  # the overtaken subscribe, arriving late: no twin
        assert list(actor._listeners.subscribers) == ["jt-host-0"]


async def test_the_desk_names_itself_on_every_placement_and_cancel(live: Desk) -> None:
    """The desk's side: every ``place_many`` and ``cancel`` it sends carries its listener."""
    desk = live
    calls: list[tuple[str, tuple[Any, ...]]] = []
    desk.route.hold = lambda method, args: bool(calls.append((method, args)))
    desk.price(20000.0)
    desk.signal("buy")
    await desk.until(lambda: desk.book.net == 1 and bool(desk.orders("stop")), "long 1, stop")
    desk.signal("close")
    await desk.until(lambda: desk.book.net == 0 and not desk.book.orders, "flat")
    sent = [(m, a) for m, a in calls if m in ("place_many", "cancel")]
    assert {m for m, _ in sent} == {"place_many", "cancel"}
    assert all(a[-1] == desk.desk.listener for _, a in sent)


async def test_the_desk_stamps_when_it_sent_each_order(live: Desk) -> None:
    """``sent_ts`` (what a new position's first ticks are judged by, LiveTicks.on_batch) is
    the instant the desk handed the order over, after its rows committed."""
    desk = live
    desk.price(20000.0)
    before = time.time()
    desk.signal("buy")
    (entry,) = desk.book.orders.values()
    assert before <= entry.sent_ts <= time.time()
    await desk.until(lambda: desk.book.net == 1, "long 1")
    assert desk.book.fresh is not None and desk.book.fresh[1] == entry.sent_ts


async def test_an_answer_after_a_reload_goes_to_the_new_pair(live: Desk) -> None:
    """A recorder reloaded (the API changed it) while its entry was out: the placement's answer,
    which comes back after the reload, goes to the pair hosted now, rebuilt from the store with
    that order, and the old pair object is left alone (writing it would put its stale state
    back in the position row)."""
    d = live
    d.price(20000.0)
    d.route.hold = lambda method, args: method == "place_many"
    d.signal("buy")
    old = d.desk.by_key[d.key]
    (cl,) = list(old.pair.book(SYMBOL).orders)
    with d.store.read() as s:
        d.desk.load(s, d.rid, SETTINGS)
    new = d.desk.by_key[d.key]
    assert new is not old and new.pair.order(cl) is not None
    assert d.route.actor is not None
    d.route.actor._listeners.deliver = lambda events: None  # only the answer tells
    await d.route.release()
    await d.until(lambda: new.pair.order(cl).broker_order_id is not None, "the answer, new pair")
    old_order = old.pair.order(cl)
    assert old_order is not None and old_order.broker_order_id is None
