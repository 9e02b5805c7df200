"""Supervision on real Ray: pings in their own concurrency group, admission with back-off and a
restart budget that ends a crash loop, a FAILED broker halting its live pairs, and a FAILED
host restarted by hand through the API (its pairs come back HALTED; webhooks reach it again).

Helper actors live here (never debug methods on production actors). One Ray per session
(``tests.system.ensure_ray``); each test uses a namespace of its own.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray
from ray.exceptions import ActorDiedError, GetTimeoutError, RayActorError
from sqlmodel import select

from actors import runtime
from actors.runtime import BROKER, HEALTH, SUPERVISOR, Beat, actor_options, host_name, tree_class
from actors.store import Store
from actors.store.models import Position
from actors.supervisor import Supervisor
from tests.system import System, ensure_ray, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def until(check: Callable[[], Any], what: str, timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


def namespace() -> str:
    return f"jt-sup-{uuid.uuid4().hex[:10]}"


def lone_supervisor(ns: str, **cfg: Any) -> Any:
    """A supervisor with no tree (``start`` is never called): it only answers admissions."""
    config = {"namespace": ns, "recorder_hosts": 0, **cfg}
    sup = tree_class(Supervisor).options(**actor_options(SUPERVISOR, ns)).remote(config)
    ray.get(sup.ping.remote())
    return sup


# -- helper actors --------------------------------------------------------------------------------


class Busy:
    """Blocks its default loop on request; pings like a tree actor."""

    def __init__(self) -> None:
        self._beat = Beat().start()

    async def block(self, seconds: float) -> float:
        time.sleep(seconds)  # a call that hogs the default event loop
        return seconds

    @ray.method(concurrency_group=HEALTH)
    async def ping(self) -> dict[str, Any]:
        return {"ok": True, "loop_lag_s": self._beat.lag()}


class Asker:
    """Asks for admission from an async actor's constructor (a blocking ``ray.get`` there)."""

    def __init__(self, namespace: str) -> None:
        self.decision = runtime.admit(namespace=namespace)

    async def answer(self) -> dict[str, Any] | None:
        return self.decision


class CrashLoop:
    """Asks for admission, notes how long it was held back, and kills its own process: Ray
    restarts it (``max_restarts=-1``) until the supervisor refuses."""

    def __init__(self, path: str, namespace: str) -> None:
        asked = time.monotonic()
        runtime.admit(namespace=namespace)
        with open(path, "a") as f:
            f.write(f"{time.monotonic() - asked}\n")
        os._exit(1)

    async def ping(self) -> bool:
        return True


# -- health group ---------------------------------------------------------------------------------


def test_ping_answers_while_the_default_loop_is_blocked_and_reports_its_lag() -> None:
    ensure_ray()
    ns = namespace()
    busy = tree_class(Busy).options(name="busy", namespace=ns, num_cpus=0).remote()
    try:
        assert ray.get(busy.ping.remote())["loop_lag_s"] < 1.0
        blocked = busy.block.remote(4.0)
        time.sleep(0.5)
        lags = []
        for _ in range(3):
            t0 = time.monotonic()
            lags.append(ray.get(busy.ping.remote(), timeout=2)["loop_lag_s"])
            assert time.monotonic() - t0 < 0.5, "the ping waited for the blocked loop"
            time.sleep(0.8)
        assert lags[0] < lags[1] < lags[2] and lags[2] > 2.0
        assert ray.get(blocked) == 4.0
        until(lambda: ray.get(busy.ping.remote())["loop_lag_s"] < 1.0, "the beat running again")
    finally:
        ray.kill(busy)


# -- admission ------------------------------------------------------------------------------------


