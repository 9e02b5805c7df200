"""Paper broker: matching, slippage, stops, netting, idempotency (actors/broker/paper.py)."""

from __future__ import annotations

import asyncio
import pickle
from collections import defaultdict
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.broker.base import (
    Broker,
    BrokerEvent,
    BrokerFill,
    BrokerPosition,
    OrderRequest,
    OrderState,
    Priority,
    UnknownOrder,
    event_to_dict,
    opposite,
    signed_qty,
)
from actors.broker.paper import PaperBroker, PaperMatcher

MNQ = "MNQZ5"  # tick 0.25, $2 per point
CL = "CLZ5"  # tick 0.01, $1000 per point

_ids = iter(range(1, 1_000_000))


def order(
    side: str,
    qty: int = 1,
    *,
    symbol: str = MNQ,
    account: str = "A1",
    stop: float | None = None,
    cl: str | None = None,
) -> OrderRequest:
    return OrderRequest(
        cl_ord_id=cl or f"o{next(_ids)}",
        account=account,
        symbol=symbol,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        order_type="stop" if stop is not None else "market",
        stop_price=stop,
        priority=Priority.PROTECT if stop is not None else Priority.ENTRY,
        pair_key="p1",
    )


class Recorder:
    def __init__(self) -> None:
        self.events: list[BrokerEvent] = []

    def __call__(self, event: BrokerEvent) -> None:
        self.events.append(event)

    def fills(self) -> list[BrokerFill]:
        return [e for e in self.events if isinstance(e, BrokerFill)]


def make(slippage: int = 0, **kw: object) -> tuple[PaperBroker, Recorder]:
    broker = PaperBroker(slippage_ticks=slippage, clock=lambda: 1000.0, **kw)  # type: ignore[arg-type]
    rec = Recorder()
    broker.set_listener(rec)
    return broker, rec


# --------------------------------------------------------------------------- value types


def test_order_request_validation() -> None:
    with pytest.raises(ValueError):
        order("hold")
    with pytest.raises(ValueError):
        order("buy", 0)
    with pytest.raises(ValueError):
        OrderRequest("x", "A1", MNQ, "buy", 1, "stop")  # stop without a stop price
    with pytest.raises(ValueError):
        OrderRequest("x", "A1", MNQ, "buy", 1, "market", 100.0)  # market with a stop price
    with pytest.raises(ValueError):
        OrderRequest("x" * 65, "A1", MNQ, "buy", 1)  # Tradovate clOrdId is <= 64 chars
    req = OrderRequest("x", "A1", MNQ, "sell", 3, priority=1)  # type: ignore[arg-type]
    assert req.priority is Priority.EXIT
    assert req.signed_qty == -3
    assert pickle.loads(pickle.dumps(req)) == req


def test_sides_and_priorities() -> None:
    assert opposite("buy") == "sell" and opposite("sell") == "buy"
    assert signed_qty("buy", 2) == 2 and signed_qty("sell", 2) == -2
    assert sorted(Priority, key=int) == [
        Priority.KILL,
        Priority.EXIT,
        Priority.PROTECT,
        Priority.ENTRY,
    ]
    assert isinstance(PaperBroker(), Broker)
    err = pickle.loads(pickle.dumps(UnknownOrder("zz")))
    assert isinstance(err, UnknownOrder) and err.cl_ord_id == "zz"


def test_event_to_dict() -> None:
    d = event_to_dict(BrokerPosition("A1", MNQ, -2, 100.5))
    assert d == {
        "type": "position",
        "account": "A1",
        "symbol": MNQ,
        "net_pos": -2,
        "net_price": 100.5,
    }
    assert event_to_dict(OrderState("c", "working"))["type"] == "order"
    with pytest.raises(TypeError):
        event_to_dict("nope")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- market orders


async def test_market_orders_fill_at_last_price_with_slippage_against_the_trader() -> None:
    broker, rec = make(slippage=2)
    broker.on_price(MNQ, 1.0, 20000.0)
    buy = await broker.place(order("buy", 2))
    assert buy.status == "filled"
    assert buy.avg_fill_price == 20000.50  # 2 ticks of 0.25 above
    assert buy.filled_qty == 2
    broker.on_price(MNQ, 2.0, 20010.0)
    sell = await broker.place(order("sell", 2))
    assert sell.avg_fill_price == 20009.50  # 2 ticks below
    assert await broker.positions("A1") == []
    assert [(f.side, f.qty, f.price) for f in rec.fills()] == [
        ("buy", 2, 20000.5),
        ("sell", 2, 20009.5),
    ]
    # realised: (20009.5 - 20000.5) points * 2 contracts * $2
    assert broker.matcher.realized_pnl("A1", MNQ) == pytest.approx(36.0)


