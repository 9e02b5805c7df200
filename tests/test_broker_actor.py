"""BrokerActor on a real local Ray: fills, priorities, idempotency, kill switch, listeners."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import pytest
import ray
from ray.exceptions import RayActorError

from actors import channel
from actors.broker.actor import BrokerActor, broker_actor_class
from actors.broker.base import OrderRequest, OrderState, Priority, UnknownOrder
from actors.channel import ChannelClosed, Direct
from actors.runtime import BROKER_CHANNEL

pytestmark = pytest.mark.ray

NS = f"jt-broker-test-{uuid.uuid4().hex[:8]}"
MNQ = "MNQZ5"  # tick 0.25
MES = "MESZ5"  # tick 0.25


@pytest.fixture(scope="module", autouse=True)
def ray_runtime() -> Iterator[None]:
    if ray.is_initialized():  # another module's Ray runs in another namespace: start our own
        ray.shutdown()
    ray.init(num_cpus=2, namespace=NS, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def new_broker(**kwargs: Any) -> Any:
    name = f"broker-{uuid.uuid4().hex[:8]}"
    kwargs.setdefault("accounts", ["A1", "A2", "A3"])
    return broker_actor_class().options(name=name).remote(name=name, namespace=NS, **kwargs)


def req(
    cl: str,
    side: str,
    qty: int = 1,
    *,
    account: str = "A1",
    symbol: str = MNQ,
    priority: Priority = Priority.ENTRY,
    stop: float | None = None,
    pair: str = "pair-1",
) -> OrderRequest:
    return OrderRequest(
        cl_ord_id=cl,
        account=account,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        order_type="stop" if stop is not None else "market",
        stop_price=stop,
        priority=priority,
        pair_key=pair,
        created_ts=time.time(),
    )


def tick(broker: Any, symbol: str, *prices: float) -> None:
    ts = [time.time()] * len(prices)
    assert ray.get(broker.on_ticks.remote({symbol: (ts, list(prices))})) == len(prices)


def net(broker: Any, account: str) -> dict[str, tuple[int, float | None]]:
    return {p.symbol: (p.net_pos, p.net_price) for p in ray.get(broker.positions.remote(account))}


def test_actor_options() -> None:
    cls = broker_actor_class()
    options = cls._default_options
    assert options["max_restarts"] == -1
    assert options["max_task_retries"] == 0
    assert options["num_cpus"] == 0
    assert not hasattr(BrokerActor, "remote")  # the body stays a plain, testable class


def test_orders_fill_at_tick_prices_with_slippage() -> None:
    broker = new_broker(slippage_ticks=1)
    assert ray.get(broker.ping.remote())["ok"] is True
    no_price = ray.get(broker.place.remote(req("f0", "buy")))
    assert (no_price.status, no_price.reason) == ("rejected", "no_price")
    tick(broker, MNQ, 20010.0, 20000.0)
    buy = ray.get(broker.place.remote(req("f1", "buy", 2)))
    assert (buy.status, buy.avg_fill_price, buy.filled_qty) == ("filled", 20000.25, 2)
    assert net(broker, "A1") == {MNQ: (2, 20000.25)}
    stop = ray.get(
        broker.place.remote(req("f2", "sell", 2, stop=19990.0, priority=Priority.PROTECT))
    )
    assert stop.status == "working"
    tick(broker, MNQ, 19995.0, 19990.25)
    assert ray.get(broker.order_state.remote("f2")).status == "working"
    assert ray.get(broker.on_ticks.remote({MNQ: ([1.0, 2.0], [float("nan"), 19991.0])})) == 1
    tick(broker, MNQ, 19985.0)  # gap through the stop: filled at the gap price - 1 tick
    final = ray.get(broker.order_state.remote("f2"))
    assert (final.status, final.avg_fill_price) == ("filled", 19984.75)
    assert net(broker, "A1") == {}
    fills = ray.get(broker.fills.remote("A1"))
    assert [(f.cl_ord_id, f.side, f.qty, f.price) for f in fills] == [
        ("f1", "buy", 2, 20000.25),
        ("f2", "sell", 2, 19984.75),
    ]
    assert [s.cl_ord_id for s in ray.get(broker.orders_for.remote("pair-1"))] == ["f0", "f1", "f2"]
    status = ray.get(broker.status.remote())
    assert status["orders"] == {"rejected": 1, "filled": 2}
    assert status["fills"] == 2 and status["open_positions"] == 0
    assert status["counts"]["bad_ticks"] == 1
    assert set(status["budget_left"]) == {"hour", "second"}


def test_exits_overtake_queued_entries_under_a_saturated_limiter() -> None:
    window = 0.3
    broker = new_broker(limits={"orders": (1, window)}, safety_margin=0.0)
    tick(broker, MNQ, 20000.0)
    # e1 takes the only slot for one window; everything after it queues. (Ray may start an async
    # actor's calls out of submission order, so only the priority order is asserted.)
    assert ray.get(broker.place.remote(req("e1", "buy"))).status == "filled"
    refs = [broker.place.remote(req(f"e{i}", "buy")) for i in (2, 3, 4)]
    refs.append(broker.place.remote(req("x1", "sell", priority=Priority.EXIT)))
    refs.append(broker.place.remote(req("k1", "sell", priority=Priority.KILL)))
    time.sleep(window / 3)
    status = ray.get(broker.status.remote())
    assert status["queue_depth"] == 5
    assert status["queue_by_priority"] == {"ENTRY": 3, "EXIT": 1, "KILL": 1}
    states: list[OrderState] = ray.get(refs)
    assert all(s.status == "filled" for s in states)
    fills = ray.get(broker.fills.remote("A1"))
    order = [f.cl_ord_id for f in fills]
    assert order[:3] == ["e1", "k1", "x1"]
    assert sorted(order[3:]) == ["e2", "e3", "e4"]
    gaps = [b.ts - a.ts for a, b in pairwise(fills)]
    assert min(gaps) >= window * 0.9  # one per window: the limiter held them
    assert net(broker, "A1") == {MNQ: (2, 20000.0)}  # 4 bought, 2 sold


def test_duplicate_cl_ord_id_never_fills_twice() -> None:
    broker = new_broker(slippage_ticks=0, latency_ms=50)
    tick(broker, MNQ, 20000.0)
    # Concurrent duplicates while the first is still travelling, then late ones.
    refs = [broker.place.remote(req("d1", "buy", 2)) for _ in range(5)]
    states = ray.get(refs)
    assert sum(s.status == "filled" for s in states) >= 1
    assert all(s.status in ("pending", "filled") for s in states)
    again = ray.get(broker.place.remote(req("d1", "sell", 7)))  # other side, other qty
    assert (again.status, again.filled_qty) == ("filled", 2)
    assert len(ray.get(broker.fills.remote())) == 1
    assert net(broker, "A1") == {MNQ: (2, 20000.0)}
    assert ray.get(broker.status.remote())["counts"]["duplicates"] == 5


def test_kill_switch_flattens_three_accounts_and_blocks_entries_until_rearmed() -> None:
    broker = new_broker(slippage_ticks=1)
    tick(broker, MNQ, 20000.0)
    tick(broker, MES, 6000.0)
    opened = [
        req("o1", "buy", 2, account="A1"),
        req("o2", "sell", 3, account="A2"),
        req("o3", "buy", 1, account="A3", symbol=MES),
        req("o4", "sell", 1, account="A3"),
    ]
    assert all(s.status == "filled" for s in ray.get([broker.place.remote(o) for o in opened]))
    stop = req("s1", "sell", 2, account="A1", stop=19900.0, priority=Priority.PROTECT)
    assert ray.get(broker.place.remote(stop)).status == "working"

    result = ray.get(broker.kill.remote(None))
    assert result["cancelled"] == ["s1"]
    assert result["elapsed_s"] < 0.75
    flatten = {
        (o.account, o.symbol): (o.side, o.qty)
        for o in (ray.get(broker.fills.remote()))
        if o.cl_ord_id.startswith("kill-")
    }
    # Closing a long sells, closing a short buys, the full size.
    assert flatten == {
        ("A1", MNQ): ("sell", 2),
        ("A2", MNQ): ("buy", 3),
        ("A3", MES): ("sell", 1),
        ("A3", MNQ): ("buy", 1),
    }
    assert all(s.status == "filled" for s in result["flatten"])
    for account in ("A1", "A2", "A3"):
        assert net(broker, account) == {}
    tick(broker, MNQ, 19800.0)  # the cancelled stop must not fire
    assert ray.get(broker.order_state.remote("s1")).status == "cancelled"
    assert net(broker, "A1") == {}

    for i, account in enumerate(("A1", "A2", "A3")):
        blocked = ray.get(broker.place.remote(req(f"b{i}", "buy", account=account)))
        assert (blocked.status, blocked.reason) == ("rejected", "kill_switch")
    assert ray.get(broker.status.remote())["killed_all"] is True
    ray.get(broker.rearm.remote("A1"))  # a global kill is only lifted globally
    assert ray.get(broker.place.remote(req("b3", "buy", account="A1"))).reason == "kill_switch"
    # A cl_ord_id rejected by the kill switch stays used, even for a later legitimate send.
    assert ray.get(broker.place.remote(req("b0", "buy", account="A1"))).reason == "kill_switch"
    for account in ("A1", "A2", "A3"):
        assert net(broker, account) == {}

    ray.get(broker.rearm.remote(None))
    assert ray.get(broker.place.remote(req("r1", "buy", account="A1"))).status == "filled"
    # Per-account kill: only A1 is flattened and blocked.
    assert ray.get(broker.place.remote(req("r2", "sell", account="A2"))).status == "filled"
    result = ray.get(broker.kill.remote("A1"))
    assert [s.status for s in result["flatten"]] == ["filled"]
    assert net(broker, "A1") == {}
    assert net(broker, "A2") == {MNQ: (-1, 19799.75)}
    assert ray.get(broker.place.remote(req("r3", "buy", account="A1"))).reason == "kill_switch"
    assert ray.get(broker.place.remote(req("r4", "buy", account="A2"))).status == "filled"
    ray.get(broker.rearm.remote("A1"))
    assert ray.get(broker.place.remote(req("r5", "buy", account="A1"))).status == "filled"


def test_kill_drops_queued_orders_and_jumps_the_queue() -> None:
    window = 0.3
    broker = new_broker(limits={"orders": (1, window)}, safety_margin=0.0)
    tick(broker, MNQ, 20000.0)
    assert ray.get(broker.place.remote(req("q1", "buy", 2))).status == "filled"
    queued = [
        broker.place.remote(req("q2", "buy")),
        broker.place.remote(req("q3", "sell", priority=Priority.EXIT)),
        broker.place.remote(req("q4", "buy", account="A2")),  # another account: untouched
    ]
    time.sleep(0.05)
    result = ray.get(broker.kill.remote("A1"))
    assert sorted(result["dropped"]) == ["q2", "q3"]
    q2, q3, q4 = ray.get(queued)
    assert (q2.status, q2.reason) == ("rejected", "kill_switch")
    assert (q3.status, q3.reason) == ("rejected", "kill_switch")
    assert q4.status == "filled"
    fills = ray.get(broker.fills.remote())
    # The flatten (KILL) went out before the A2 entry that was queued earlier.
    assert [f.cl_ord_id for f in fills][:2] == ["q1", result["flatten"][0].cl_ord_id]
    assert net(broker, "A1") == {}


@ray.remote(num_cpus=0)
class Listener:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    async def on_broker_events(self, batch: list[dict[str, Any]]) -> None:
        # An async listener that yields: Ray would run overlapping calls out of order, so this
        # only stays ordered because the broker keeps one batch in flight per listener.
        await asyncio.sleep(0.02)
        self.events.extend(batch)

    def get(self) -> list[dict[str, Any]]:
        return self.events


def test_listener_receives_fills_in_order() -> None:
    listener_name = f"listener-{uuid.uuid4().hex[:8]}"
    listener = Listener.options(name=listener_name).remote()  # type: ignore[attr-defined]
    broker = new_broker()
    ray.get(broker.subscribe.remote(listener_name))
    ray.get(broker.subscribe.remote("nobody-by-this-name"))  # a missing listener harms no one
    tick(broker, MNQ, 20000.0)
    plan = [("l1", "buy", 1), ("l2", "buy", 2), ("l3", "sell", 4), ("l4", "buy", 1)]
    for cl, side, qty in plan:  # one at a time: Ray may reorder concurrent async-actor calls
        assert ray.get(broker.place.remote(req(cl, side, qty, pair="pair-L"))).status == "filled"
    l5 = req("l5", "buy", 3, stop=20005.0, priority=Priority.PROTECT, pair="pair-L")
    assert ray.get(broker.place.remote(l5)).status == "working"
    tick(broker, MNQ, 20002.0, 20006.0)

    deadline = time.monotonic() + 10
    while True:
        events = ray.get(listener.get.remote())
        if sum(e["type"] == "fill" for e in events) == 5 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    fills = [e for e in events if e["type"] == "fill"]
    assert [(f["cl_ord_id"], f["side"], f["qty"], f["price"]) for f in fills] == [
        ("l1", "buy", 1, 20000.0),
        ("l2", "buy", 2, 20000.0),
        ("l3", "sell", 4, 20000.0),
        ("l4", "buy", 1, 20000.0),
        ("l5", "buy", 3, 20006.0),
    ]
    assert all(f["pair_key"] == "pair-L" and f["broker"] for f in fills)
    assert [f["cl_ord_id"] for f in fills] == [f.cl_ord_id for f in ray.get(broker.fills.remote())]
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    positions = [e["net_pos"] for e in events if e["type"] == "position"]
    assert positions == [1, 3, -1, 0, 3]
    statuses = [(e["cl_ord_id"], e["status"]) for e in events if e["type"] == "order"]
    assert statuses == [
        ("l1", "filled"),
        ("l2", "filled"),
        ("l3", "filled"),
        ("l4", "filled"),
        ("l5", "working"),
        ("l5", "filled"),
    ]
    subscribers = ray.get(broker.status.remote())["subscribers"]
    assert subscribers[listener_name]["delivered"] == len(events)
    assert subscribers[listener_name]["errors"] == 0
    assert subscribers["nobody-by-this-name"]["errors"] >= 1


def test_two_kills_in_a_row_never_close_the_same_contracts_twice() -> None:
    broker = new_broker(limits={"orders": (1, 0.3)}, safety_margin=0.0)
    tick(broker, MNQ, 20000.0)
    assert ray.get(broker.place.remote(req("t1", "buy", 2))).status == "filled"
    # The first kill's flatten waits for budget; the second must count it as under way.
    first, second = ray.get([broker.kill.remote("A1"), broker.kill.remote(None)])
    flattens = [*first["flatten"], *second["flatten"]]
    assert [(s.status, s.filled_qty) for s in flattens] == [("filled", 2)]
    assert net(broker, "A1") == {}
    assert [f.side for f in ray.get(broker.fills.remote("A1"))] == ["buy", "sell"]


class SendsThenFails:
    """A broker whose network 'fails' after the order reached the exchange."""

    kind = "flaky"

    def __init__(self, reaches_exchange: bool = True) -> None:
        from actors.broker.paper import PaperBroker

        self.inner = PaperBroker()
        self.sent = 0
        self.reaches_exchange = reaches_exchange

    def set_listener(self, listener: Any) -> None:
        self.inner.set_listener(listener)

    async def place(self, order: OrderRequest) -> OrderState:
        self.sent += 1
        if self.reaches_exchange:
            await self.inner.place(order)
        raise ConnectionError("connection reset")

    async def cancel(self, cl_ord_id: str) -> OrderState:
        return await self.inner.cancel(cl_ord_id)

    async def positions(self, account: str) -> list[Any]:
        return await self.inner.positions(account)

    async def orders(self, account: str) -> list[OrderState]:
        return await self.inner.orders(account)


async def test_an_unknown_outcome_is_never_resent() -> None:
    flaky = SendsThenFails()
    actor = BrokerActor(broker=flaky)  # the plain class, no Ray
    flaky.inner.on_price(MNQ, 1.0, 20000.0)
    first = await actor.place(req("u1", "buy", 1))
    # The fill event arrived before the error: the actor knows it filled.
    assert first.status == "filled"
    flaky.inner.reject_next("later")  # would reject a second send, were there one
    assert await actor.place(req("u1", "buy", 1)) == first
    assert flaky.sent == 1
    assert (await actor.status())["counts"]["send_errors"] == 1
    assert [p.net_pos for p in await actor.positions("A1")] == [1]
    # Lost before the exchange saw it: still never resent; it stays pending, marked unknown,
    # for the sync stream or the reconciler to settle.
    lost = SendsThenFails(reaches_exchange=False)
    actor = BrokerActor(broker=lost)
    state = await actor.place(req("u2", "buy", 1))
    assert state.status == "pending" and (state.reason or "").startswith("unknown_outcome")
    assert await actor.place(req("u2", "buy", 1)) == state
    assert lost.sent == 1


def test_event_dicts_equal_asdict_for_every_event_type() -> None:
    """event_to_dict copies fields shallowly (cheaper than asdict): the same dict as asdict,
    for every event type, so no field may hold a container."""
    from dataclasses import asdict

    from actors.broker.base import BrokerFill, BrokerPosition, OrderState, event_to_dict

    samples = [
        OrderState("c1", "filled", "9", 2, 20000.25, None, 1.5, "acc", "MNQZ6"),
        BrokerFill("c1", "9", "acc", "MNQZ6", "buy", 2, 20000.25, 1.5, "f1"),
        BrokerPosition("acc", "MNQZ6", -3, 20001.0),
    ]
    for ev in samples:
        assert event_to_dict(ev) == {"type": event_to_dict(ev)["type"], **asdict(ev)}
        assert not any(isinstance(v, (list, dict, tuple, set)) for v in asdict(ev).values())
    assert [event_to_dict(ev)["type"] for ev in samples] == ["order", "fill", "position"]


async def test_calls_move_to_the_direct_channel_and_survive_a_restart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A caller on the broker's node (as a host is): after its first call, which goes through
    Ray while the channel connects, orders, cancels and ticks go over the channel with Ray's
    answers and errors. When the actor restarts, calls go through Ray again until the new
    process's channel is up."""
    monkeypatch.setattr(channel, "RETRY_S", 0.05)
    broker = new_broker()
    direct = Direct(broker, BROKER_CHANNEL)

    async def until_connected() -> None:
        deadline = time.monotonic() + 30
        while not direct.connected:
            assert time.monotonic() < deadline, "the channel never connected"
            # while the actor restarts, a call may fail (through Ray, or on the old channel)
            with contextlib.suppress(RayActorError, ChannelClosed):
                await direct.on_ticks.remote({MNQ: ([time.time()], [20000.0])})
            await asyncio.sleep(0.02)

    assert await direct.on_ticks.remote({MNQ: ([time.time()], [20000.0])}) == 1
    await until_connected()
    before = dict(direct.sent)
    [state] = await direct.place_many.remote([req("d1", "buy", 2)])
    assert (state.status, state.filled_qty, state.avg_fill_price) == ("filled", 2, 20000.0)
    with pytest.raises(UnknownOrder):
        await direct.cancel.remote("never-placed", Priority.EXIT)
    assert direct.sent["channel"] - before["channel"] == 2 and direct.sent["ray"] == before["ray"]
    assert (await broker.status.remote())["channel_calls"] >= 2

    ray.kill(broker, no_restart=False)
    await until_connected()  # through Ray meanwhile, then the new process's socket
    sent = direct.sent["channel"]
    [state] = await direct.place_many.remote([req("d2", "sell", 1)])
    assert state.status == "filled" and direct.sent["channel"] == sent + 1