def test_admission_is_asked_from_an_async_constructor() -> None:
    ensure_ray()
    ns = namespace()
    sup = lone_supervisor(ns)
    asker = tree_class(Asker).options(**actor_options("asker", ns)).remote(ns)
    try:
        decision = ray.get(asker.answer.remote(), timeout=30)
        assert decision == {"admitted": True, "delay_s": 0.0, "restart": False, "reason": None}
        assert ray.get(sup.ledger.remote())["asker"]["restarts"] == 0
    finally:
        ray.kill(asker)
        ray.kill(sup)


def test_a_crash_loop_is_slowed_by_the_back_off_and_dead_after_the_budget(tmp_path: Path) -> None:
    ensure_ray()
    ns = namespace()
    sup = lone_supervisor(
        ns,
        restart_budget=3,
        backoff_start_s=1.0,
        backoff_max_s=1.5,
        restart_window_s=120,
        backoff_quiet_s=60,
    )
    starts = tmp_path / "starts"
    crash = tree_class(CrashLoop).options(**actor_options("crash", ns)).remote(str(starts), ns)
    try:

        def dead() -> RayActorError | None:
            try:
                ray.get(crash.ping.remote(), timeout=5)
            except ActorDiedError as exc:
                return exc
            except (RayActorError, GetTimeoutError):
                return None
            raise AssertionError("a crash-looping actor answered")

        exc = until(dead, "the crash loop to end DEAD", timeout=60, every=0.2)
        assert exc.actor_init_failed  # the refused constructor raised: Ray restarts no more
        held = [float(x) for x in starts.read_text().split()]
        # the first start and 3 restarts (the 4th was refused), held back 0, 0, 1 and 1.5 s
        assert len(held) == 4, held
        assert held[0] < 0.5 and held[1] < 0.5, held
        assert 1.0 <= held[2] < 1.5 and 1.5 <= held[3] < 2.0, held
        time.sleep(1.0)
        assert len(starts.read_text().split()) == 4  # stays down
        ledger = ray.get(sup.ledger.remote())["crash"]
        assert (ledger["restarts"], ledger["failed"]) == (3, True)
        assert ledger["reason"] == "more than 3 restarts in 120s"
    finally:
        ray.kill(crash)
        ray.kill(sup)


# -- the tree: FAILED children, restart by hand ---------------------------------------------------


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    db = tmp_path_factory.mktemp("supervision") / "jt.db"
    with running_system(f"sqlite:///{db}") as sut:
        yield sut


@pytest.fixture(scope="module")
def store(system: System) -> Iterator[Store]:
    st = Store(system.settings.resolved_database_url())
    yield st
    st.engine.dispose()


@pytest.fixture(scope="module")
def trader(system: System) -> dict[str, Any]:
    """A paper trader on a recorder, long 1 at the paper broker."""
    c = system.client
    r = c.post("/api/accounts", json={"broker": "paper", "name": "P", "environment": "paper"})
    assert r.status_code == 201, r.text
    rec = system.create_recorder("supervised", {})
    r = c.post("/api/traders", json={"recorder_id": rec["id"], "account_id": r.json()["id"]})
    assert r.status_code == 201, r.text
    tid = r.json()["id"]
    system.push_ticks([{"symbol": "MNQ1!", "price": 20000.0}])
    token = rec["webhook_url"].rsplit("/", 1)[1]
    r = system.post_alert(token, '{"action": "buy", "ticker": "MNQ1!"}')
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    [row] = until(
        lambda: [p for p in c.get(f"/api/traders/{tid}/positions").json() if p["quantity"] == 1],
        "the live pair long 1 at the paper broker",
    )
    return {"id": tid, "recorder": rec, "token": token, "symbol": row["symbol"]}


def risk(store: Store, trader_id: int) -> tuple[str, str | None]:
    """The live pair's stored risk state and the reason of its last change."""
    with store.read() as s:
        [pos] = s.exec(select(Position).where(Position.trader_id == trader_id)).all()
    events = pos.state.get("risk_events") or [{"reason": None}]
    return pos.state["risk"], events[-1]["reason"]


