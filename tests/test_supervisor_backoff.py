"""Restart admission without Ray: the back-off schedule and the budget (actors.restarts), and the
supervisor's decisions on fake handles (stalled, FAILED, a FAILED broker halting its pairs)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.broker.actor import BrokerActor
from actors.feed.actor import FeedActor
from actors.recorder.actor import RecorderActor
from actors.restarts import Ledger, Policy
from actors.runtime import HEALTH, Beat, admit
from actors.supervisor import Child, Supervisor

POLICY = Policy(backoff_start_s=0.5, backoff_max_s=30.0, budget=10, window_s=300.0, quiet_s=60.0)


def restarts(ledger: Ledger, times: list[float], policy: Policy = POLICY) -> list[Any]:
    return [ledger.admit(t, policy) for t in times]


# -- the schedule ---------------------------------------------------------------------------------


def test_first_start_and_first_restart_go_at_once_then_doubling_to_the_cap() -> None:
    ledger = Ledger()
    first = ledger.admit(0.0, POLICY)
    assert (first.admitted, first.delay_s, first.restart) == (True, 0.0, False)
    t, delays = 0.0, []
    for _ in range(9):  # crash ~0.4 s after each start went ahead
        t = (ledger.go_at or 0.0) + 0.4
        d = ledger.admit(t, POLICY)
        assert d.admitted and d.restart
        delays.append(d.delay_s)
    assert delays == [0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    assert ledger.restarts == 9


def test_budget_spent_refuses_and_stays_refused_until_cleared() -> None:
    policy = Policy(backoff_start_s=0.0, budget=3, window_s=100.0, quiet_s=50.0)
    ledger = Ledger()
    out = restarts(ledger, [0.0, 1.0, 2.0, 3.0, 4.0, 500.0], policy)
    assert [d.admitted for d in out] == [True, True, True, True, False, False]
    assert out[4].reason == "more than 3 restarts in 100s" and ledger.failed
    assert out[5].reason == out[4].reason  # even much later: a person must restart it
    ledger.clear()
    again = ledger.admit(501.0, policy)
    assert (again.admitted, again.restart, again.delay_s) == (True, False, 0.0)
    assert ledger.restarts == 3  # the lifetime count survives a clear (a metric)


def test_restarts_leave_the_window_and_a_quiet_period_resets_the_back_off() -> None:
    policy = Policy(backoff_start_s=1.0, backoff_max_s=8.0, budget=2, window_s=10.0, quiet_s=5.0)
    ledger = Ledger()
    out = restarts(ledger, [0.0, 1.0, 2.5], policy)  # second restart waits 1 s (goes at 3.5)
    assert [d.delay_s for d in out] == [0.0, 0.0, 1.0]
    calm = ledger.admit(20.0, policy)  # both restarts left the window; 16.5 s quiet
    assert (calm.admitted, calm.delay_s) == (True, 0.0)


def test_policy_reads_the_supervisor_config_keys() -> None:
    cfg = {
        "restart_budget": 3,
        "restart_window_s": 9,
        "backoff_start_s": 0.1,
        "backoff_max_s": 0.4,
        "backoff_quiet_s": 2,
    }
    assert Policy.from_config(cfg) == Policy(0.1, 0.4, 3, 9.0, 2.0)
    assert Policy.from_config({}) == Policy()


# -- properties -------------------------------------------------------------------------------------

gaps = st.lists(st.floats(min_value=0.0, max_value=200.0, allow_nan=False), max_size=60)
policies = st.builds(
    Policy,
    backoff_start_s=st.floats(min_value=0.01, max_value=5.0),
    backoff_max_s=st.floats(min_value=0.01, max_value=60.0),
    budget=st.integers(min_value=0, max_value=15),
    window_s=st.floats(min_value=1.0, max_value=600.0),
    quiet_s=st.floats(min_value=0.5, max_value=120.0),
)


def run(policy: Policy, gaps_after_go: list[float]) -> list[tuple[float, Any, float | None]]:
    """Each restart comes ``gap`` after the previous start went ahead (after its delay)."""
    ledger, t = Ledger(), 0.0
    out = [(t, ledger.admit(t, policy), None)]
    for gap in gaps_after_go:
        prev_go = ledger.go_at if ledger.go_at is not None else t
        t = max(t, prev_go) + gap
        out.append((t, ledger.admit(t, policy), prev_go))
    return out


@settings(max_examples=300, deadline=None)
@given(policies, gaps)
def test_delays_are_capped_and_never_decrease_inside_a_burst(
    policy: Policy, g: list[float]
) -> None:
    prev: float | None = None
    for t, d, prev_go in run(policy, g):
        if not d.admitted:
            break
        assert 0.0 <= d.delay_s <= max(policy.backoff_max_s, 0.0)
        if prev_go is not None and t - prev_go >= policy.quiet_s:
            assert d.delay_s == 0.0  # quiet long enough: a new burst, no wait
        elif prev is not None:
            assert d.delay_s >= prev
        prev = d.delay_s


@settings(max_examples=300, deadline=None)
@given(policies, gaps)
def test_never_more_than_the_budget_in_a_window_and_refusal_is_final(
    policy: Policy, g: list[float]
) -> None:
    admitted: list[float] = []
    refused = False
    for t, d, _ in run(policy, g)[1:]:
        if refused:
            assert not d.admitted
            continue
        in_window = [a for a in admitted if t - a < policy.window_s]
        if len(in_window) >= policy.budget:
            assert not d.admitted and d.reason
            refused = True
        else:
            assert d.admitted
            admitted.append(t)


# -- the actors' side -----------------------------------------------------------------------------


def test_every_tree_actor_pings_in_the_health_group() -> None:
    for cls in (RecorderActor, BrokerActor, FeedActor, Supervisor):
        assert cls.ping.__ray_concurrency_group__ == HEALTH, cls  # type: ignore[attr-defined]
    assert asyncio.iscoroutinefunction(RecorderActor.ping)


def test_outside_a_ray_actor_admission_asks_nobody_and_there_is_no_beat() -> None:
    assert admit("recorder-host-0", "nowhere") is None
    assert Beat().start().lag() is None


# -- the supervisor's decisions, on fake handles ------------------------------------------------


class Remote:
    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return self.fn(*args, **kwargs)

        return call()


class FakeActor:
    def __init__(self, pong: dict[str, Any] | None = None) -> None:
        self.pong = pong or {"ok": True, "started": 1.0, "loop_lag_s": 0.1}
        self.halts: list[tuple[str, str | None]] = []
        self.ping = Remote(lambda: self.pong)
        self.halt = Remote(lambda reason, broker=None: self.halts.append((reason, broker)) or 1)


def supervisor(**cfg: Any) -> Supervisor:
    sup = Supervisor({"namespace": "unit", "recorder_hosts": 2, **cfg})
    for name, kind in [("recorder-host-0", "recorder"), ("recorder-host-1", "recorder")]:
        sup.handles[name] = FakeActor()
        sup.children[name] = Child(name, kind)
    sup.handles["broker-paper"] = FakeActor()
    sup.children["broker-paper"] = Child("broker-paper", "broker")
    return sup


async def test_a_child_whose_main_loop_does_not_run_is_stalled() -> None:
    sup = supervisor(stall_after_s=10)
    child = sup.children["recorder-host-0"]
    await sup._check(child)
    assert (child.state, child.loop_lag_s) == ("running", 0.1)
    sup.handles[child.name].pong = {"ok": True, "started": 1.0, "loop_lag_s": 12.5}
    await sup._check(child)
    assert (child.state, child.loop_lag_s) == ("stalled", 12.5)
    assert (await sup.tree())["children"][0]["state"] == "stalled"


async def test_a_spent_budget_fails_a_broker_and_halts_its_pairs_on_every_host() -> None:
    sup = supervisor(restart_budget=1, backoff_start_s=0.0)
    assert (await sup.admit("broker-paper"))["admitted"]  # first start
    assert (await sup.admit("broker-paper"))["admitted"]  # restart 1 of 1
    refused = await sup.admit("broker-paper")
    assert not refused["admitted"] and "more than 1 restarts" in refused["reason"]
    await asyncio.gather(*sup.tasks)
    child = sup.children["broker-paper"]
    assert child.state == "failed"
    for host in ("recorder-host-0", "recorder-host-1"):
        [(reason, broker)] = sup.handles[host].halts
        assert broker == "broker-paper"
        assert reason.startswith("broker actor broker-paper FAILED: more than 1 restarts")
    await sup._check(child)  # a FAILED child is left alone
    assert child.state == "failed"
    view = next(c for c in (await sup.tree())["children"] if c["name"] == "broker-paper")
    assert (view["state"], view["restarts"], view["failed"]) == ("failed", 1, True)


async def test_restart_by_hand_answers_unknown_and_not_failed() -> None:
    sup = supervisor()
    assert await sup.restart_child("nope") == {"ok": False, "reason": "unknown_child"}
    out = await sup.restart_child("recorder-host-0")
    assert (out["ok"], out["reason"], out["child"]["state"]) == (False, "not_failed", "starting")
    assert (await sup.fail_child("nope", "x"))["reason"] == "unknown_child"


@pytest.mark.parametrize("kind", ["recorder", "feed"])
async def test_only_a_broker_failure_halts_pairs(kind: str) -> None:
    sup = supervisor()
    name = "recorder-host-1" if kind == "recorder" else "feed"
    if kind == "feed":
        sup.handles["feed"] = FakeActor()
        sup.children["feed"] = Child("feed", "feed")
    await sup.fail_child(name, "by hand")
    assert sup.children[name].state == "failed"
    assert not (await sup.admit(name))["admitted"]  # a late start of it is refused
    assert all(not sup.handles[h].halts for h in ("recorder-host-0", "recorder-host-1"))
