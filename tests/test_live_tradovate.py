"""Copy trading end to end: one recorder, three traders (×1, ×2, ×3) on three accounts of one
Tradovate login, against the Tradovate simulator over real sockets, through real Ray actors
(a recorder host and a broker actor) and a SQLite store.

After each step (buy, add, reverse, take profit, stop loss) every account's position at the
simulated broker equals its live pair's position, and every order that closed a short was a buy.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import ray

from actors.broker.actor import BrokerActor
from actors.broker.tradovate.adapter import TradovateConfig
from actors.broker.tradovate.auth import Credentials, Endpoints
from actors.broker.tradovate.sim import SimConfig, SimServer, SimUser
from actors.recorder.actor import RecorderActor
from actors.recorder.config import RecorderSettings, StopLoss, TakeProfit, TakeProfitTarget
from actors.runtime import actor_options, broker_name, host_name, tree_class
from actors.store import Store, repo
from tests.system import ensure_ray

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SYMBOL = "MNQZ6"
ACCOUNTS = ["DEMO0001", "DEMO0002", "DEMO0003"]
MULTIPLIERS = [1.0, 2.0, 3.0]
SETTINGS = RecorderSettings(
    take_profit=TakeProfit(targets=[TakeProfitTarget(value=20, trim=100)]),
    stop_loss=StopLoss(value=12),
)


def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """``check()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            seen = getattr(check, "seen", None)  # what the check saw last, if it keeps that
            raise AssertionError(f"timed out waiting for {what}" + (f": {seen}" if seen else ""))
        time.sleep(0.05)
    return value


class Tree:
    """The pieces under test, with helpers that drive and read them."""

    def __init__(self, sim: SimServer, store: Store, host: Any, broker: Any, rid: int) -> None:
        self.sim, self.store, self.host, self.broker, self.rid = sim, store, host, broker, rid
        self.ts = time.time()
        self.signals = 0

    def price(self, price: float) -> None:
        """The broker sees a price first (as a live market would), then the host."""
        self.sim.push_prices([{"symbol": SYMBOL, "price": price}])
        self.ts += 1.0
        ray.get(self.host.on_ticks.remote({SYMBOL: ([self.ts], [price])}))

    def signal(self, action: str, quantity: int | None = None) -> dict[str, Any]:
        self.ts += 1.0
        row, _ = repo.insert_signal(
            self.store,
            recorder_id=self.rid,
            raw_body=b"{}",
            content_type="application/json",
            remote_addr=None,
            dedupe_key=None,
            window_s=0,
            now=self.ts,
        )
        intent = {
            "kind": action,
            "quantity": quantity,
            "target": None,
            "price": None,
            "symbol": SYMBOL,
            "signal_time": None,
            "received_at": self.ts,
        }
        return ray.get(self.host.on_signal.remote(row.id, self.rid, intent))

    def broker_nets(self) -> list[int]:
        positions = ray.get(self.broker.positions.remote())
        nets = {p.account: p.net_pos for p in positions if p.symbol == SYMBOL}
        return [nets.get(a, 0) for a in ACCOUNTS]

    def live(self) -> list[dict[str, Any]]:
        return ray.get(self.host.live_positions.remote(self.rid))

    def pair_nets(self) -> list[int]:
        by_trader = {
            r["trader_id"]: (1 if r["side"] == "long" else -1) * r["quantity"] for r in self.live()
        }
        return [by_trader.get(t, 0) for t in (1, 2, 3)]

    def resting_stops(self) -> int:
        """How many stop orders rest (are working) at the simulated broker."""
        engine = self.sim.sim.engine
        return self.sim.call_in_loop(
            lambda: sum(
                o.order_type == "Stop" and o.status == "Working" for o in engine.orders.values()
            )
        )

    def filled_stops(self) -> list[Any]:
        """The stop orders stored as filled."""
        with self.store.read() as s:
            orders = repo.list_orders(s, recorder_id=self.rid, limit=1000)
        return [o for o in orders if o.order_type == "stop" and o.status == "filled"]

    def settled(self, want: list[int]) -> Callable[[], bool]:
        def check() -> bool:
            rows = self.live()
            idle = all(r["phase"] == "IDLE" and r["working_orders"] <= 1 for r in rows)
            broker, pairs = self.broker_nets(), self.pair_nets()
            check.seen = f"broker {broker}, pairs {pairs}, live rows {rows}"  # type: ignore[attr-defined]
            return idle and broker == want and pairs == want

        return check


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tree]:
    ensure_ray()
    ns = f"jt-live-{uuid.uuid4().hex[:8]}"
    sim = SimServer(SimConfig(users=[SimUser(accounts=list(ACCOUNTS))])).start()
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('live')) / 'jt.db'}"
    store = Store(url)
    store.migrate()
    user = repo.ensure_local_user(store)
    assert user.id is not None
    rec = repo.create_recorder(store, user.id, "copy", SYMBOL, SETTINGS)
    acc = repo.create_account(
        store,
        user.id,
        "tradovate",
        "TV",
        "demo",
        None,
        [(str(i + 1), name) for i, name in enumerate(ACCOUNTS)],
    )
    assert rec.id is not None and acc.id is not None
    with store.read() as s:
        subs = repo.list_sub_accounts(s, acc.id)
    for sub, mult in zip(subs, MULTIPLIERS, strict=True):
        repo.create_trader(store, user.id, rec.id, acc.id, sub.id, multiplier=mult)
    creds = Credentials("simuser", "simpass", "JustTrades", "1.0", 0, "sec", "device-live")
    config = TradovateConfig(
        credentials=creds,
        endpoints=Endpoints.local(sim.base_url.removesuffix("/v1")),
        stale_s=5.0,
        cancel_wait_s=3.0,
        rate_limit_base_s=0.2,  # 429 back-off (10 s by default) scaled down for the test
        reconnect_initial_s=0.2,
    )
    broker = (
        tree_class(BrokerActor)
        .options(**actor_options(broker_name("tradovate", acc.id), ns))
        .remote(
            name=broker_name("tradovate", acc.id),
            kind="tradovate",
            tradovate=config,
            namespace=ns,
        )
    )
    host = (
        tree_class(RecorderActor)
        .options(**actor_options(host_name(0), ns))
        .remote(0, 1, url, 0.2, namespace=ns)
    )
    ray.get([broker.ping.remote(), host.ping.remote()])
    t = Tree(sim, store, host, broker, rec.id)
    try:
        yield t
    finally:
        for actor in (host, broker):
            ray.kill(actor)
        sim.stop()
        store.dispose()


