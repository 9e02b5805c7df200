"""A recorder host applies signal and broker-event batches a slice at a time and lets the calls
that arrived meanwhile run in between (:mod:`actors.recorder.turns`). In-process host (no Ray),
a paper matching engine behind a stand-in for the broker actor's handle that checks, at every
placement, that what decided the order is already in the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from actors.broker.base import OrderRequest, OrderState, event_to_dict
from actors.broker.paper import PaperBroker
from actors.recorder.config import RecorderSettings, Sizing, TakeProfit, TakeProfitTarget
from actors.recorder.host import RecorderHost
from actors.recorder.turns import EVENT_SLICE, SIGNAL_SLICE
from actors.store import Store, models, repo

SYMBOL = "MNQZ6"
PRICE = 20000.0
TICK = 0.25
PAIRS = 12  # 36 broker events for their entries: two slices
SETTINGS = RecorderSettings(
    sizing=Sizing(allow_add=False),
    take_profit=TakeProfit(targets=[TakeProfitTarget(value=4, trim=100)]),
)


class Method:
    def __init__(self, fn: Callable[..., Any]) -> None:
        self.remote = fn


class PaperHandle:
    """What the desk calls on a broker actor, over a :class:`PaperBroker`. Events wait in
    ``events`` (with ``pair_key`` and ``broker``, as the actor publishes them) until a test
    delivers them; ``placed`` lists each placement with whether its order row and the pair's
    fills were in the store when it was sent."""

    def __init__(self, name: str, paper: PaperBroker, store: Store) -> None:
        self.name, self.paper, self.store = name, paper, store
        self.requests: dict[str, OrderRequest] = {}
        self.events: list[dict[str, Any]] = []
        self.placed: list[tuple[str, bool, int]] = []  # (cl id, order row stored, fills stored)
        paper.set_listener(self._on_event)
        self.place_many = Method(self._place_many)
        self.subscribe = Method(lambda *a: None)
        self.cancel = Method(self._cancel)
        self.lookup = Method(self._lookup)
        self.positions_of = Method(self._positions_of)

    def _on_event(self, ev: Any) -> None:
        req = self.requests.get(getattr(ev, "cl_ord_id", ""))
        pair_key = None if req is None else req.pair_key
        self.events.append({**event_to_dict(ev), "broker": self.name, "pair_key": pair_key})

    def _stored(self, order: OrderRequest) -> tuple[bool, int]:
        with self.store.read() as s:
            row = s.exec(
                select(models.Order).where(models.Order.cl_ord_id == order.cl_ord_id)
            ).first()
            fills = s.exec(select(models.Fill).where(models.Fill.pair_key == order.pair_key)).all()
        return row is not None, len(fills)

    def _place_many(self, orders: list[OrderRequest], listener: Any = None) -> Any:
        for o in orders:  # checked when the desk hands them over
            self.placed.append((o.cl_ord_id, *self._stored(o)))
            self.requests[o.cl_ord_id] = o
        return self._execute(orders)

    async def _execute(self, orders: list[OrderRequest]) -> list[OrderState]:
        return [await self.paper.place(o) for o in orders]

    async def _cancel(self, cl: str, *_: Any) -> OrderState:
        return await self.paper.cancel(cl)

    async def _lookup(self, cls: list[str]) -> dict[str, Any]:
        return {"fills": [], "states": []}

    async def _positions_of(self, accounts: list[str]) -> list[Any]:
        return [p for a in accounts for p in await self.paper.positions(a)]


class Live:
    """PAIRS recorders, each copied by one trader on its own paper account, on one host."""

    def __init__(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'turns.db'}"
        self.store = store = Store(url)
        store.migrate()
        user = repo.ensure_local_user(store)
        assert user.id is not None
        self.rids: list[int] = []
        for i in range(PAIRS):
            rec = repo.create_recorder(store, user.id, f"r{i}", SYMBOL, SETTINGS)
            acc = repo.create_account(
                store, user.id, "paper", f"p{i}", "paper", None, [("paper-{account_id}", "P")]
            )
            assert rec.id is not None and acc.id is not None
            with store.read() as s:
                sub = repo.list_sub_accounts(s, acc.id)[0]
            repo.create_trader(store, user.id, rec.id, acc.id, sub.id)
            self.rids.append(rec.id)
        self.host = RecorderHost(0, 1, url, flush_s=3600)
        self.paper = PaperBroker()
        (name,) = {lh.broker for lh in self.host.desk.by_key.values()}
        for lh in self.host.desk.by_key.values():
            self.paper.matcher.add_account(lh.pair.t.account)
        self.broker = PaperHandle(name, self.paper, store)
        self.host.desk.handles[name] = self.broker
        self.price(PRICE)

    def price(self, px: float) -> dict[str, tuple[list[float], list[float]]]:
        self.paper.on_price(SYMBOL, time.time(), px)
        return {SYMBOL: ([time.time()], [px])}

    def signal(
        self, rid: int, kind: str, received_at: float | None = None
    ) -> tuple[int, int, dict[str, Any]]:
        """A signal stored as the webhook stores it (its intent in ``parsed``)."""
        now = time.time() if received_at is None else received_at
        intent = {"kind": kind, "quantity": None, "target": None, "price": None,
                  "symbol": SYMBOL, "signal_time": None, "received_at": now}  # fmt: skip
        row, _ = repo.insert_signal(self.store, recorder_id=rid, raw_body=b"{}", content_type=None,
                                    remote_addr=None, dedupe_key=None, window_s=0, now=now,
                                    parsed={"intent": intent})  # fmt: skip
        assert row.id is not None
        return row.id, rid, intent

    async def settle(self) -> None:
        """Let the placements' tasks run and deliver the events they produced."""
        await asyncio.sleep(0.01)
        events, self.broker.events = self.broker.events, []
        if events:
            await self.host.on_broker_events(events)

    def stored_states(self) -> dict[str, dict[str, Any]]:
        with self.store.read() as s:
            rows = s.exec(select(models.Position).where(models.Position.trader_id != None)).all()  # noqa: E711
        return {r.pair_key: _durable(r.state) for r in rows}

    def memory_states(self) -> dict[str, dict[str, Any]]:
        return {k: _durable(lh.pair.snapshot(SYMBOL)) for k, lh in self.host.desk.by_key.items()}


