"""The kill switch over HTTP on the real system (Ray + uvicorn + SQLite).

Positions are opened directly on the tree's paper broker actor (as a trader would), then killed
through the API; "flat" and "blocked" are checked on the actor itself, not on the API's answer,
so a route that reports a kill it did not do fails here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from actors.broker.base import OrderRequest, Priority
from actors.runtime import BROKER
from actors.store import Store, ensure_local_user, repo
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SYMBOL = "MNQZ5"
PAPER = "paper-1"  # the broker account name of the first paper account made through the API
PAPER2 = "paper-2"


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    db: Path = tmp_path_factory.mktemp("kill") / "justtrades.db"
    with running_system(f"sqlite:///{db}") as sut:
        yield sut


@pytest.fixture(scope="module")
def store(system: System) -> Iterator[Store]:
    st = Store(system.settings.resolved_database_url())
    yield st
    st.engine.dispose()


@pytest.fixture(scope="module")
def accounts(system: System, store: Store) -> dict[str, int]:
    """The local user's paper account (API), a second paper account and a Tradovate account
    (store: no credentials needed), and another user's paper account."""
    r = system.client.post(
        "/api/accounts", json={"broker": "paper", "name": "P1", "environment": "paper"}
    )
    assert r.status_code == 201, r.text
    assert [s["broker_account_id"] for s in r.json()["sub_accounts"]] == [PAPER]
    local = ensure_local_user(store).id
    assert local is not None
    p2 = repo.create_account(store, local, "paper", "P2", "paper", None, [(PAPER2, "P2")])
    tv = repo.create_account(store, local, "tradovate", "TV", "demo", None, [("4711", "DEMO1")])
    mallory = repo.create_user(store, "mallory").id
    assert mallory is not None
    theirs = repo.create_account(store, mallory, "paper", "M", "paper", None, [("m", "M")])
    assert p2.id and tv.id and theirs.id
    return {"p1": r.json()["id"], "p2": p2.id, "tv": tv.id, "theirs": theirs.id}


@pytest.fixture(scope="module")
def broker(system: System) -> Any:
    handle = ray.get_actor(BROKER, namespace=system.settings.namespace)
    ray.get(handle.on_ticks.remote({SYMBOL: ([time.time()], [20000.0])}))
    return handle


def order(
    account: str,
    side: str,
    qty: int = 1,
    stop: float | None = None,
    priority: Priority = Priority.ENTRY,
) -> OrderRequest:
    return OrderRequest(
        cl_ord_id=f"t-{uuid.uuid4().hex[:12]}",
        account=account,
        symbol=SYMBOL,
        side=side,  # type: ignore[arg-type]
        qty=qty,
        order_type="market" if stop is None else "stop",
        stop_price=stop,
        priority=priority,
        pair_key="test",
    )


def place(broker: Any, req: OrderRequest) -> Any:
    return ray.get(broker.place.remote(req))


def net(broker: Any, account: str) -> int:
    return sum(p.net_pos for p in ray.get(broker.positions.remote(account)))


def kill(system: System, path: str = "", status: int = 200, **body: Any) -> dict[str, Any]:
    r = system.client.post(f"/api/kill{path}", json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_account_kill_flattens_blocks_and_rearms(
    system: System, accounts: dict[str, int], broker: Any
) -> None:
    assert place(broker, order(PAPER, "buy", 2)).status == "filled"
    assert place(broker, order(PAPER2, "sell", 1)).status == "filled"
    stop = order(PAPER, "sell", 2, stop=19900.0, priority=Priority.PROTECT)
    assert place(broker, stop).status == "working"

    out = kill(system, scope="account", account_id=accounts["p1"])
    assert [a["account_id"] for a in out["accounts"]] == [accounts["p1"]]
    assert out["not_connected"] == []
    [killed] = out["killed"]
    assert killed["broker_account"] == PAPER
    assert killed["cancelled"] == [stop.cl_ord_id]
    assert [(f["account"], f["status"]) for f in killed["flatten"]] == [(PAPER, "filled")]
    assert net(broker, PAPER) == 0
    assert net(broker, PAPER2) == -1  # another account is untouched
    assert ray.get(broker.order_state.remote(stop.cl_ord_id)).status == "cancelled"

    blocked = place(broker, order(PAPER, "buy"))
    assert (blocked.status, blocked.reason) == ("rejected", "kill_switch")
    assert place(broker, order(PAPER2, "buy")).status == "filled"  # not killed
    state = system.client.get("/api/kill").json()["brokers"][0]
    assert (state["killed_all"], state["killed"]) == (False, [PAPER])

    out = kill(system, "/rearm", scope="account", account_id=accounts["p1"])
    assert out["state"] == {"killed_all": False, "killed": []}
    assert place(broker, order(PAPER, "buy")).status == "filled"
    assert place(broker, order(PAPER, "sell")).status == "filled"


def test_user_kill_covers_every_account_and_reports_tradovate_not_connected(
    system: System, accounts: dict[str, int], broker: Any
) -> None:
    assert place(broker, order(PAPER, "sell", 3)).status == "filled"
    assert place(broker, order(PAPER2, "buy", 2)).status == "filled"
    out = kill(system, scope="user")
    assert {a["account_id"] for a in out["accounts"]} == {accounts["p1"], accounts["p2"]}
    assert [(n["account_id"], n["reason"]) for n in out["not_connected"]] == [
        (accounts["tv"], "no_broker_actor")
    ]
    assert out["not_connected"][0]["broker_accounts"] == ["DEMO1"]  # the accountSpec orders carry
    assert sorted(k["broker_account"] for k in out["killed"]) == [PAPER, PAPER2]
    assert net(broker, PAPER) == 0 and net(broker, PAPER2) == 0
    for acc in (PAPER, PAPER2):
        assert place(broker, order(acc, "buy")).reason == "kill_switch"
    assert place(broker, order("m", "buy")).status == "filled"  # another user's account

    kill(system, "/rearm", scope="user")
    for acc in (PAPER, PAPER2):
        assert place(broker, order(acc, "buy")).status == "filled"


def test_global_kill_and_rearm(system: System, accounts: dict[str, int], broker: Any) -> None:
    out = kill(system, scope="global")  # the local user is admin
    assert len(out["killed"]) == 1 and out["killed"][0]["broker_account"] is None
    assert net(broker, "m") == 0 and net(broker, PAPER) == 0
    assert system.client.get("/api/kill").json()["brokers"][0]["killed_all"] is True
    assert place(broker, order("m", "buy")).reason == "kill_switch"
    # A per-account re-arm does not lift a global kill.
    kill(system, "/rearm", scope="account", account_id=accounts["p1"])
    assert place(broker, order(PAPER, "buy")).reason == "kill_switch"
    assert kill(system, "/rearm", scope="global")["state"]["killed_all"] is False
    assert place(broker, order(PAPER, "buy")).status == "filled"


def test_other_users_account_is_404_and_bad_body_422(
    system: System, accounts: dict[str, int], broker: Any
) -> None:
    kill(system, status=404, scope="account", account_id=accounts["theirs"])
    kill(system, "/rearm", status=404, scope="account", account_id=accounts["theirs"])
    kill(system, status=404, scope="account", account_id=999_999)
    kill(system, status=422, scope="account")
    kill(system, status=422, scope="everything")
    assert ray.get(broker.status.remote())["killed"] == []