def test_three_traders_follow_buy_add_reverse_tp_and_stop(tree: Tree) -> None:
    tree.price(20000.0)
    tree.signal("buy")
    until(tree.settled([1, 2, 3]), "buy: 1, 2, 3 long")
    stops = ray.get(tree.host.live_positions.remote(tree.rid))
    assert sorted(r["stop_price"] for r in stops) == [19997.0] * 3  # 12 ticks of 0.25 below

    tree.price(20001.0)
    tree.signal("buy")  # add
    until(tree.settled([2, 4, 6]), "add: 2, 4, 6 long")

    tree.price(20002.0)
    tree.signal("sell")  # reverse
    until(tree.settled([-1, -2, -3]), "reverse: 1, 2, 3 short")

    tree.price(19996.0)  # 24 ticks in the short's favour: take profit (20 ticks)
    until(tree.settled([0, 0, 0]), "take profit: flat")

    tree.price(19996.0)
    tree.signal("buy")
    until(tree.settled([1, 2, 3]), "buy again")
    # The stops must rest at the broker before the price goes through them; one that arrives
    # after would rest there unfilled and the pair would exit at market when it sees the price
    # past its stop (test_live_faults: stop crossed), not through the broker's stop.
    until(lambda: tree.resting_stops() == 3, "three stops resting at the broker")
    tree.price(19992.0)  # 16 ticks against the long: the stop at the broker fires
    until(tree.settled([0, 0, 0]), "stop loss: flat")
    # A flat pair has no position row to show its orders, and the stop's own answer ("filled")
    # may come after the fill that flattened it: wait for it in the store.
    until(lambda: len(tree.filled_stops()) == 3, "every trader's stop stored as filled")

    with tree.store.read() as s:
        orders = repo.list_orders(s, recorder_id=tree.rid, limit=1000)
        trades = [t for t in repo.list_trades(s, tree.rid, limit=1000) if t.trader_id]
        fills = [f for f in _fills(s, tree.rid) if f.trader_id]
    assert len({o.cl_ord_id for o in orders}) == len(orders), "one row per client order id"
    for trader_id, mult in zip((1, 2, 3), MULTIPLIERS, strict=True):
        mine = [t for t in trades if t.trader_id == trader_id]
        by_reason: dict[str, int] = {}
        for t in mine:
            by_reason[t.reason] = by_reason.get(t.reason, 0) + t.quantity
        assert by_reason == {"reverse": 2 * mult, "tp1": mult, "stop_loss": mult}, by_reason
        assert [t.side for t in sorted(mine, key=lambda t: t.closed_at)][:1] == ["long"]
        assert {t.side for t in mine if t.reason == "tp1"} == {"short"}
    exits = {(f.trader_id, f.ts): f.side for f in fills if f.kind == "exit"}
    for t in trades:  # the order that closed a short bought; the one that closed a long sold
        assert exits[(t.trader_id, t.closed_at)] == ("buy" if t.side == "short" else "sell")
    stops = [o for o in orders if o.order_type == "stop" and o.status == "filled"]
    assert stops and all(o.side == "sell" for o in stops)  # protective stops of the longs


