"""The live pair against the paper matching engine (pure, no Ray): it mirrors its recorder, and
under a slow or reordering broker its book still equals the broker's and it never closes twice.
"""

from __future__ import annotations

import random
from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.instruments import spec_for
from actors.recorder.config import RecorderSettings
from actors.recorder.live import IDLE, LivePair, Trader
from actors.recorder.pair import Pair
from tests.live_harness import Harness
from tests.test_pair_vs_reference import CONTRACTS, recorder_settings, tick_move

signal_event = st.tuples(
    st.just("signal"),
    st.sampled_from(["buy", "sell", "buy", "sell", "close", "add", "target"]),
    st.one_of(st.none(), st.integers(1, 4)),  # quantity
    st.integers(-5, 5),  # target
)
tick_event = st.tuples(st.just("tick"), tick_move, st.floats(0.2, 45.0), st.booleans())
events = st.lists(
    st.one_of(tick_event, tick_event, tick_event, signal_event), min_size=5, max_size=120
)


def no_atr(cfg: RecorderSettings) -> RecorderSettings:
    """ATR-step DCA needs bars the live pair is not given here; use a tick step instead."""
    if cfg.dca is not None and cfg.dca.unit == "atr":
        return cfg.model_copy(update={"dca": cfg.dca.model_copy(update={"unit": "ticks"})})
    return cfg


def trader(mult: Fraction = Fraction(1), **kw: object) -> Trader:
    return Trader("r1:t1", "jt1t1", "acct", mult, **kw)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=recorder_settings(),
    symbol=st.sampled_from(CONTRACTS),
    start=st.integers(3000, 9000),
    evs=events,
)
def test_live_pair_mirrors_the_virtual_pair(
    cfg: RecorderSettings, symbol: str, start: int, evs: list[tuple]
) -> None:
    """Multiplier 1 and an immediate broker: after every event the broker's position, the live
    book and the virtual pair agree, and the trades are the same closes for the same reasons
    (TP prices differ: a virtual target fills at its level, a live exit at the market)."""
    cfg = no_atr(cfg)
    virtual = Pair("v", cfg, spec_for)
    h = Harness(LivePair(trader(), cfg, spec_for))
    money = virtual.book(symbol).money
    px, ts, sid = start, 1_000_000.0, 0
    virtual_trades, live_trades = [], []
    h.tick(symbol, ts, float(money.price(px)))
    virtual.on_tick(symbol, ts, float(money.price(px)))
    for ev in evs:
        if ev[0] == "tick":
            _, move, dt, _ = ev
            px, ts = max(1, px + move), ts + dt
            price = float(money.price(px))
            virtual_trades += virtual.on_tick(symbol, ts, price).trades
            n = len(h.outcomes)
            # The broker has the tick before the pair's order reaches it (else a DCA add fills
            # at the previous price: right for the broker, but no longer the virtual fill).
            h.tick(symbol, ts, price)
        else:
            _, action, qty, target = ev
            ts, sid = ts + 0.5, sid + 1
            tgt = target if action == "target" else None
            vout = virtual.on_signal(symbol, ts, action, None, qty, tgt)
            virtual_trades += vout.trades
            n = len(h.outcomes)
            lout = h.signal(symbol, ts, action, sid, quantity=qty, target=tgt)
            assert lout.status == vout.status
        live_trades += [t for o in h.outcomes[n:] for t in o.trades]
        vb = virtual.book(symbol)
        vnet = 0 if vb.pos is None else vb.pos.side * vb.pos.qty
        assert h.pair_net(symbol) == vnet == h.broker_net(symbol)
        assert [(t.side, t.quantity, t.reason) for t in live_trades] == [
            (t.side, t.quantity, t.reason) for t in virtual_trades
        ]
        assert h.pair.books[symbol].phase == IDLE
    cls = [o.cl_ord_id for o in h.placed]
    assert len(cls) == len(set(cls)), "a client order id was sent twice"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=recorder_settings(),
    symbol=st.sampled_from(CONTRACTS),
    start=st.integers(3000, 9000),
    evs=events,
    mult=st.sampled_from([Fraction(1), Fraction(2), Fraction(3), Fraction(1, 2)]),
    cap=st.one_of(st.none(), st.integers(1, 6)),
    seed=st.integers(0, 2**32),
)
def test_slow_reordering_broker_never_double_closes(
    cfg: RecorderSettings,
    symbol: str,
    start: int,
    evs: list[tuple],
    mult: Fraction,
    cap: int | None,
    seed: int,
) -> None:
    """Events held back and delivered later in a random order: no exit ever crosses the
    broker position through zero, no id is sent twice, the cap holds, and once everything is
    delivered and the timers have run, the live book equals the broker's position."""
    rnd = random.Random(seed)
    cfg = no_atr(cfg)
    h = Harness(LivePair(trader(mult, max_contracts=cap), cfg, spec_for))
    h.hold = lambda d: rnd.random() < 0.5
    money = h.pair.book(symbol).money
    px, ts, sid = start, 1_000_000.0, 0
    h.tick(symbol, ts, float(money.price(px)))
    for ev in evs:
        if ev[0] == "tick":
            px, ts = max(1, px + ev[1]), ts + ev[2]
            h.tick(symbol, ts, float(money.price(px)), ev[3])
        else:
            ts, sid = ts + 0.5, sid + 1
            h.signal(
                symbol, ts, ev[1], sid, quantity=ev[2], target=ev[3] if ev[1] == "target" else None
            )
        if rnd.random() < 0.3:
            h.release(ts, lambda evs: rnd.sample(evs, len(evs)))
        if cap is not None:
            assert abs(h.broker_net(symbol)) <= cap
    h.hold = None
    for _ in range(5):  # deliver everything, let timeouts and confirmations run out
        h.release(ts)
        ts += 60.0
        h.timer(ts)
    assert h.pair_net(symbol) == h.broker_net(symbol)
    assert h.pair.books[symbol].phase == IDLE
    cls = [o.cl_ord_id for o in h.placed]
    assert len(cls) == len(set(cls)), "a client order id was sent twice"
    assert all(len(c) <= 64 for c in cls)
    net = 0
    roles = {o.cl_ord_id: o for o in h.placed}
    for f in h.matcher.fills("acct"):
        before, net = net, net + (f.qty if f.side == "buy" else -f.qty)
        req = roles[f.cl_ord_id]
        if req.priority <= 2:  # exits and stops only ever reduce
            assert (
                before != 0 and abs(net) < abs(before) and (net == 0 or (net > 0) == (before > 0))
            ), f"{req.cl_ord_id} moved {before} -> {net}"