def _durable(state: dict[str, Any]) -> dict[str, Any]:
    """A live pair's snapshot without its phase: the broker's confirmation that an exit left
    the account flat (CONFIRM_FLAT -> IDLE) changes only the phase, and is not written (a
    restored pair waits for the confirmation, or its timeout, again)."""
    return {k: v for k, v in state.items() if k not in ("phase", "phase_ts")}


async def enter_all(live: Live) -> list[dict[str, Any]]:
    """Every pair buys; returns the broker's events for the entries, not delivered yet."""
    await live.host.on_signals([live.signal(rid, "buy") for rid in live.rids])
    await asyncio.sleep(0.01)
    events, live.broker.events = live.broker.events, []
    assert len(events) > EVENT_SLICE, "the entries' events must fill more than one slice"
    return events


async def test_a_tick_that_arrives_during_a_batch_of_fills_exits_before_the_batch_ends(
    tmp_path: Path,
) -> None:
    """The tick crosses the take profit of the pairs whose fills the first slice booked; their
    exits are placed while the batch is still applying the others' fills, and only once their
    entries' fills and their exit orders are durable."""
    live = Live(tmp_path)
    events = await enter_all(live)
    done: list[str] = []

    async def fills() -> None:
        await live.host.on_broker_events(events)
        done.append("events")

    async def tick() -> None:
        await live.host.on_ticks(live.price(PRICE + 4 * TICK))
        done.append("tick")

    batch = asyncio.create_task(fills())
    await asyncio.sleep(0)  # the batch applies its first slice and lets others run
    assert live.host._unwritten, "the first slice's rows wait for a commit"
    await tick()
    exits = [cl for cl, _, _ in live.broker.placed if "-x" in cl]
    assert exits, "the pairs filled in the first slice exit on the tick"
    assert len(exits) < PAIRS, "the others had no position yet"
    assert not batch.done()
    await batch
    assert done == ["tick", "events"]
    for cl, order_stored, fills_stored in live.broker.placed:
        assert order_stored, f"{cl} sent before its row was committed"
        if "-x" in cl:
            assert fills_stored >= 1, f"{cl} sent before its entry's fill was committed"
    await live.settle()
    assert live.stored_states() == live.memory_states()