def faults(tree: Tree, **changes: Any) -> None:
    r = httpx.post(f"{tree.sim.admin_url}/faults", json=changes, timeout=10)
    assert r.status_code == 200, r.text


def test_faults_lose_no_order_and_never_duplicate_fills(tree: Tree) -> None:
    """Penalty tickets, a 429 burst, token expiry and a websocket drop in the middle of
    trading: every account still ends equal to its pair, no fill is booked twice, and the
    limiter never went over its budget. A refused entry leaves no position and a stored
    rejection with the broker's reason."""
    tree.price(20000.0)
    assert tree.settled([0, 0, 0])()
    faults(tree, penalty_count=2, penalty_p_time=1)
    tree.signal("buy")
    until(tree.settled([1, 2, 3]), "buy through penalty tickets")

    faults(tree, http429_count=3)
    tree.signal("buy")
    until(tree.settled([2, 4, 6]), "add through a 429 burst")

    faults(tree, expire_tokens_now=True)
    tree.signal("close")
    until(tree.settled([0, 0, 0]), "close after token expiry")

    faults(tree, ws_drop=True)
    tree.price(20001.0)
    tree.signal("sell")
    until(tree.settled([-1, -2, -3]), "sell across a websocket drop")
    tree.signal("close")
    until(tree.settled([0, 0, 0]), "flat again")

    faults(tree, reject_count=1, reject_reason="TradingLocked")
    tree.signal("buy")
    # one account's entry was refused: it stays flat, the others trade
    until(lambda: sorted(tree.broker_nets()) in ([0, 2, 3], [0, 1, 3], [0, 1, 2]), "refused")
    until(lambda: tree.broker_nets() == tree.pair_nets(), "refused: pairs equal brokers")
    with tree.store.read() as s:
        rejected = repo.list_orders(s, recorder_id=tree.rid, status="rejected")
        fills = [f for f in _fills(s, tree.rid) if f.trader_id]
    assert len(rejected) == 1 and "TradingLocked" in (rejected[0].reason or "")
    status = ray.get(tree.broker.status.remote())
    assert status["counts"].get("send_errors", 0) == 0
    sim_fills = httpx.get(f"{tree.sim.admin_url}/state", timeout=10).json()["fills"]
    assert len(fills) == len(sim_fills), "every broker fill booked exactly once"
    tree.signal("close")
    until(tree.settled([0, 0, 0]), "flat at the end")


def _fills(s: Any, recorder_id: int) -> list[Any]:
    from sqlmodel import select

    from actors.store import models

    return list(s.exec(select(models.Fill).where(models.Fill.recorder_id == recorder_id)))


def test_a_host_killed_mid_exit_recovers_the_fills_it_missed(tree: Tree) -> None:
    """The host dies right after sending exits, so the broker's fill events reach nobody. The
    restarted host rebuilds its live pairs from the store, asks the broker actor about the
    orders still open (same client order ids: nothing is sent twice) and books the fills."""
    tree.price(20000.0)
    tree.signal("buy")
    until(tree.settled([1, 2, 3]), "long before the kill")
    sent_before = len(ray.get(tree.broker.sent_orders.remote()))
    tree.signal("close")
    ray.kill(tree.host, no_restart=False)  # SIGKILL; Ray restarts it (max_restarts=-1)

    def recovered() -> bool:
        try:  # the host is restarting: calls may fail until it is back
            tree.price(20000.0)  # ticks start the restarted host's timers
            return tree.settled([0, 0, 0])()
        except ray.exceptions.RayActorError:
            return False

    until(recovered, "flat after the host restart", timeout=60)
    sent = ray.get(tree.broker.sent_orders.remote())[sent_before:]
    exits = [cl for cl, _, _ in sent if "-s" in cl]
    assert len(exits) == len(set(exits)), "an order was sent twice"
    with tree.store.read() as s:
        fills = [f for f in _fills(s, tree.rid) if f.trader_id]
    sim_fills = httpx.get(f"{tree.sim.admin_url}/state", timeout=10).json()["fills"]
    assert len(fills) == len(sim_fills), "every broker fill booked exactly once"