batch_event = st.one_of(
    st.tuples(st.just("batch"), st.lists(tick_move, min_size=1, max_size=12)),
    st.tuples(st.just("batch"), st.lists(tick_move, min_size=1, max_size=12)),
    signal_event,
    # the broker's events held back, then delivered: batches meet orders still under way
    st.tuples(st.sampled_from(["hold", "release"])),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cfg=recorder_settings(),
    symbol=st.sampled_from(CONTRACTS),
    start=st.integers(3000, 9000),
    evs=st.lists(batch_event, min_size=3, max_size=60),
)
def test_batches_equal_tick_by_tick(
    cfg: RecorderSettings, symbol: str, start: int, evs: list[tuple]
) -> None:
    """``on_batch`` (which skips a whole batch when nothing can happen) leaves the pair exactly
    where feeding the same ticks one by one does: position, excursions, exit levels, orders;
    also while the broker's answers are held back (entries, exits and stops under way)."""
    cfg = no_atr(cfg)
    a = Harness(LivePair(trader(), cfg, spec_for))
    b = Harness(LivePair(trader(), cfg, spec_for))
    money = a.pair.book(symbol).money
    px, ts, sid = start, 1_000_000.0, 0
    for h in (a, b):
        h.tick(symbol, ts, float(money.price(px)))
    for ev in evs:
        if ev[0] == "batch":
            tss, ticks = [], []
            for move in ev[1]:
                px, ts = max(1, px + move), ts + 0.01
                tss.append(ts)
                ticks.append(px)
            for h in (a, b):  # the broker has the prices first, as a live market would
                for t, p in zip(tss, ticks, strict=True):
                    h._broker_tick(symbol, t, float(money.price(p)))
            book_a, book_b = a.pair.book(symbol), b.pair.book(symbol)
            outs_a = [a.pair.on_tick_ticks(book_a, t, p) for t, p in zip(tss, ticks, strict=True)]
            outs_b = b.pair.on_batch(book_b, tss, ticks, min(ticks), max(ticks))
            for out in outs_a:
                a.run(out, ts)
            for out in outs_b:
                b.run(out, ts)
        elif ev[0] == "hold":
            for h in (a, b):
                h.hold = lambda d: True
        elif ev[0] == "release":
            ts += 0.01
            for h in (a, b):
                h.hold = None
                h.release(ts)
        else:
            ts, sid = ts + 0.5, sid + 1
            tgt = ev[3] if ev[1] == "target" else None
            for h in (a, b):
                h.signal(symbol, ts, ev[1], sid, quantity=ev[2], target=tgt)
        ba, bb = a.pair.book(symbol), b.pair.book(symbol)
        assert ba.pos == bb.pos and ba.exits == bb.exits
        assert ba.last_tick == bb.last_tick and ba.phase == bb.phase
        assert [o.cl_ord_id for o in a.placed] == [o.cl_ord_id for o in b.placed]


