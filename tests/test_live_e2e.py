"""The whole system trading a Tradovate account: webhook → recorder host → live pair → the
login's broker actor (started by the supervisor from the accounts table) → the Tradovate
simulator over real HTTP and websockets; then the account's kill switch through the API.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.broker.tradovate.sim import SimConfig, SimServer, SimUser
from actors.instruments import normalize
from tests.system import running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

CREDENTIALS = {
    "username": "simuser",
    "password": "simpass",
    "app_id": "JustTrades",
    "app_version": "1.0",
    "cid": 0,
    "sec": "sec",
}


def until(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_webhook_trades_a_tradovate_account_and_the_kill_switch_flattens_it(
    tmp_path: Path,
) -> None:
    contract = normalize("MNQ1!", date.today())
    sim = SimServer(SimConfig(users=[SimUser(accounts=["DEMO0001"])])).start()
    try:
        url = f"sqlite:///{tmp_path / 'jt.db'}"
        with running_system(url, tradovate_demo_url=sim.base_url) as system:
            c = system.client

            def sim_net() -> int:
                state = httpx.get(f"{sim.admin_url}/state", timeout=10).json()
                return sum(p["netPos"] for p in state["positions"])

            def price(p: float) -> None:
                sim.push_prices([{"symbol": contract, "price": p}])
                system.push_ticks([{"symbol": contract, "price": p}])

            r = c.post(
                "/api/accounts",
                json={
                    "broker": "tradovate",
                    "name": "TV",
                    "environment": "demo",
                    "credentials": CREDENTIALS,
                },
            )
            assert r.status_code == 201, r.text
            account_id = r.json()["id"]
            r = c.post(f"/api/accounts/{account_id}/sync")
            assert r.status_code == 200, r.text
            assert [s["name"] for s in r.json()["sub_accounts"]] == ["DEMO0001"]

            rec = system.create_recorder("live", {"stop_loss": {"value": 40}})
            r = c.post(
                "/api/traders",
                json={"recorder_id": rec["id"], "account_id": account_id, "multiplier": 2},
            )
            assert r.status_code == 201, r.text
            trader_id = r.json()["id"]

            price(20000.0)
            r = system.post_alert(
                rec["webhook_url"].rsplit("/", 1)[1], b'{"action": "buy", "ticker": "MNQ1!"}'
            )
            assert r.status_code == 200, r.text
            until(lambda: sim_net() == 2, "two contracts long at the simulator")
            rows = until(
                lambda: [
                    p
                    for p in c.get(f"/api/traders/{trader_id}/positions").json()
                    if p["quantity"] == 2 and p["phase"] == "IDLE" and p["stop_price"]
                ],
                "the live pair long 2 with its protective stop",
            )
            assert rows[0]["side"] == "long" and rows[0]["stop_price"] == 19990.0

            r = c.post("/api/kill", json={"scope": "account", "account_id": account_id})
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["not_connected"] == [] and len(out["killed"]) == 1
            until(lambda: sim_net() == 0, "flat at the simulator after the kill")
            until(
                lambda: c.get(f"/api/traders/{trader_id}/positions").json() == [],
                "the live pair flat (the kill's fill booked)",
            )
            r = system.post_alert(  # not a duplicate of the first alert: it has a quantity
                rec["webhook_url"].rsplit("/", 1)[1],
                b'{"action": "buy", "ticker": "MNQ1!", "quantity": 1}',
            )
            assert r.status_code == 200 and r.json()["status"] == "applied", r.text
            orders = until(
                lambda: [
                    o
                    for o in c.get(f"/api/traders/{trader_id}/orders").json()
                    if o["status"] == "rejected"
                ],
                "the blocked entry stored as a rejection",
            )
            assert orders[0]["reason"] == "kill_switch"
            assert sim_net() == 0
            requests = httpx.get(f"{sim.admin_url}/requests").json()["requests"]
            stops = [
                q for q in requests
                if q["endpoint"] == "order/placeorder" and q["params"]["orderType"] == "Stop"
            ]  # fmt: skip
            assert len(stops) == 1, "no new protective stop while the kill liquidates"
            status = c.get("/status").json()
            live = [h["live"] for h in status["hosts"] if h.get("live", {}).get("live_pairs")]
            assert live and live[0]["risk"] == {"ACTIVE": 1} and live[0]["drift"] == []
            assert any(
                ch["name"].startswith("broker-tradovate") for ch in status["tree"]["children"]
            )
    finally:
        sim.stop()