async def test_off_tick_feed_price_is_rounded_before_slippage() -> None:
    broker, _ = make(slippage=1)
    broker.on_price(CL, 1.0, 70.004)  # rounds to 70.00
    assert (await broker.place(order("buy", symbol=CL))).avg_fill_price == 70.01
    broker.on_price(CL, 2.0, -1.00)  # crude has printed negative prices
    assert (await broker.place(order("sell", 2, symbol=CL))).avg_fill_price == -1.01


async def test_no_price_rejects_and_changes_nothing() -> None:
    broker, rec = make()
    state = await broker.place(order("buy", 3))
    assert (state.status, state.reason, state.filled_qty) == ("rejected", "no_price", 0)
    assert await broker.positions("A1") == []
    assert rec.fills() == []
    assert rec.events == [state]


async def test_reject_next_hook_unknown_account_and_symbol() -> None:
    broker, rec = make(accounts=["A1"])
    broker.on_price(MNQ, 1.0, 100.0)
    broker.reject_next("MaxPosLimitReached")
    first = await broker.place(order("buy"))
    assert (first.status, first.reason) == ("rejected", "MaxPosLimitReached")
    assert await broker.positions("A1") == []
    second = await broker.place(order("buy"))
    assert second.status == "filled"
    other = await broker.place(order("buy", account="B9"))
    assert (other.status, other.reason) == ("rejected", "unknown_account")
    bad = await broker.place(order("buy", symbol="FOO1!"))
    assert (bad.status, bad.reason) == ("rejected", "unknown_symbol")
    assert [p.net_pos for p in await broker.positions("A1")] == [1]
    assert len(rec.fills()) == 1


async def test_netting_weighted_average_partial_close_and_flip() -> None:
    broker, rec = make()
    m = broker.matcher

    async def at(price: float, side: str, qty: int) -> None:
        broker.on_price(MNQ, 0.0, price)
        assert (await broker.place(order(side, qty))).status == "filled"

    await at(20000.0, "buy", 2)
    await at(20003.0, "buy", 1)
    assert m.position("A1", MNQ) == BrokerPosition("A1", MNQ, 3, 20001.0)
    await at(20010.0, "sell", 1)  # partial close keeps the average
    assert m.position("A1", MNQ) == BrokerPosition("A1", MNQ, 2, 20001.0)
    assert m.realized_pnl("A1", MNQ) == pytest.approx(18.0)  # 9 points * 1 * $2
    await at(19990.0, "sell", 4)  # closes 2, opens 2 short at the fill price
    assert m.position("A1", MNQ) == BrokerPosition("A1", MNQ, -2, 19990.0)
    assert m.realized_pnl("A1", MNQ) == pytest.approx(18.0 - 44.0)
    await at(19995.0, "sell", 2)  # adding to a short
    assert m.position("A1", MNQ) == BrokerPosition("A1", MNQ, -4, 19992.5)
    await at(19980.0, "buy", 4)  # closing a short buys
    assert m.position("A1", MNQ) == BrokerPosition("A1", MNQ, 0, None)
    assert m.realized_pnl("A1", MNQ) == pytest.approx(-26.0 + 12.5 * 4 * 2)
    assert await broker.positions("A1") == []
    positions = [e for e in rec.events if isinstance(e, BrokerPosition)]
    assert [p.net_pos for p in positions] == [2, 3, 2, -2, -4, 0]


async def test_positions_are_per_account_and_symbol() -> None:
    broker, _ = make()
    broker.on_price(MNQ, 0.0, 100.0)
    broker.on_price(CL, 0.0, 70.0)
    await broker.place(order("buy", 2, account="A1"))
    await broker.place(order("sell", 1, account="A2"))
    await broker.place(order("sell", 3, account="A1", symbol=CL))
    assert await broker.positions("A1") == [
        BrokerPosition("A1", CL, -3, 70.0),
        BrokerPosition("A1", MNQ, 2, 100.0),
    ]
    assert await broker.positions("A2") == [BrokerPosition("A2", MNQ, -1, 100.0)]
    assert broker.accounts == ["A1", "A2"]


# --------------------------------------------------------------------------- stops