def test_a_batch_inside_the_prices_seen_still_hits_a_moved_stop() -> None:
    """The trailing stop moved up inside the range seen since the fill: a later batch that
    stays inside that range must still reach it (excursions alone would say 'nothing new')."""
    from actors.recorder.config import TrailingStop

    cfg = RecorderSettings(trailing_stop=TrailingStop(unit="ticks", trigger=4, distance=2))
    symbol = "MNQZ5"
    for batched in (False, True):
        h = Harness(LivePair(trader(), cfg, spec_for))
        money = h.pair.book(symbol).money
        h.tick(symbol, 1.0, float(money.price(5000)))
        h.signal(symbol, 1.5, "buy", 1)
        ts = 2.0
        for path in ([5001, 5002, 5003, 5004, 5005, 5006, 5005], [5005, 5004, 5003]):
            tss = [ts + i / 100 for i in range(len(path))]
            b = h.pair.book(symbol)
            if batched:
                outs = h.pair.on_batch(b, tss, path, min(path), max(path))
            else:
                outs = [h.pair.on_tick_ticks(b, t, p) for t, p in zip(tss, path, strict=True)]
            for out in outs:
                h.run(out, ts)
            ts += 1.0
        assert h.pair_net(symbol) == 0, f"batched={batched}: the trailing stop at 5004 was missed"


def test_an_exit_timeout_inside_a_batch_fires_at_its_tick() -> None:
    """A batch that outlasts an exit's timeout (and the cancel's retry) cancels it at the same
    tick as feeding the ticks one by one: the ticks after an exit went out take a cheap path
    (LiveTicks._inert_until) only until the earliest timeout."""
    from actors.recorder.config import Sizing, TakeProfit, TakeProfitTarget

    cfg = RecorderSettings(
        sizing=Sizing(allow_add=False),
        take_profit=TakeProfit(targets=[TakeProfitTarget(value=4, trim=100)]),
    )
    symbol = "MNQZ5"
    runs = []
    for batched in (False, True):
        h = Harness(LivePair(trader(exit_timeout_s=0.05, cancel_retry_s=0.03), cfg, spec_for))
        money = h.pair.book(symbol).money
        h.tick(symbol, 1.0, float(money.price(5000)))
        h.signal(symbol, 1.5, "buy", 1)
        path = [5001, 5002, 5003, 5004] + [5005, 5004, 5006, 5003, 5007] * 6
        tss = [2.0 + i * 0.007 for i in range(len(path))]
        b = h.pair.book(symbol)
        if batched:
            outs = h.pair.on_batch(b, tss, path, min(path), max(path))
        else:
            outs = [h.pair.on_tick_ticks(b, t, p) for t, p in zip(tss, path, strict=True)]
        sent = [
            ([o.cl_ord_id for o in out.place], list(out.cancel))
            for out in outs
            if out.place or out.cancel
        ]
        runs.append((sent, b.pos, b.phase, b.last_tick, b.seen))
    assert runs[0] == runs[1]
    sent = runs[0][0]
    # the exit, its cancel at the timeout, the cancel again at each retry
    assert len(sent) >= 3 and all(cancel == sent[0][0] for _, cancel in sent[1:])