async def test_nothing_is_sent_while_a_slice_s_rows_wait(tmp_path: Path) -> None:
    """An answer or a beat between two slices sends nothing; the batch's commit sends it."""
    live = Live(tmp_path)
    events = await enter_all(live)
    batch = asyncio.create_task(live.host.on_broker_events(events))
    await asyncio.sleep(0)
    assert live.host._unwritten
    live.host.desk.outbox.append(("fake", "place", None))  # as if a slice had decided an order
    live.host.desk.send()
    assert live.host.desk.outbox, "sent while rows of the slice were not committed"
    live.host.desk.outbox.clear()
    await batch
    assert not live.host._unwritten


async def test_signal_batches_apply_in_arrival_order(tmp_path: Path) -> None:
    """Two batches for one recorder sent at once: the second waits for the first, even though
    the first lets other calls run between its slices."""
    live = Live(tmp_path)
    rid = live.rids[0]
    kinds = ["buy", "close"] * SIGNAL_SLICE  # longer than a slice
    first = [live.signal(rid, k) for k in kinds]
    second = [live.signal(rid, k) for k in kinds]
    a = asyncio.create_task(live.host.on_signals(first))
    b = asyncio.create_task(live.host.on_signals(second))
    await asyncio.gather(a, b)
    with live.store.read() as s:
        rows = s.exec(
            select(models.Signal).where(models.Signal.recorder_id == rid).order_by(models.Signal.id)
        ).all()
    applied = [r.applied_at for r in rows]
    assert all(x is not None for x in applied)
    assert applied == sorted(applied), "signals applied out of their order"


@pytest.mark.parametrize("call", ["load_traders", "load_recorder", "reset"])
async def test_a_reload_waits_for_a_batch_under_way(tmp_path: Path, call: str) -> None:
    """Rebuilding pairs from the store while a batch's rows wait in memory would rebuild them
    from older rows: the reload waits for the batch, then reads what it committed."""
    live = Live(tmp_path)
    events = await enter_all(live)
    rid = live.rids[0]
    order: list[str] = []

    async def fills() -> None:
        await live.host.on_broker_events(events)
        order.append("events")

    async def reload() -> None:
        await getattr(live.host, call)(rid)
        order.append(call)

    batch = asyncio.create_task(fills())
    await asyncio.sleep(0)
    assert live.host._unwritten
    await asyncio.gather(batch, reload())
    assert order == ["events", call]
    assert not live.host._unwritten
    if call != "reset":  # reset forgets the pair's state by design
        assert live.stored_states() == live.memory_states()
        book = live.host.desk.by_recorder[rid][0].pair.books[SYMBOL]
        assert book.net == 1, "the reloaded pair lost the fill of the batch"


async def test_the_orphan_sweep_waits_for_a_signal_batch_under_way(tmp_path: Path) -> None:
    """Signals redelivered after a restart are old enough for the orphan sweep. While their
    batch lets others run, the store still shows them ``received`` (their rows wait in
    memory): a sweep then would apply them a second time."""
    live = Live(tmp_path)
    rid = live.rids[0]
    await live.host.on_ticks(live.price(PRICE))  # the virtual pairs' fill price
    old = time.time() - 60
    items = [live.signal(rid, k, received_at=old) for k in ["buy", "close"] * SIGNAL_SLICE]
    batch = asyncio.create_task(live.host.on_signals(items, redelivered=True))
    await asyncio.sleep(0)
    assert live.host._unwritten
    live.host.orphans_at = 0.0
    assert live.host._sweep_orphans(time.time()) == 0
    await batch
    with live.store.read() as s:
        fills = s.exec(select(models.Fill).where(models.Fill.pair_key == f"r{rid}:virtual")).all()
    assert len(fills) == len(items), "a signal was applied twice"
    live.host.orphans_at = 0.0
    assert live.host._sweep_orphans(time.time()) == 0  # nothing left received