async def test_sell_stop_rests_then_fills_at_the_trigger_tick_with_slippage() -> None:
    broker, rec = make(slippage=1)
    broker.on_price(MNQ, 1.0, 20000.0)
    await broker.place(order("buy", 2))  # long 2 @ 20000.25
    stop = await broker.place(order("sell", 2, stop=19990.0))
    assert stop.status == "working"
    broker.on_price(MNQ, 2.0, 19995.0)
    broker.on_price(MNQ, 3.0, 19990.25)
    assert broker.matcher.state(stop.cl_ord_id).status == "working"
    broker.on_price(MNQ, 4.0, 19990.0)  # at the stop triggers
    final = broker.matcher.state(stop.cl_ord_id)
    assert (final.status, final.avg_fill_price, final.filled_qty) == ("filled", 19989.75, 2)
    assert rec.fills()[-1].ts == 4.0
    assert await broker.positions("A1") == []
    broker.on_price(MNQ, 5.0, 19000.0)
    assert len(rec.fills()) == 2  # never again


async def test_gap_through_a_stop_fills_at_the_gap_price() -> None:
    broker, _ = make(slippage=1)
    broker.on_price(MNQ, 1.0, 20000.0)
    await broker.place(order("sell", 1))  # short 1 @ 19999.75
    stop = await broker.place(order("buy", 1, stop=20010.0))
    broker.on_price(MNQ, 2.0, 20009.75)
    assert broker.matcher.state(stop.cl_ord_id).status == "working"
    broker.on_price(MNQ, 3.0, 20030.0)  # gapped 20 points through
    assert broker.matcher.state(stop.cl_ord_id).avg_fill_price == 20030.25
    assert await broker.positions("A1") == []


async def test_stops_through_the_market_trigger_on_the_next_tick_in_acceptance_order() -> None:
    broker, rec = make()
    broker.on_price(MNQ, 1.0, 100.0)
    first = await broker.place(order("sell", 1, stop=101.0))  # already through
    second = await broker.place(order("sell", 2, stop=100.5))
    assert first.status == second.status == "working"
    assert rec.fills() == []
    broker.on_price(MNQ, 2.0, 99.0)
    assert [(f.cl_ord_id, f.price) for f in rec.fills()] == [
        (first.cl_ord_id, 99.0),
        (second.cl_ord_id, 99.0),
    ]
    assert broker.matcher.position("A1", MNQ).net_pos == -3


async def test_stop_without_a_price_rests() -> None:
    broker, _ = make()
    stop = await broker.place(order("buy", 1, stop=50.0))
    assert stop.status == "working"
    broker.on_price(MNQ, 1.0, 49.0)
    assert broker.matcher.state(stop.cl_ord_id).status == "working"
    broker.on_price(MNQ, 2.0, 50.0)
    assert broker.matcher.state(stop.cl_ord_id).status == "filled"


async def test_cancel() -> None:
    broker, rec = make()
    broker.on_price(MNQ, 1.0, 100.0)
    stop = await broker.place(order("sell", 1, stop=95.0))
    cancelled = await broker.cancel(stop.cl_ord_id)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled")
    broker.on_price(MNQ, 2.0, 90.0)
    assert rec.fills() == []
    assert await broker.cancel(stop.cl_ord_id) == cancelled  # again: unchanged, no event
    filled = await broker.place(order("buy"))
    assert await broker.cancel(filled.cl_ord_id) == filled  # too late is not an error
    with pytest.raises(UnknownOrder):
        await broker.cancel("never-seen")
    assert [e.status for e in rec.events if isinstance(e, OrderState)] == [
        "working",
        "cancelled",
        "filled",
    ]


# --------------------------------------------------------------------------- idempotency


async def test_duplicate_cl_ord_id_never_fills_twice() -> None:
    broker, rec = make()
    broker.on_price(MNQ, 1.0, 100.0)
    first = await broker.place(order("buy", 2, cl="dup-1"))
    again = await broker.place(order("buy", 5, cl="dup-1"))  # different qty, same id
    assert again == first
    broker.on_price(MNQ, 2.0, 101.0)
    assert await broker.place(order("sell", 2, cl="dup-1")) == first
    assert len(rec.fills()) == 1
    assert broker.matcher.position("A1", MNQ).net_pos == 2
    rejected = await broker.place(order("buy", cl="dup-2", account="A1", symbol="FOO1!"))
    assert rejected.status == "rejected"
    assert await broker.place(order("buy", cl="dup-2")) == rejected  # a rejection stays


async def test_latency_fills_at_the_price_after_the_wait_and_dedupes_while_pending() -> None:
    prices = iter([101.0, 102.0])

    async def slow(_: float) -> None:
        # While the order "travels", the market moves.
        broker.on_price(MNQ, 5.0, next(prices))
        await asyncio.sleep(0)

    broker = PaperBroker(slippage_ticks=0, latency_ms=50, sleep=slow)
    broker.on_price(MNQ, 1.0, 100.0)
    first, dup = await asyncio.gather(
        broker.place(order("buy", 1, cl="lat-1")), broker.place(order("buy", 1, cl="lat-1"))
    )
    assert first.status == "filled" and first.avg_fill_price == 101.0
    assert (dup.status, dup.filled_qty) == ("pending", 0)
    assert len(broker.matcher.fills()) == 1