def test_a_sent_cancel_is_in_the_saved_state() -> None:
    """The outcome that sends a cancel names its symbol, so the desk writes the pair's
    snapshot with ``cancel_sent``: a pair rebuilt from it after a restart still knows it
    asked (a lookup then sends the cancel again instead of the order)."""
    from actors.recorder.config import Sizing, TakeProfit, TakeProfitTarget

    cfg = RecorderSettings(
        sizing=Sizing(allow_add=False),
        take_profit=TakeProfit(targets=[TakeProfitTarget(value=4, trim=100)]),
    )
    symbol = "MNQZ5"
    h = Harness(LivePair(trader(exit_timeout_s=0.05), cfg, spec_for))
    money = h.pair.book(symbol).money
    h.tick(symbol, 1.0, float(money.price(5000)))
    h.signal(symbol, 1.5, "buy", 1)
    b = h.pair.book(symbol)
    exit_out = h.pair.on_tick_ticks(b, 2.0, 5004)
    (cl,) = [o.cl_ord_id for o in exit_out.place]
    cancel_out = h.pair.on_tick_ticks(b, 2.1, 5004)
    assert cancel_out.cancel == [cl] and symbol in cancel_out.symbols
    rebuilt = LivePair(trader(exit_timeout_s=0.05), cfg, spec_for)
    rebuilt.restore(symbol, h.pair.snapshot(symbol))
    order = rebuilt.order(cl)
    assert order is not None and order.cancel_sent


def test_a_new_position_does_not_see_ticks_received_before_its_entry_was_sent() -> None:
    """Ticks the feed received before the entry order went out printed before the fill: they
    move the pair's last price but not the new position (no excursion, no target). The first
    tick received after the send, and everything after it, counts. Without receive times (a
    replay) every tick counts, as before."""
    from actors.recorder.config import Sizing, TakeProfit, TakeProfitTarget

    cfg = RecorderSettings(
        sizing=Sizing(allow_add=False),
        take_profit=TakeProfit(targets=[TakeProfitTarget(value=4, trim=100)]),
    )
    symbol = "MNQZ5"
    sent = 100.0
    results = {}
    for recv_given in (True, False):
        h = Harness(LivePair(trader(), cfg, spec_for))
        money = h.pair.book(symbol).money
        h.tick(symbol, 1.0, float(money.price(5000)))
        h.hold = lambda d: True  # the broker's answers wait: the desk stamps the send first
        h.signal(symbol, 2.0, "buy", 1)
        b = h.pair.book(symbol)
        (entry,) = b.orders.values()
        entry.sent_ts = sent
        h.hold = None
        h.release(2.0)
        assert b.pos is not None and b.pos.qty == 1
        placed = len(h.placed)
        # printed before the send: 5010 would take the 4-tick target and be the best price
        first = ([5.0, 5.1], [5010, 5008], [sent - 0.003, sent - 0.001])
        second = ([5.2, 5.3, 5.4], [5009, 5001, 5002], [sent - 0.0005, sent + 0.001, sent + 0.002])
        for tss, ticks, recv in (first, second):
            outs = h.pair.on_batch(
                b, tss, ticks, min(ticks), max(ticks), recv if recv_given else None
            )
            for out in outs:
                h.run(out, tss[-1])
        results[recv_given] = (len(h.placed) - placed, b.last_tick, b.pos)
    exits, last, pos = results[True]
    assert exits == 0 and last == 5002
    assert pos is not None and pos.qty == 1
    assert (pos.best_price, pos.best_move, pos.worst_move) == (5002, 2, 0)  # 5001, 5002 only
    exits, _, pos = results[False]
    assert exits == 1  # every tick counted: the target fired at 5010
