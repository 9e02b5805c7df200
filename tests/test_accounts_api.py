"""Accounts and traders over HTTP on the real system (Ray + uvicorn + SQLite), with the
Tradovate simulator standing in for Tradovate.

Every response and every log record of every test here is checked for the credentials'
secrets (autouse fixture), on top of the targeted checks: the raw database row is ciphertext,
sync stores the simulator's accounts as sub-accounts, a wrong password is a 400 with the
broker's wording, traders validate their fields and overrides, and other users' recorders,
accounts, sub-accounts and traders are 404s.
"""

from __future__ import annotations

import logging
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.broker.tradovate.sim.config import SimConfig, SimUser
from actors.broker.tradovate.sim.server import SimServer
from actors.broker.tradovate.sim.sessions import WRONG_CREDENTIALS
from actors.store import Store, repo
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

PASSWORD = "pw-Zq81-never-shown"
API_SECRET = "sec-Hh27-never-shown"
WRONG_PASSWORD = "pw-Wr0ng-never-shown"
SECRETS = (PASSWORD, API_SECRET, WRONG_PASSWORD)
SIM_ACCOUNTS = ["DEMO0001", "DEMO0002"]
RESPONSES: list[str] = []

TP_OVERRIDE = {"unit": "ticks", "targets": [{"value": 8, "trim": 50}, {"value": 20, "trim": 50}]}


def tradovate_body(password: str = PASSWORD, name: str = "Tradovate demo") -> dict[str, Any]:
    return {
        "broker": "tradovate",
        "name": name,
        "environment": "demo",
        "credentials": {
            "username": "simuser",
            "password": password,
            "app_id": "JustTrades",
            "app_version": "1.0",
            "cid": 7,
            "sec": API_SECRET,
        },
    }


@pytest.fixture(scope="module")
def sim() -> Iterator[SimServer]:
    config = SimConfig(users=[SimUser(name="simuser", password=PASSWORD, accounts=SIM_ACCOUNTS)])
    with SimServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("accounts") / "var" / "justtrades.db"


@pytest.fixture(scope="module")
def system(sim: SimServer, db_path: Path) -> Iterator[System]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with running_system(
        f"sqlite:///{db_path}",
        tradovate_demo_url=sim.base_url,
        tradovate_live_url=sim.base_url,
    ) as sut:

        def keep(response: httpx.Response) -> None:
            response.read()
            RESPONSES.append(response.text)

        sut.client.event_hooks["response"].append(keep)
        yield sut