async def test_cancel_during_latency_prevents_the_fill() -> None:
    gate = asyncio.Event()

    async def wait(_: float) -> None:
        await gate.wait()

    broker = PaperBroker(latency_ms=10, sleep=wait)
    broker.on_price(MNQ, 1.0, 100.0)
    task = asyncio.create_task(broker.place(order("buy", cl="lat-2")))
    await asyncio.sleep(0)
    assert broker.matcher.state("lat-2").status == "pending"
    assert (await broker.cancel("lat-2")).status == "cancelled"
    gate.set()
    assert (await task).status == "cancelled"
    assert broker.matcher.fills() == [] and await broker.positions("A1") == []


async def test_real_latency() -> None:
    broker, _ = make(latency_ms=20)
    broker.on_price(MNQ, 1.0, 100.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert (await broker.place(order("buy"))).status == "filled"
    assert loop.time() - t0 >= 0.019


async def test_events_reach_the_listener_in_order_and_a_failing_listener_does_not_break_matching() -> (
    None
):
    broker, rec = make()
    broker.on_price(MNQ, 1.0, 100.0)
    await broker.place(order("buy", 1, cl="e1"))
    assert [type(e).__name__ for e in rec.events] == ["BrokerFill", "OrderState", "BrokerPosition"]

    def boom(_: BrokerEvent) -> None:
        raise RuntimeError("listener bug")

    broker.set_listener(boom)
    assert (await broker.place(order("sell", 1, cl="e2"))).status == "filled"
    assert await broker.positions("A1") == []
    assert [o.cl_ord_id for o in await broker.orders("A1")] == ["e1", "e2"]


# --------------------------------------------------------------------------- property test

SYMBOLS = {MNQ: (Fraction(1, 4), 2), CL: (Fraction(1, 100), 1000)}  # tick, point value
ACCOUNTS = ["A1", "A2"]

# One flat tuple per step (fields a step does not use are ignored); the kind list repeats kinds
# to weight the mix towards prices and market orders, so positions get added to, reduced and
# flipped within one example.
KINDS = ["price"] * 4 + ["market"] * 4 + ["stop"] * 2 + ["cancel", "dup", "reject"]
step = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(ACCOUNTS),
    st.sampled_from(list(SYMBOLS)),
    st.sampled_from(["buy", "sell"]),
    st.integers(1, 5),  # qty
    st.integers(-12, 12),  # price, in ticks from a base price
    st.integers(0, 100),  # which earlier order (cancel, dup)
)
steps = st.lists(step, min_size=10, max_size=80)


def px(symbol: str, tick_index: int) -> float:
    tick, _ = SYMBOLS[symbol]
    base = 20000 if symbol == MNQ else 70
    return float(base + tick * tick_index)


class LotOracle:
    """Independent average-cost model: open lots that a reduction shrinks pro rata, in exact
    fractions. The average of the lots is what ``net_price`` must be."""

    def __init__(self) -> None:
        self.lots: list[tuple[Fraction, Fraction]] = []  # (signed qty, price)
        self.realized = Fraction(0)

    @property
    def net(self) -> Fraction:
        return sum((q for q, _ in self.lots), Fraction(0))

    def average(self) -> Fraction | None:
        net = self.net
        return None if net == 0 else sum(q * p for q, p in self.lots) / net

    def fill(self, delta: int, price: Fraction, point_value: int) -> None:
        net = self.net
        if net == 0 or (net > 0) == (delta > 0):
            self.lots.append((Fraction(delta), price))
            return
        avg = self.average()
        assert avg is not None
        closed = min(abs(delta), abs(net))
        self.realized += (price - avg) * closed * (1 if net > 0 else -1) * point_value
        keep = 1 - Fraction(closed) / abs(net)
        self.lots = [(q * keep, p) for q, p in self.lots if q * keep != 0]
        rest = abs(delta) - closed
        if rest:
            self.lots = [(Fraction(rest if delta > 0 else -rest), price)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, slippage=st.integers(0, 2))
