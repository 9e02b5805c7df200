"""The reconciler's verdicts and decisions, and the live pair's risk states (pure)."""

from __future__ import annotations

from fractions import Fraction

import pytest

from actors.broker.base import OrderRequest
from actors.instruments import spec_for
from actors.reconciler.policy import Group, assess, decide
from actors.recorder.config import Filters, RecorderSettings, StopLoss
from actors.recorder.live import LivePair, Trader
from tests.live_harness import Harness

SYM = "MNQZ5"


@pytest.mark.parametrize(
    ("group", "kind", "difference"),
    [
        (Group(None, (2,)), "unknown", 0),
        (Group(2, (2,), settled=False), "unsettled", 0),
        (Group(2, (2,)), "in_sync", 0),
        (Group(3, (1, 2)), "in_sync", 0),  # two pairs on one account and contract
        (Group(1, (0,)), "unexplained", 1),
        (Group(1, (0,), external=1), "in_sync", 0),  # declared external by a user
        (Group(3, (2,)), "drift", 1),
        (Group(0, (-2,)), "drift", 2),
    ],
)
def test_verdicts(group: Group, kind: str, difference: int) -> None:
    v = assess(group)
    assert (v.kind, v.difference) == (kind, difference)


def test_decisions_wait_then_follow_the_policy() -> None:
    drift, unexplained = assess(Group(3, (2,))), assess(Group(1, (0,)))
    assert decide(drift, 1, "adopt", persisted_s=0.5, confirm_s=2.0) == "none"
    assert decide(drift, 1, "adopt", 2.0, 2.0) == "adopt"
    assert decide(drift, 1, "correct", 2.0, 2.0) == "correct"
    assert decide(drift, 1, "alert", 2.0, 2.0) == "alert"
    assert decide(drift, 2, "correct", 2.0, 2.0) == "alert"  # whose contracts? nobody can tell
    assert decide(unexplained, 1, "adopt", 2.0, 2.0) == "halt"  # fails closed whatever the policy
    assert decide(assess(Group(2, (2,))), 1, "correct", 9.0, 2.0) == "none"


def harness(cfg: RecorderSettings, policy: str = "alert") -> Harness:
    t = Trader("r1:t1", "jt1t1", "acct", Fraction(1), reconcile=policy)
    h = Harness(LivePair(t, cfg, spec_for))
    h.tick(SYM, 1.0, 20000.0)
    return h


def test_halted_pair_sends_nothing_until_resolved() -> None:
    h = harness(RecorderSettings())
    h.signal(SYM, 2.0, "buy", 1)
    assert h.pair.halt("unexplained broker position", 3.0)
    sent = len(h.placed)
    assert h.signal(SYM, 4.0, "close", 2).status == "halted"
    h.tick(SYM, 5.0, 19000.0)
    assert len(h.placed) == sent and h.pair_net(SYM) == 1
    h.run(h.pair.resolve(SYM, "resume", 6.0), 6.0)
    assert h.pair.risk == "ACTIVE"
    assert h.pair.risk_events[-1]["reason"] == "resolved by user: resume"
    h.signal(SYM, 7.0, "close", 3)
    assert h.pair_net(SYM) == h.broker_net(SYM) == 0


def test_daily_loss_limit_puts_the_pair_in_reducing_until_the_next_trading_day() -> None:
    cfg = RecorderSettings(stop_loss=StopLoss(value=40), filters=Filters(max_daily_loss=5.0))
    h = harness(cfg)
    day1 = 1_795_000_000.0  # a Tuesday afternoon in Chicago
    h.tick(SYM, day1, 20000.0)
    h.signal(SYM, day1 + 1, "buy", 1)
    h.tick(SYM, day1 + 2, 19995.0)  # MNQ: 20 ticks x $0.50 = $10 loss on the close
    h.signal(SYM, day1 + 3, "close", 2)
    assert h.pair.risk == "REDUCING" and "max_daily_loss" in h.pair.risk_events[-1]["reason"]
    assert h.signal(SYM, day1 + 4, "buy", 3).status == "blocked"  # entries refused
    assert h.pair_net(SYM) == 0
    h.signal(SYM, day1 + 86_400, "buy", 4)  # the next trading day
    assert h.pair.risk == "ACTIVE" and h.pair_net(SYM) == 1


def test_adopt_takes_the_broker_position_without_a_trade() -> None:
    h = harness(RecorderSettings(), policy="adopt")
    h.signal(SYM, 2.0, "buy", 1)
    b = h.pair.book(SYM)
    b.broker_net, b.broker_price = 3, 20001.0
    out = h.pair.reconcile(b, "adopt", 3.0)
    assert out.trades == [] and h.pair_net(SYM) == 3
    assert float(b.pos.avg * b.money.tick_size) == 20001.0  # type: ignore[union-attr]


def test_correct_orders_move_the_broker_not_the_book() -> None:
    h = harness(RecorderSettings(), policy="correct")
    h.signal(SYM, 2.0, "buy", 1)
    h.matcher.submit(OrderRequest("hand-1", "acct", SYM, "sell", 1), 2.5)  # by hand
    h.matcher.activate("hand-1", 2.5)
    b = h.pair.book(SYM)
    b.broker_net = h.broker_net(SYM)
    assert (h.pair_net(SYM), b.broker_net) == (1, 0)
    h.run(h.pair.reconcile(b, "correct", 3.0), 3.0)
    correction = h.placed[-1]
    assert (correction.side, correction.qty) == ("buy", 1)
    assert h.pair_net(SYM) == 1 and h.broker_net(SYM) == 1  # book unchanged, broker corrected
