"""Live pair fault handling, one case each, against the paper matching engine (pure)."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from actors.instruments import spec_for
from actors.recorder.config import RecorderSettings, StopLoss, TakeProfit, TakeProfitTarget
from actors.recorder.live import EXIT_WORKING, IDLE, LivePair, Trader
from tests.live_harness import Harness

SYM = "MNQZ5"
CFG = RecorderSettings(
    take_profit=TakeProfit(targets=[TakeProfitTarget(value=8, trim=100)]),
    stop_loss=StopLoss(value=10),
)


def harness(mult: int = 1, **kw: object) -> Harness:
    pair = LivePair(Trader("r1:t1", "jt1t1", "acct", Fraction(mult), **kw), CFG, spec_for)  # type: ignore[arg-type]
    h = Harness(pair)
    h.tick(SYM, 1.0, 20000.0)
    return h


def test_rejected_entry_leaves_no_position_and_is_reported_once() -> None:
    h = harness()
    h.matcher.reject_next("Insufficient margin")
    out = h.signal(SYM, 2.0, "buy", 1)
    rejections = [r for o in h.outcomes for r in o.rejections]
    assert rejections == [("jt1t1-s1-0", "Insufficient margin")]
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0
    assert out.place[0].side == "buy"
    h.timer(100.0)
    assert [o.cl_ord_id for o in h.placed] == ["jt1t1-s1-0"]  # a refused entry is not retried


def test_short_exits_are_buys_and_the_stop_is_cancelled_first() -> None:
    h = harness(mult=2)
    h.signal(SYM, 2.0, "sell", 1)
    assert h.pair_net(SYM) == h.broker_net(SYM) == -2
    stop = h.placed[-1]
    assert (stop.order_type, stop.side, stop.qty, stop.stop_price) == ("stop", "buy", 2, 20002.5)
    h.signal(SYM, 3.0, "close", 2)
    exit_order = h.placed[-1]
    assert (exit_order.side, exit_order.qty, exit_order.order_type) == ("buy", 2, "market")
    assert h.cancels == [stop.cl_ord_id]  # cancelled before the exit went out
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0


def test_close_while_an_exit_is_working_sends_nothing() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    h.hold = lambda d: d["type"] in ("fill", "order") and d["cl_ord_id"].startswith("jt1t1-s2")
    h.signal(SYM, 3.0, "close", 2)
    assert h.pair.books[SYM].phase == EXIT_WORKING
    sent = len(h.placed)
    h.signal(SYM, 3.5, "close", 3)
    h.signal(SYM, 3.6, "sell", 4)  # from a closing long, a sell opens a short once flat
    assert len(h.placed) == sent
    h.hold = None
    h.release(4.0)
    assert h.pair_net(SYM) == h.broker_net(SYM) == -1


def test_filled_status_before_its_fill_does_not_release_a_second_close() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    h.hold = lambda d: d["type"] == "fill" and d["cl_ord_id"] == "jt1t1-s2-0"
    h.signal(SYM, 3.0, "close", 2)  # its 'filled' state arrives, the fill does not (yet)
    h.signal(SYM, 3.5, "close", 3)
    h.tick(SYM, 4.0, 19990.0)  # through the stop level: nothing left to close
    h.hold = None
    h.release(5.0)
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0
    assert sum(1 for o in h.placed if o.order_type == "market" and o.side == "sell") == 1


def test_exit_refused_is_retried_after_a_backoff_with_a_new_id() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    h.matcher.reject_next("Market closed")
    h.signal(SYM, 3.0, "close", 2)
    assert h.pair_net(SYM) == 1
    h.timer(3.5)  # inside the 1 s back-off
    assert h.placed[-1].cl_ord_id == "jt1t1-s2-0"
    h.timer(4.1)
    assert h.placed[-1].cl_ord_id == "jt1t1-s2-0.1"
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0


def test_exit_without_fill_is_cancelled_then_resent() -> None:
    h = harness(exit_timeout_s=5.0)
    h.signal(SYM, 2.0, "buy", 1)
    h.resting.add("jt1t1-s2-0")  # the broker accepts the exit and never fills it
    h.signal(SYM, 3.0, "close", 2)
    assert h.pair.books[SYM].phase == EXIT_WORKING
    h.timer(7.0)
    assert h.cancels[-1] != "jt1t1-s2-0"  # not yet
    h.timer(8.0)
    assert h.cancels[-1] == "jt1t1-s2-0"  # timed out: cancelled, confirmed, sent again
    assert h.placed[-1].cl_ord_id == "jt1t1-s2-0.1"
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0
    assert h.pair.books[SYM].phase == IDLE


def test_duplicate_fill_after_reconnect_is_booked_once() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    fill = next(f for f in h.matcher.fills() if f.cl_ord_id == "jt1t1-s1-0")
    from actors.broker.base import event_to_dict

    out = h.pair.on_event(event_to_dict(fill), 3.0)
    assert out.status == "duplicate"
    assert h.pair_net(SYM) == 1


def test_stop_crossed_waits_for_the_broker_then_exits_itself() -> None:
    h = harness(stop_grace_s=2.0)
    h.signal(SYM, 2.0, "buy", 1)
    stop_cl = h.placed[-1].cl_ord_id
    # the broker does not see this price (its feed lags): only the pair does
    h.run(h.pair.on_tick(SYM, 3.0, 19997.0), 3.0)
    assert h.pair_net(SYM) == 1 and h.cancels == []  # waiting for the broker's stop
    h.run(h.pair.on_tick(SYM, 5.5, 19997.0), 5.5)
    assert h.cancels == [stop_cl]
    assert h.placed[-1].order_type == "market" and h.placed[-1].side == "sell"
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0


def test_kill_switch_flatten_is_booked_from_its_fill() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    out = h.pair.on_fill(None, "sell", 1, 20001.0, 3.0, "K1", "kill_switch", SYM)
    assert [t.reason for t in out.trades] == ["kill_switch"]
    assert h.pair_net(SYM) == 0


def test_close_only_trader_never_opens_and_multiplier_scales() -> None:
    h = harness(close_only=True)
    assert h.signal(SYM, 2.0, "buy", 1).status == "blocked"
    h2 = harness(mult=3, max_contracts=4)
    h2.signal(SYM, 2.0, "buy", 1)
    h2.signal(SYM, 3.0, "buy", 2)  # add 3 capped to 1
    assert h2.pair_net(SYM) == h2.broker_net(SYM) == 4


def test_snapshot_restore_mid_exit_continues_without_resending() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    h.hold = lambda d: d.get("cl_ord_id") == "jt1t1-s2-0"
    h.signal(SYM, 3.0, "close", 2)
    snap = h.pair.snapshot(SYM)
    restored = LivePair(h.pair.t, CFG, spec_for)
    restored.restore(SYM, snap)
    h.pair = restored
    assert restored.on_signal(SYM, 3.5, "close", 3).place == []
    h.hold = None
    h.release(4.0)
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0
    assert restored.books[SYM].phase in (IDLE, "CONFIRM_FLAT")


def test_stop_cancelled_by_someone_else_is_not_replaced_until_the_broker_confirms() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    stop = h.placed[-1]
    assert stop.order_type == "stop"
    # a kill switch at the broker: the stop is cancelled, then the position is liquidated
    h.run(
        h.pair.on_event({"type": "order", "cl_ord_id": stop.cl_ord_id, "status": "cancelled"}, 3.0),
        3.0,
    )
    assert h.placed[-1] is stop  # no new stop on a guess
    h.matcher.cancel(stop.cl_ord_id, 3.0)
    h.run(h.pair.on_fill(None, "sell", 1, 20000.0, 3.1, "K1", "kill_switch", SYM), 3.1)
    h.run(h.pair.on_position(SYM, 0, 3.2), 3.2)
    h.timer(30.0)
    assert h.placed[-1] is stop and h.pair_net(SYM) == 0


def test_stop_cancelled_by_hand_comes_back_once_the_position_is_confirmed() -> None:
    h = harness()
    h.signal(SYM, 2.0, "buy", 1)
    stop = h.placed[-1]
    h.matcher.cancel(stop.cl_ord_id, 3.0)
    h.run(
        h.pair.on_event({"type": "order", "cl_ord_id": stop.cl_ord_id, "status": "cancelled"}, 3.0),
        3.0,
    )
    h.timer(4.0)
    assert h.placed[-1] is stop
    h.run(h.pair.on_position(SYM, 1, 4.5), 4.5)  # the broker still holds the long
    assert h.placed[-1].order_type == "stop" and h.placed[-1].cl_ord_id != stop.cl_ord_id


def test_a_cancel_lost_on_the_way_is_sent_again() -> None:
    """The stop's cancel went to a broker actor that was restarting (no answer, no effect):
    after ``cancel_retry_s`` the pair asks again instead of waiting for ever, then exits."""
    h = harness(cancel_retry_s=3.0)
    h.signal(SYM, 2.0, "buy", 1)
    stop = h.placed[-1].cl_ord_id
    lost: list[str] = []
    real_cancel = h.matcher.cancel

    def drop_first(cl: str, ts: float) -> Any:
        if not lost:  # the first cancel never reaches the broker
            lost.append(cl)
            return h.matcher.state(cl), []
        return real_cancel(cl, ts)

    h.matcher.cancel = drop_first  # type: ignore[method-assign]
    h.signal(SYM, 3.0, "close", 2)
    assert lost == [stop] and h.broker_net(SYM) == 1  # still long: the stop still rests
    h.timer(5.0)
    assert h.cancels.count(stop) == 1  # not yet
    h.timer(6.5)
    assert h.cancels.count(stop) == 2  # asked again; confirmed; the exit went out
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0
    assert h.pair.books[SYM].phase == IDLE