def test_property_positions_equal_the_fills(
    steps: list[tuple[str, str, str, str, int, int, int]], slippage: int
) -> None:
    m = PaperMatcher(ACCOUNTS, slippage_ticks=slippage)
    placed: list[OrderRequest] = []
    rejected_by_hook: set[str] = set()
    pending_reject = 0
    last: dict[str, float] = {}
    fills: list[BrokerFill] = []
    now = 0.0

    def check_fill_prices(events: list[BrokerEvent], trigger: float) -> None:
        for e in events:
            if isinstance(e, BrokerFill):
                tick, _ = SYMBOLS[e.symbol]
                shift = float(tick * slippage)
                expected = trigger + shift if e.side == "buy" else trigger - shift
                assert e.price == pytest.approx(expected, abs=1e-9)
                fills.append(e)

    for kind, account, symbol, side, qty, tick, pick in steps:
        now += 1.0
        if kind == "price":
            last[symbol] = px(symbol, tick)
            events = m.on_price(symbol, now, last[symbol])
            check_fill_prices(events, last[symbol])
            for e in events:
                if isinstance(e, BrokerFill):
                    req = m.request(e.cl_ord_id)
                    assert req.stop_price is not None
                    if req.side == "buy":
                        assert last[symbol] >= req.stop_price
                    else:
                        assert last[symbol] <= req.stop_price
            for o in placed:  # no stop is left working that this price reaches
                if m.state(o.cl_ord_id).status == "working" and o.symbol == symbol:
                    assert o.stop_price is not None
                    if o.side == "buy":
                        assert last[symbol] < o.stop_price
                    else:
                        assert last[symbol] > o.stop_price
        elif kind in ("market", "stop"):
            stop = px(symbol, tick) if kind == "stop" else None
            req = order(side, qty, symbol=symbol, account=account, stop=stop)
            state, events, is_new = m.submit(req, now)
            assert is_new
            placed.append(req)
            if pending_reject:
                pending_reject -= 1
                assert state.status == "rejected" and events == [state]
                rejected_by_hook.add(req.cl_ord_id)
                continue
            events = m.activate(req.cl_ord_id, now)
            if kind == "market" and symbol not in last:
                assert m.state(req.cl_ord_id).reason == "no_price"
            if kind == "market" and symbol in last:
                check_fill_prices(events, last[symbol])
        elif kind == "cancel" and placed:
            target = placed[pick % len(placed)]
            before = m.state(target.cl_ord_id)
            state, _ = m.cancel(target.cl_ord_id, now)
            assert state.status == ("cancelled" if before.is_active else before.status)
        elif kind == "dup" and placed:
            target = placed[pick % len(placed)]
            again = OrderRequest(target.cl_ord_id, target.account, target.symbol, target.side, qty)
            before = m.state(target.cl_ord_id)
            assert m.submit(again, now) == (before, [], False)
        elif kind == "reject":
            m.reject_next("test")
            pending_reject += 1

    assert fills == m.fills()
    # Nothing fills twice, and every fill is the whole order, on the order's side.
    per_order: dict[str, list[BrokerFill]] = defaultdict(list)
    for f in fills:
        per_order[f.cl_ord_id].append(f)
    for req in placed:
        state = m.state(req.cl_ord_id)
        got = per_order.get(req.cl_ord_id, [])
        if state.status == "filled":
            assert len(got) == 1
            assert (got[0].side, got[0].qty, got[0].account, got[0].symbol) == (
                req.side,
                req.qty,
                req.account,
                req.symbol,
            )
            assert state.avg_fill_price == got[0].price and state.filled_qty == req.qty
        else:
            assert got == [] and state.filled_qty == 0
        if req.cl_ord_id in rejected_by_hook:
            assert state.status == "rejected"

    # Positions: net = signed sum of fills; net_price = the independent lot average.
    oracles: dict[tuple[str, str], LotOracle] = defaultdict(LotOracle)
    for f in fills:
        _, point_value = SYMBOLS[f.symbol]
        oracles[(f.account, f.symbol)].fill(f.signed_qty, Fraction(str(f.price)), point_value)
    for account in ACCOUNTS:
        for symbol in SYMBOLS:
            pos = m.position(account, symbol)
            signed = sum(f.signed_qty for f in fills if (f.account, f.symbol) == (account, symbol))
            assert pos.net_pos == signed
            oracle = oracles[(account, symbol)]
            assert oracle.net == signed
            avg = oracle.average()
            if avg is None:
                assert pos.net_price is None
            else:
                assert pos.net_price == pytest.approx(float(avg), rel=1e-12, abs=1e-9)
            assert m.realized_pnl(account, symbol) == pytest.approx(
                float(oracle.realized), rel=1e-9, abs=1e-6
            )
    open_positions = m.positions()
    assert all(p.net_pos != 0 for p in open_positions)
    assert {(p.account, p.symbol) for p in open_positions} == {
        key for key, o in oracles.items() if o.net != 0
    }