def _manual(tree: Tree, account: str, action: str, qty: int) -> None:
    """An order entered by hand at the broker (another session of the same login)."""
    from actors.broker.tradovate.sim.testing import Api

    api = Api(tree.sim, symbol=SYMBOL)
    acc = next(a for a in api.get("account/list") if a["name"] == account)
    api.account = acc
    api.order(action, qty)


def _risk(tree: Tree) -> dict[int, str]:
    view = ray.get(tree.host.reconcile_view.remote())
    return {t["trader_id"]: t["risk"] for g in view for t in g["traders"]}


def test_reconciler_halts_on_a_hand_made_position_and_applies_each_policy(tree: Tree) -> None:
    """Trader 1 (policy alert): a position opened by hand on its flat account is unexplained,
    so it is HALTED (never flattened) until resolved. Trader 2 (correct): a hand-made partial
    close is undone by a market order. Trader 3 (adopt): a hand-made add becomes its book."""
    for trader_id, policy in ((2, "correct"), (3, "adopt")):
        repo.update_trader(tree.store, trader_id, overrides={"reconcile_policy": policy})
    ray.get(tree.host.load_traders.remote(tree.rid))
    tree.price(20000.0)
    assert tree.settled([0, 0, 0])()

    _manual(tree, "DEMO0001", "Buy", 1)
    until(lambda: tree.broker_nets()[0] == 1, "the hand-made position at the broker")

    def halted() -> bool:
        tree.price(20000.0)
        return _risk(tree).get(1) == "HALTED"

    until(halted, "trader 1 halted")
    assert tree.broker_nets()[0] == 1  # shown, not flattened
    view = ray.get(tree.host.reconcile_view.remote())
    assert any(g["account"] == "DEMO0001" and g["verdict"] == "unexplained" for g in view)

    tree.signal("buy")  # trader 1 is halted: only 2 and 3 trade
    # the pairs book the fills after the broker shows them: wait for both
    until(
        lambda: tree.broker_nets() == [1, 2, 3] and tree.pair_nets() == [0, 2, 3],
        "2 and 3 long, 1 untouched",
    )

    _manual(tree, "DEMO0002", "Sell", 1)  # trader 2: broker 1, book 2 -> corrected
    _manual(tree, "DEMO0003", "Buy", 1)  # trader 3: broker 4, book 3 -> adopted

    def policies_applied() -> bool:
        tree.price(20000.0)
        return tree.broker_nets()[1:] == [2, 4] and tree.pair_nets()[1:] == [2, 4]

    until(policies_applied, "trader 2 corrected, trader 3 adopted")

    ray.get(tree.host.resolve.remote(1, SYMBOL, "external"))  # the hand-made long is not ours
    assert _risk(tree).get(1) == "ACTIVE"
    tree.signal("close")
    until(lambda: tree.broker_nets() == [1, 0, 0], "closed: the external long stays")
    _manual(tree, "DEMO0001", "Sell", 1)
    until(lambda: tree.broker_nets() == [0, 0, 0], "the hand closes its own position")
    ray.get(tree.host.resolve.remote(1, SYMBOL, "external"))  # nothing external any more
    for trader_id in (2, 3):
        repo.update_trader(tree.store, trader_id, overrides={})
    ray.get(tree.host.load_traders.remote(tree.rid))


def test_a_restarted_broker_actor_is_rewired_at_once(tree: Tree) -> None:
    """What the supervisor does when it sees the broker actor restart: the host subscribes
    again right away (not at its next periodic re-subscription) and trading goes on."""
    before = ray.get(tree.broker.ping.remote())["started"]
    ray.kill(tree.broker, no_restart=False)  # asynchronous: the old process may answer once more

    def back() -> str | None:  # the new process (Ray restarts it: max_restarts=-1)
        try:
            pong = ray.get(tree.broker.ping.remote(), timeout=10)
        except ray.exceptions.RayActorError:
            return None
        return str(pong["name"]) if pong["started"] != before else None

    name = until(back, "the broker actor back", timeout=60)
    assert ray.get(tree.host.rewire.remote(name)) is True

    def subscribed() -> bool:
        try:
            return host_name(0) in ray.get(tree.broker.status.remote())["subscribers"]
        except ray.exceptions.RayActorError:
            return False

    until(subscribed, "the host subscribed again", timeout=10)
    tree.price(20000.0)
    tree.signal("buy")
    until(tree.settled([1, 2, 3]), "trading goes on")
    tree.signal("close")
    until(tree.settled([0, 0, 0]), "flat")
