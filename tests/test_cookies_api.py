"""TradingView cookies over HTTP on the real system (Ray + uvicorn + SQLite), with the TradingView
simulator standing in for tradingview.com: stored sealed and never shown, checked, used by the
feed for real-time data, and their expiry noticed from the feed's behaviour."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.feed.sources.tradingview import tv_symbol
from actors.feed.tv_sim import SimConfig
from actors.feed.tv_sim.thread import TvSimThread
from actors.instruments import normalize
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SESSION, SIGN, TOKEN = "sess-Qv71-never-shown", "sign-Lp09-never-shown", "tok-Xz55-never-shown"
SECRETS = (SESSION, SIGN, TOKEN)
MNQ = normalize("MNQ1!", datetime.now(UTC).date())


def until(cond: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    """The timeout only bounds a failing test; nothing asserts on time."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def sim() -> Iterator[TvSimThread]:
    config = SimConfig(heartbeat_s=0.05, cookie_sessions={SESSION: (SIGN, TOKEN)})
    with TvSimThread(config, symbols={tv_symbol(MNQ): 21000.0}) as s:
        yield s


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cookies") / "var" / "justtrades.db"
    path.parent.mkdir(parents=True)
    return path


@pytest.fixture(scope="module")
def system(sim: TvSimThread, db_path: Path) -> Iterator[System]:
    responses: list[str] = []
    with running_system(
        f"sqlite:///{db_path}",
        feed="tradingview",
        feed_symbols="MNQ1!",
        feed_tradingview_url=sim.ws_url,
        feed_tradingview_www_url=sim.http_url,
        feed_scanner_url=sim.http_url,
        feed_scanner_interval_s=0.1,
        feed_stale_s=1.0,
        feed_symbol_stale_s=0.0,
        feed_recover_s=0.2,
        feed_check_s=0.02,
        feed_auth_retry_s=0.3,
    ) as sut:

        def keep(response: httpx.Response) -> None:
            response.read()
            responses.append(response.text)

        sut.client.event_hooks["response"].append(keep)
        yield sut
    leaked = [r for r in responses if any(s in r for s in SECRETS)]
    assert leaked == [], "a response carried a cookie or token"


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    yield
    assert not [r for r in caplog.records if any(s in r.getMessage() for s in SECRETS)]


def cookies(system: System) -> dict[str, Any]:
    r = system.client.get("/api/feed/cookies")
    assert r.status_code == 200, r.text
    return r.json()


def mnq(system: System) -> dict[str, Any]:
    return system.client.get("/status").json()["feed"]["per_symbol"][MNQ]


def put(system: System, sessionid: str = SESSION, sign: str = SIGN) -> httpx.Response:
    return system.client.put(
        "/api/feed/cookies", json={"sessionid": sessionid, "sessionid_sign": sign}
    )


def test_nothing_stored_means_anonymous_delayed_data(system: System) -> None:
    system.client.delete("/api/feed/cookies")
    got = cookies(system)
    assert got["set"] is False and got["status"] is None
    assert got["feed"]["state"] == "anonymous" and got["feed"]["real_time_token"] is False
    until(lambda: mnq(system)["delayed"] is True, "anonymous data labelled delayed")
    assert system.client.post("/api/feed/cookies/check").status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"sessionid": "has space", "sessionid_sign": SIGN},
        {"sessionid": SESSION + ";evil=1", "sessionid_sign": SIGN},
        {"sessionid": SESSION},
        {"sessionid": SESSION, "sessionid_sign": SIGN, "password": SESSION},
        [SESSION, SIGN],
    ],
)
def test_bad_bodies_name_fields_never_values(system: System, body: Any) -> None:
    r = system.client.put("/api/feed/cookies", json=body)
    assert r.status_code == 422
    assert r.json()["detail"]["reason"] in {"bad_cookies", "unknown_fields"}
    assert SESSION not in r.text and SIGN not in r.text and "has space" not in r.text


def test_stored_sealed_used_for_real_time_then_expiry_is_noticed(
    system: System, sim: TvSimThread, db_path: Path
) -> None:
    r = put(system)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["set"] is True and got["status"] == "valid"  # the feed logged in with them
    assert got["feed"]["state"] == "valid" and got["feed"]["real_time_token"] is True
    raw = (
        sqlite3.connect(db_path).execute("SELECT secret_encrypted FROM feed_credentials").fetchall()
    )
    assert len(raw) == 1 and SESSION.encode() not in raw[0][0] and SIGN.encode() not in raw[0][0]

    # The feed sent the token and TradingView (the simulator) streams real time.
    until(lambda: mnq(system)["delayed"] is False, "real-time data")
    assert TOKEN in sim.call(lambda s: list(s.stats.tokens))
    check = system.client.post("/api/feed/cookies/check").json()
    assert check["status"] == "valid" and check["checked_at"] is not None
    logged_in = lambda s: sum(c.token == TOKEN for c in s.connections)  # noqa: E731
    assert sim.call(logged_in) == 1  # the same token again: no reconnect

    # The session ends at TradingView: the data turns delayed, the feed logs in again, finds
    # no token and says the cookies expired.
    assert sim.call(lambda s: s.expire_session(SESSION)) == 1
    until(lambda: cookies(system)["status"] == "expired", "expiry noticed by the feed")
    got = cookies(system)
    assert got["feed"]["state"] == "expired" and got["feed"]["real_time_token"] is False
    assert "no longer log in" in got["detail"]
    assert mnq(system)["delayed"] is True
    assert system.client.post("/api/feed/cookies/check").json()["status"] == "expired"

    # New cookies (a fresh login) restore real-time data.
    sim.call(lambda s: s.config.cookie_sessions.update({"sess-2": ("sign-2", "tok-2")}))
    assert put(system, "sess-2", "sign-2").json()["status"] == "valid"
    until(lambda: mnq(system)["delayed"] is False, "real-time data again")


def test_delete_forgets_and_goes_anonymous(system: System) -> None:
    sim_cookie = ("sess-3", "sign-3")
    put(system, *sim_cookie)  # unknown to the simulator: the page has no token
    assert cookies(system)["status"] == "expired"
    assert system.client.delete("/api/feed/cookies").status_code == 204
    got = cookies(system)
    assert got["set"] is False and got["feed"]["state"] == "anonymous"
    assert system.client.delete("/api/feed/cookies").status_code == 404


def test_failover_counters_are_exported(system: System) -> None:
    text = system.client.get("/metrics").text
    assert f'jt_feed_failovers_total{{symbol="{MNQ}"}}' in text
    assert f'jt_feed_source_active{{source="tradingview",symbol="{MNQ}"}} 1.0' in text
    assert f'jt_feed_market_open{{symbol="{MNQ}"}}' in text