def child(system: System, name: str) -> dict[str, Any]:
    """The child as the supervisor sees it now (``/status`` is cached for 0.3 s)."""
    children = system.client.get("/api/supervisor/children").json()
    return next(c for c in children if c["name"] == name)


def metric(system: System, line: str) -> bool:
    return until(lambda: line in system.client.get("/metrics").text, line, timeout=5)


def supervisor_of(system: System) -> Any:
    return runtime.get(SUPERVISOR, system.settings.namespace)


def test_every_child_was_admitted_while_the_supervisor_built_the_tree(system: System) -> None:
    children = system.client.get("/api/supervisor/children").json()
    assert {c["name"] for c in children} >= {host_name(0), host_name(1), BROKER, "feed"}
    # answered within the admission timeout while start() awaited the children's pings
    assert all(c["admitted"] is True for c in children), children
    assert all(c["state"] == "running" and c["loop_lag_s"] < 5 for c in children), children


def test_a_failed_host_is_restarted_by_hand_with_its_live_pairs_halted(
    system: System, store: Store, trader: dict[str, Any]
) -> None:
    c = system.client
    name = host_name(trader["recorder"]["id"] % system.settings.recorder_hosts)
    out = ray.get(supervisor_of(system).fail_child.remote(name, "test: gave up"))
    assert out["child"]["state"] == "failed"
    assert child(system, name)["state"] == "failed"
    assert metric(system, f'jt_actor_failed{{actor="{name}"}} 1.0')
    with pytest.raises((ActorDiedError, ValueError)):  # stays down
        ray.get(runtime.get(name, system.settings.namespace).ping.remote(), timeout=10)
    r = system.post_alert(trader["token"], '{"action": "buy", "ticker": "MNQ1!", "quantity": 2}')
    assert r.status_code == 202 and r.json()["reason"] == "host_unavailable", r.text

    assert c.post("/api/supervisor/children/nope/restart").status_code == 404
    r = c.post(f"/api/supervisor/children/{BROKER}/restart")
    assert r.status_code == 409 and r.json()["detail"]["reason"] == "not_failed", r.text

    r = c.post(f"/api/supervisor/children/{name}/restart")
    assert r.status_code == 200, r.text
    assert (r.json()["state"], r.json()["failed"]) == ("running", False)
    assert metric(system, f'jt_actor_failed{{actor="{name}"}} 0.0')
    state, reason = risk(store, trader["id"])
    assert state == "HALTED" and reason == "restarted by hand after FAILED: test: gave up"

    # this process's handles were refreshed: a webhook reaches the new host at once
    r = system.post_alert(trader["token"], '{"action": "sell", "ticker": "MNQ1!", "quantity": 1}')
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    r = c.post(
        f"/api/traders/{trader['id']}/resolve",
        json={"symbol": trader["symbol"], "action": "resume"},
    )
    assert r.status_code == 200, r.text
    assert risk(store, trader["id"])[0] == "ACTIVE"


def test_a_failed_broker_halts_the_live_pairs_trading_through_it(
    system: System, store: Store, trader: dict[str, Any]
) -> None:
    assert risk(store, trader["id"])[0] == "ACTIVE"
    sup = supervisor_of(system)
    out = ray.get(sup.fail_child.remote(BROKER, "test: broker gave up"))
    assert out["child"]["state"] == "failed"
    _, reason = until(
        lambda: (r := risk(store, trader["id"]))[0] == "HALTED" and r, "the live pair HALTED"
    )
    assert reason == f"broker actor {BROKER} FAILED: test: broker gave up"
    assert child(system, BROKER)["state"] == "failed"
    assert metric(system, f'jt_actor_failed{{actor="{BROKER}"}} 1.0')
    status = system.client.get("/status").json()
    assert any(h.get("live", {}).get("risk") == {"HALTED": 1} for h in status["hosts"])
    with pytest.raises((ActorDiedError, ValueError)):  # stays down
        ray.get(runtime.get(BROKER, system.settings.namespace).ping.remote(), timeout=10)
