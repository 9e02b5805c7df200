"""Chaos: a seeded run of signals and ticks across several recorders and three simulated
Tradovate accounts while a killer SIGKILLs recorder-host, feed and broker processes (issue #6).

The whole system runs (supervisor, two recorder hosts, the feed, the Tradovate login's broker
actor, the API on loopback) against the Tradovate simulator. Every ``KILL_EVERY`` steps one of
the hosts, the feed or the broker actor is killed with SIGKILL; Ray restarts it and the
supervisor sees it. Ticks go through the feed (``POST /api/feed/ticks``; a tick refused while
the feed is down is sent again, as a price source would). At the end, once the system settled:

* every stored signal was applied exactly once (none left ``received``; no virtual fill of a
  signal recorded twice);
* no client order id reached the broker twice (the simulator's request log);
* every live pair equals its account's position at the broker;
* the recorded trades (every recorder's, with prices, P&L, reasons and MFE/MAE) equal those of
  the same seeded run without kills.

``JT_CHAOS_SEED`` picks the seed (default 7); run it 5 times with different seeds before
resolving the issue. ``JT_CHAOS_DUMP=<path>`` writes each run's signals and its tick/kill log
(``<path>-calm``, ``<path>-wild``) to compare a failing pair of runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray
from sqlmodel import select

from actors.broker.base import TERMINAL_STATUSES
from actors.broker.tradovate.sim import SimConfig, SimServer, SimUser
from actors.instruments import normalize
from actors.runtime import BROKER, FEED, broker_name, get, host_name
from actors.store import Store, models
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ACCOUNTS = ["DEMO0001", "DEMO0002", "DEMO0003"]
ROOTS = {"MNQ1!": 20000.0, "MES1!": 6000.0, "M2K1!": 2300.0}
STEPS = int(os.environ.get("JT_CHAOS_STEPS", "400"))
KILL_EVERY = 20
LOG: list[Any] = []
SETTINGS = {
    "take_profit": {"targets": [{"value": 12, "trim": 100}]},
    "stop_loss": {"value": 10},
}


def until(check: Callable[[], Any], what: str, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # an actor is restarting
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last!r})")


def kill(name: str, ns: str) -> None:
    pid = ray.get(get(name, ns).ping.remote(), timeout=10)["pid"]
    os.kill(pid, signal.SIGKILL)


def test_chaos_kills_lose_nothing_and_send_nothing_twice(tmp_path: Path) -> None:
    seed = int(os.environ.get("JT_CHAOS_SEED", "7"))
    calm = chaos_run(tmp_path / "calm", seed, kills=False)
    wild = chaos_run(tmp_path / "wild", seed, kills=True)
    assert sum(len(t) for t in calm.values()) > 0, "the run recorded no trade at all"
    for name in calm:
        assert wild[name] == calm[name], f"{name}: trades differ from the run without kills"


def chaos_run(directory: Path, seed: int, kills: bool) -> dict[str, list[tuple[Any, ...]]]:
    directory.mkdir()
    rnd = random.Random(seed)
    today = date.today()
    contracts = {root: normalize(root, today) for root in ROOTS}
    sim = SimServer(SimConfig(users=[SimUser(accounts=list(ACCOUNTS))])).start()
    try:
        url = f"sqlite:///{directory / 'jt.db'}"
        # recovery is under test here, not the restart budget (tests/test_supervisor_*): a
        # kill every few seconds must neither exhaust it nor grow the back-off to 30 s
        with running_system(
            url,
            tradovate_demo_url=sim.base_url,
            recorder_hosts=2,
            restart_budget=10_000,
            backoff_quiet_s=1.0,
        ) as system:
            return run_chaos(system, sim, rnd, contracts, url, kills)
    finally:
        sim.stop()


def run_chaos(
    system: System,
    sim: SimServer,
    rnd: random.Random,
    contracts: dict[str, str],
    url: str,
    kills_on: bool,
) -> dict[str, list[tuple[Any, ...]]]:
    c = system.client
    ns = system.settings.namespace
    r = c.post(
        "/api/accounts",
        json={
            "broker": "tradovate",
            "name": "TV",
            "environment": "demo",
            "credentials": {
                "username": "simuser",
                "password": "simpass",
                "app_id": "JustTrades",
                "app_version": "1.0",
                "cid": 0,
                "sec": "sec",
            },
        },
    )
    assert r.status_code == 201, r.text
    account_id = r.json()["id"]
    subs = c.post(f"/api/accounts/{account_id}/sync").json()["sub_accounts"]
    recorders = {}
    for root in ROOTS:
        rec = system.create_recorder(f"chaos-{root}", SETTINGS, symbol=root)
        recorders[root] = rec
        for sub, mult in zip(subs, (1, 2, 3), strict=True):
            r = c.post(
                "/api/traders",
                json={
                    "recorder_id": rec["id"],
                    "account_id": account_id,
                    "sub_account_id": sub["id"],
                    "multiplier": mult,
                },
            )
            assert r.status_code == 201, r.text
    prices = dict(ROOTS)
    counts = Counter(ticks=0, signals=0)
    LOG.clear()
    victims = [host_name(0), host_name(1), broker_name("tradovate", account_id), FEED]
    kills: list[str] = []

    def tick(root: str, move: bool = True) -> None:
        """1-10 new prices (``move``), or the last one again: while the test waits for the
        system to settle, ticks keep timers and restarted actors busy without changing any
        outcome (both runs must see the same prices whatever the settling takes)."""
        contract = contracts[root]
        batch = []
        for _ in range(rnd.randint(1, 10) if move else 1):
            if move:
                prices[root] += rnd.choice((-1, 1)) * rnd.randint(1, 4) * 0.25
                LOG.append(("tick", root, time.time(), prices[root]))
            batch.append({"symbol": contract, "price": prices[root], "ts": time.time()})
        counts["ticks"] += len(batch) if move else 0
        sim.push_prices([{"symbol": contract, "price": t["price"]} for t in batch])
        deadline, answer = time.monotonic() + 60, "no answer"
        while True:  # the feed is down: a price source sends the ticks again
            with contextlib.suppress(httpx.HTTPError):
                r = system.client.post(
                    "/api/feed/ticks", json={"ticks": batch, "wait": True}, timeout=40
                )
                if r.status_code == 200 and r.json()["drained"]:
                    return
                answer = r.text
            assert time.monotonic() < deadline, f"the feed never took the ticks: {answer}"
            time.sleep(0.1)

    for root in ROOTS:
        tick(root)
    for step in range(STEPS):
        root = rnd.choice(list(ROOTS))
        if rnd.random() < 0.6:
            tick(root)
        else:
            body = {
                "action": rnd.choice(["buy", "sell", "buy", "sell", "close"]),
                "ticker": root,
                "id": f"chaos-{step}",  # never a duplicate of an earlier alert
            }
            if rnd.random() < 0.5:  # an alert with {{close}}; the others fill at the last tick
                body["price"] = prices[root]
            counts["signals"] += 1
            token = recorders[root]["webhook_url"].rsplit("/", 1)[1]
            with contextlib.suppress(httpx.HTTPError):  # stored first: recovered if not applied
                system.post_alert(token, json.dumps(body))
        if step % KILL_EVERY == KILL_EVERY - 1:
            victim = rnd.choice(victims)  # drawn in both runs: the same random sequence
            if not kills_on:
                continue
            LOG.append(("kill", victim, time.time(), 0))
            try:
                kill(victim, ns)
                kills.append(victim)
            except Exception:  # already down from the previous kill
                pass
    assert kills or not kills_on, "the killer killed nothing"

    store = Store(url)

    def all_applied() -> bool:
        for root in ROOTS:  # keep ticks flowing so restarted actors get ticks and timers
            tick(root, move=False)
        with store.read() as s:
            pending = s.exec(select(models.Signal).where(models.Signal.status == "received"))
            return not list(pending)

    until(all_applied, "every stored signal applied", timeout=120)

    seen: dict[str, Any] = {}

    def live_equals_broker() -> bool:
        for root in ROOTS:
            tick(root, move=False)
        state = httpx.get(f"{sim.admin_url}/state", timeout=10).json()
        names = {a["id"]: a["name"] for a in state["accounts"]}
        contract_names = {cid: name for name, cid in _contract_ids(sim, contracts).items()}
        broker = {
            (names[p["accountId"]], contract_names.get(p["contractId"], "?")): p["netPos"]
            for p in state["positions"]
        }
        rows = system.client.get("/api/reconcile").json()["groups"]
        pairs = {(g["account"], g["symbol"]): g for g in rows}
        seen.update(broker=broker, groups=rows)
        for (account, symbol), g in pairs.items():
            settled_net = sum(t["net"] for t in g["traders"])
            if broker.get((account, symbol), 0) != settled_net or g["verdict"] != "in_sync":
                return False
        return all(
            net == 0 or pairs.get(key, {}).get("verdict") == "in_sync"
            for key, net in broker.items()
        )

    try:
        until(live_equals_broker, "every live pair equal to its broker position", timeout=120)
    except AssertionError as exc:
        bad = {
            t["trader_id"]
            for g in seen.get("groups", [])
            if g["verdict"] != "in_sync"
            for t in g["traders"]
        }
        with store.read() as s:
            rows = s.exec(select(models.Order).where(models.Order.trader_id.in_(bad))).all()  # type: ignore[union-attr]
            fills = s.exec(select(models.Fill).where(models.Fill.trader_id.in_(bad))).all()  # type: ignore[union-attr]
        orders = [(o.cl_ord_id, o.side, o.quantity, o.status, o.reason) for o in rows]
        booked = [(f.order_id, f.side, f.quantity, f.price, f.kind) for f in fills]
        requests = httpx.get(f"{sim.admin_url}/requests", timeout=10).json()["requests"]
        sent = Counter(q.get("params", {}).get("clOrdId") for q in requests)
        views = [system.client.get(f"/api/traders/{t}/positions").json() for t in sorted(bad)]
        report = (
            f"{exc}; broker {seen.get('broker')}; groups {seen.get('groups')}; "
            f"orders of the traders out of sync {orders}; "
            f"times sent {[sent.get(o[0], 0) for o in orders]}; booked fills {booked}; "
            f"pair views {views}; kills {kill_times(kills)}"
        )
        if os.environ.get("JT_CHAOS_DUMP"):
            state = httpx.get(f"{sim.admin_url}/state", timeout=10).json()
            Path(os.environ["JT_CHAOS_DUMP"] + "-failure").write_text(
                json.dumps({"report": report, "sim": state, "requests": requests}, default=str)
            )
        raise AssertionError(report) from None

    # Every order resting at the broker is one a live pair tracks (an order nobody tracks, e.g.
    # a placement that ran after its cancel was answered "unknown", fills some time later and
    # is booked by no pair).
    engine = sim.sim.engine
    resting = sim.call_in_loop(
        lambda: [
            o.cl_ord_id
            for o in engine.orders.values()
            if o.status in ("PendingNew", "Working", "Suspended")
        ]
    )
    with store.read() as s:
        tracked = {o.cl_ord_id: o.status for o in s.exec(select(models.Order)).all()}
    stray = [cl for cl in resting if tracked.get(cl or "", "cancelled") in TERMINAL_STATUSES]
    assert not stray, f"orders resting at the broker that no live pair tracks: {stray[:5]}"

    requests = httpx.get(f"{sim.admin_url}/requests", timeout=10).json()["requests"]
    cl_ids = [
        q["params"]["clOrdId"]
        for q in requests
        if q["endpoint"] == "order/placeorder" and q.get("params", {}).get("clOrdId")
    ]
    twice = [cl for cl, n in Counter(cl_ids).items() if n > 1]
    assert not twice, f"client order ids sent twice: {twice[:5]}"

    with store.read() as s:
        fills = s.exec(select(models.Fill).where(models.Fill.trader_id == None)).all()  # noqa: E711
    keys = Counter((f.pair_key, f.signal_id, f.kind, f.side) for f in fills if f.signal_id)
    doubled = [k for k, n in keys.items() if n > 1]
    assert not doubled, f"signals applied twice: {doubled[:5]}"
    time.sleep(1.1)  # /status is cached for a moment
    status = system.client.get("/status").json()
    restarts = {c["name"]: c["restarts"] for c in status["tree"]["children"]}
    for victim in set(kills):  # every restart is visible
        assert restarts[victim] >= 1, (victim, restarts)
    live = [h["live"] for h in status["hosts"]]
    assert all("risk" in h_live and "drift" in h_live for h_live in live), live
    trades: dict[str, list[tuple[Any, ...]]] = {}
    with store.read() as s:
        for root, rec in recorders.items():
            rows = s.exec(
                select(models.Trade)
                .where(models.Trade.recorder_id == rec["id"], models.Trade.trader_id == None)  # noqa: E711
                .order_by(models.Trade.id)  # type: ignore[arg-type]
            ).all()
            trades[root] = [
                (t.side, t.quantity, t.reason, t.entry_price, t.exit_price, t.pnl,
                 t.mfe_usd, t.mae_usd)
                for t in rows
            ]  # fmt: skip
    if os.environ.get("JT_CHAOS_DUMP"):
        with store.read() as s:
            sigs = s.exec(select(models.Signal).order_by(models.Signal.id)).all()  # type: ignore[arg-type]
            dump = [(g.id, g.recorder_id, g.received_at, g.status, g.reason, g.applied_at,
                     (g.parsed or {}).get("intent", {}).get("price"), g.action) for g in sigs]  # fmt: skip
        Path(os.environ["JT_CHAOS_DUMP"] + ("-wild" if kills_on else "-calm")).write_text(
            json.dumps({"signals": dump, "log": LOG}, indent=0)
        )
    store.dispose()
    print(
        f"chaos ({'kills' if kills_on else 'no kills'}): {counts['ticks']} ticks, "
        f"{counts['signals']} signals, {len(kills)} kills ({Counter(kills)}), "
        f"{len(cl_ids)} orders, {len(fills)} fills, "
        f"{sum(len(t) for t in trades.values())} recorder trades"
    )
    return trades


def kill_times(kills: list[str]) -> list[tuple[str, float]]:
    """Kills with their time relative to the first tick (to line up with the orders)."""
    t0 = LOG[0][2] if LOG else 0.0
    return [(e[1], round(e[2] - t0, 2)) for e in LOG if e[0] == "kill"][: len(kills)]


def _contract_ids(sim: SimServer, contracts: dict[str, str]) -> dict[str, int]:
    """Contract name -> the simulator's contract id (read on the simulator's own loop)."""
    catalog = sim.sim.catalog
    return sim.call_in_loop(
        lambda: {name: int(catalog.resolve(name)["id"]) for name in contracts.values()}
    )


_ = BROKER  # the paper broker is not a victim: its book is in memory (a kill empties it)