@pytest.fixture(autouse=True)
def no_secret_leaks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Whatever a test does: no response body and no log record contains a secret."""
    RESPONSES.clear()
    with caplog.at_level(logging.DEBUG):
        yield
    for text in RESPONSES:
        for secret in SECRETS:
            assert secret not in text
    # In teardown caplog.text is the teardown phase's; the test's own records are "call".
    records = caplog.get_records("setup") + caplog.get_records("call")
    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''}" for r in records)
    assert "account" in logged or not records  # the capture does see the app's records
    for secret in SECRETS:
        assert secret not in logged


@pytest.fixture(scope="module")
def other_user(system: System) -> dict[str, int]:
    """Another user's recorder, paper account (with its sub-account) and trader, made directly
    in the store: the API (single-user mode) acts as the local user and must not see them."""
    store = Store(system.settings.resolved_database_url())
    try:
        user = repo.create_user(store, "mallory")
        assert user.id is not None
        rec = repo.create_recorder(store, user.id, "theirs", "MNQ1!", {})
        acc = repo.create_account(store, user.id, "paper", "theirs", "paper", None, [("p", "P")])
        with store.read() as s:
            sub = repo.list_sub_accounts(s, acc.id or 0)[0]
        assert rec.id and acc.id and sub.id
        trader = repo.create_trader(store, user.id, rec.id, acc.id, sub.id)
        assert trader.id
        return {"recorder": rec.id, "account": acc.id, "sub": sub.id, "trader": trader.id}
    finally:
        store.engine.dispose()


def create(system: System, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    r = system.client.post("/api/accounts", json=body)
    assert r.status_code == status, r.text
    return r.json()


def test_paper_account_gets_one_sub_account(system: System) -> None:
    acc = create(system, {"broker": "paper", "name": "Paper 1", "environment": "paper"})
    assert acc["broker"] == "paper" and acc["has_credentials"] is False
    assert [s["name"] for s in acc["sub_accounts"]] == ["Paper"]
    subs = system.client.get(f"/api/accounts/{acc['id']}/subaccounts").json()
    assert subs == acc["sub_accounts"]
    assert system.client.get(f"/api/accounts/{acc['id']}").json() == acc
    assert acc["id"] in [a["id"] for a in system.client.get("/api/accounts").json()]


def test_account_validation(system: System) -> None:
    r = system.client.post(
        "/api/accounts", json={"broker": "paper", "name": "x", "environment": "live"}
    )
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "bad_environment"
    body = tradovate_body()
    body["environment"] = "paper"
    assert system.client.post("/api/accounts", json=body).status_code == 422
    body = tradovate_body()
    del body["credentials"]
    r = system.client.post("/api/accounts", json=body)
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "credentials_required"
    body = tradovate_body()
    del body["credentials"]["app_id"]
    body["credentials"]["extra"] = 1
    r = system.client.post("/api/accounts", json=body)
    assert r.status_code == 422
    assert r.json()["detail"] == {"reason": "bad_credentials", "fields": ["app_id", "extra"]}
    r = system.client.post(
        "/api/accounts", json={"broker": "ib", "name": "x", "environment": "paper"}
    )
    assert r.status_code == 422


def test_credentials_encrypted_at_rest_and_never_returned(system: System, db_path: Path) -> None:
    acc = create(system, tradovate_body())
    assert acc["has_credentials"] is True and acc["sub_accounts"] == []
    assert "credentials" not in acc and "credentials_encrypted" not in acc
    with sqlite3.connect(db_path) as conn:
        (blob,) = conn.execute(
            "SELECT credentials_encrypted FROM accounts WHERE id = ?", (acc["id"],)
        ).fetchone()
    assert isinstance(blob, bytes) and len(blob) > 100
    for plain in (PASSWORD, API_SECRET, "simuser", "JustTrades"):
        assert plain.encode() not in blob
    key_file = db_path.parent / "secret.key"  # generated for make-run style SQLite
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    listing = system.client.get("/api/accounts").text
    one = system.client.get(f"/api/accounts/{acc['id']}").text
    for text in (listing, one):
        assert "credentials_encrypted" not in text and '"credentials"' not in text
    # and the OpenAPI contract offers no way to read them back
    spec = system.client.get("/openapi.json").json()
    out = spec["components"]["schemas"]["AccountOut"]["properties"]
    assert "has_credentials" in out and not any(
        "credential" in k and k != "has_credentials" for k in out
    )


def test_sync_stores_simulator_accounts(system: System, caplog: pytest.LogCaptureFixture) -> None:
    acc = create(system, tradovate_body(name="to sync"))
    r = system.client.post(f"/api/accounts/{acc['id']}/sync")
    assert r.status_code == 200, r.text
    assert f"account {acc['id']} synced: 2 sub-accounts" in caplog.text  # the capture works
    subs = r.json()["sub_accounts"]
    assert sorted(s["name"] for s in subs) == SIM_ACCOUNTS
    assert all(s["broker_account_id"].isdigit() for s in subs)  # entity ids, not names
    listed = system.client.get(f"/api/accounts/{acc['id']}/subaccounts").json()
    assert listed == subs
    again = system.client.post(f"/api/accounts/{acc['id']}/sync").json()["sub_accounts"]
    assert again == subs  # idempotent: same rows, same ids


def test_wrong_password_is_a_clear_4xx(system: System) -> None:
    acc = create(system, tradovate_body(password=WRONG_PASSWORD, name="wrong"))
    r = system.client.post(f"/api/accounts/{acc['id']}/sync")
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == {"reason": "broker_auth_failed", "detail": WRONG_CREDENTIALS}
    assert system.client.get(f"/api/accounts/{acc['id']}/subaccounts").json() == []


def test_paper_account_is_not_syncable(system: System) -> None:
    acc = create(system, {"broker": "paper", "name": "nosync", "environment": "paper"})
    r = system.client.post(f"/api/accounts/{acc['id']}/sync")
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "not_syncable"


def test_trader_crud_and_validation(system: System) -> None:
    rec = system.create_recorder("traded", {})
    paper = create(system, {"broker": "paper", "name": "for traders", "environment": "paper"})
    paper_sub = paper["sub_accounts"][0]["id"]
    tv = create(system, tradovate_body(name="tv for traders"))
    c = system.client

    # validation
    base = {"recorder_id": rec["id"], "account_id": paper["id"]}
    for bad in (
        {"multiplier": 0},
        {"multiplier": -1},
        {"max_contracts": 0},
        {"overrides": {"take_profit": {"targets": [{"value": 20}, {"value": 8}]}}},
        {"overrides": {"stop_loss": {"value": 0}}},
        {"overrides": {"trailing": {}}},
    ):
        r = c.post("/api/traders", json=base | bad)
        assert r.status_code == 422, (bad, r.text)
    r = c.post("/api/traders", json={"recorder_id": rec["id"], "account_id": tv["id"]})
    assert r.status_code == 422 and r.json()["detail"]["reason"] == "sub_account_required"

    # create: the paper account's only sub-account is picked
    r = c.post(
        "/api/traders",
        json=base
        | {
            "multiplier": 2,
            "max_contracts": 5,
            "close_only": True,
            "overrides": {"take_profit": TP_OVERRIDE, "stop_loss": {"value": 40}},
        },
    )
    assert r.status_code == 201, r.text
    t = r.json()
    assert t["sub_account_id"] == paper_sub and t["enabled"] is True
    assert (t["multiplier"], t["max_contracts"], t["close_only"]) == (2.0, 5, True)
    assert t["overrides"]["take_profit"]["targets"][0] == {"value": 8.0, "trim": 50.0}
    assert t["overrides"]["stop_loss"] == {"unit": "ticks", "value": 40.0}
    r = c.post("/api/traders", json=base)
    assert r.status_code == 409 and r.json()["detail"]["trader_id"] == t["id"]

    # list by recorder
    assert [x["id"] for x in c.get("/api/traders", params={"recorder_id": rec["id"]}).json()] == [
        t["id"]
    ]
    assert c.get(f"/api/traders/{t['id']}").json() == t

    # patch: only what is sent; null removes the cap; overrides replaced
    r = c.patch(f"/api/traders/{t['id']}", json={"enabled": False, "max_contracts": None})
    assert r.status_code == 200, r.text
    p = r.json()
    assert p["enabled"] is False and p["max_contracts"] is None
    assert p["multiplier"] == 2.0 and p["close_only"] is True and p["overrides"] == t["overrides"]
    p = c.patch(f"/api/traders/{t['id']}", json={"overrides": {"stop_loss": {"value": 12}}}).json()
    assert p["overrides"] == {"take_profit": None, "stop_loss": {"unit": "ticks", "value": 12.0}}
    assert c.patch(f"/api/traders/{t['id']}", json={"multiplier": 0}).status_code == 422
    assert c.patch(f"/api/traders/{t['id']}", json={"sub_account_id": 999999}).status_code == 404

    # an account in use cannot be deleted; after unlinking it can
    r = c.delete(f"/api/accounts/{paper['id']}")
    assert r.status_code == 409 and r.json()["detail"]["trader_ids"] == [t["id"]]
    assert c.delete(f"/api/traders/{t['id']}").status_code == 204
    assert c.get(f"/api/traders/{t['id']}").status_code == 404
    assert c.delete(f"/api/accounts/{paper['id']}").status_code == 204
    assert c.get(f"/api/accounts/{paper['id']}").status_code == 404
    assert c.get(f"/api/accounts/{paper['id']}/subaccounts").status_code == 404


def test_synced_sub_account_can_be_linked(system: System) -> None:
    rec = system.create_recorder("tv traded", {})
    acc = create(system, tradovate_body(name="tv linked"))
    subs = system.client.post(f"/api/accounts/{acc['id']}/sync").json()["sub_accounts"]
    body = {"recorder_id": rec["id"], "account_id": acc["id"], "sub_account_id": subs[1]["id"]}
    r = system.client.post("/api/traders", json=body)
    assert r.status_code == 201, r.text
    assert r.json()["sub_account_id"] == subs[1]["id"]


def test_ownership_is_404(system: System, other_user: dict[str, int]) -> None:
    c = system.client
    mine_rec = system.create_recorder("mine", {})
    mine = create(system, {"broker": "paper", "name": "mine", "environment": "paper"})
    mine_sub = mine["sub_accounts"][0]["id"]
    acc_id, rec_id = other_user["account"], other_user["recorder"]

    assert acc_id not in [a["id"] for a in c.get("/api/accounts").json()]
    for method, url in (
        ("GET", f"/api/accounts/{acc_id}"),
        ("GET", f"/api/accounts/{acc_id}/subaccounts"),
        ("POST", f"/api/accounts/{acc_id}/sync"),
        ("DELETE", f"/api/accounts/{acc_id}"),
        ("GET", f"/api/traders/{other_user['trader']}"),
        ("DELETE", f"/api/traders/{other_user['trader']}"),
        ("GET", "/api/accounts/987654"),
    ):
        r = c.request(method, url)
        assert r.status_code == 404, (method, url, r.text)
    r = c.patch(f"/api/traders/{other_user['trader']}", json={"enabled": False})
    assert r.status_code == 404
    assert other_user["trader"] not in [t["id"] for t in c.get("/api/traders").json()]

    cases = (
        ({"recorder_id": rec_id, "account_id": mine["id"]}, "recorder_not_found"),
        ({"recorder_id": mine_rec["id"], "account_id": acc_id}, "account_not_found"),
        (
            {
                "recorder_id": mine_rec["id"],
                "account_id": mine["id"],
                "sub_account_id": other_user["sub"],
            },
            "sub_account_not_found",
        ),
    )
    for body, reason in cases:
        r = c.post("/api/traders", json=body)
        assert r.status_code == 404 and r.json()["detail"]["reason"] == reason, r.text
    # the legitimate link still works
    r = c.post(
        "/api/traders",
        json={"recorder_id": mine_rec["id"], "account_id": mine["id"], "sub_account_id": mine_sub},
    )
    assert r.status_code == 201, r.text
    # and the other user's rows are untouched
    store = Store(system.settings.resolved_database_url())
    try:
        with store.read() as s:
            assert repo.get_trader(s, other_user["trader"]) is not None
            assert repo.get_account(s, acc_id) is not None
    finally:
        store.engine.dispose()
