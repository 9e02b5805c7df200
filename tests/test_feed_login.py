"""The feed's TradingView login against the simulator's home page and quote socket, with the
cookies sealed in a real SQLite store: every outcome of a re-login, and a refused token that
the live feed survives by going anonymous (no Ray: the LiveFeed runs in the test's loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from actors.feed import cookies as cookie_store
from actors.feed.live import LiveFeed
from actors.feed.login import FeedLogin
from actors.feed.options import FeedOptions
from actors.feed.sources.base import Tick
from actors.feed.tv_sim import SimConfig, TvSim
from actors.store import Store

MNQ = "MNQZ6"
TV_MNQ = "CME_MINI:MNQZ2026"


async def until(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    """The timeout only bounds a failing test; nothing asserts on time."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'jt.db'}"
    Store(url).migrate()
    return url


def store_cookies(url: str, sid: str, sign: str) -> None:
    cookie_store.save_cookies(Store(url), cookie_store.box_for(None, url), sid, sign)


def row_status(url: str) -> str | None:
    return cookie_store.info(Store(url)).status


@pytest.fixture
async def sim() -> AsyncIterator[TvSim]:
    config = SimConfig(heartbeat_s=0.05, cookie_sessions={"s1": ("g1", "tok-1")})
    async with TvSim(config, symbols=[TV_MNQ]) as s:
        yield s


def options(sim: TvSim, db: str, **kw: object) -> FeedOptions:
    base: dict[str, object] = {
        "spec": "tradingview",
        "tradingview_url": sim.ws_url,
        "tradingview_www_url": sim.http_url,
        "scanner_url": sim.http_url,
        "scanner_interval_s": 0.05,
        "database_url": db,
        "stale_s": 0.5,
        "symbol_stale_s": 0.0,
        "recover_s": 0.2,
        "check_s": 0.02,
        "auth_retry_s": 0.0,
    }
    return FeedOptions.from_source(base | kw)


async def test_no_cookies_is_anonymous_without_creating_a_key(sim: TvSim, db: str) -> None:
    login = FeedLogin(options(sim, db))
    assert await login.login() is None
    assert (login.state, sim.stats.pages) == ("anonymous", 0)
    assert not (Path(db.removeprefix("sqlite:///")).parent / "secret.key").exists()


async def test_every_outcome_of_a_relogin(sim: TvSim, db: str) -> None:
    store_cookies(db, "s1", "g1")
    login = FeedLogin(options(sim, db, auth_retry_s=3600.0))
    assert await login.login() == "tok-1"
    assert (login.state, row_status(db)) == ("valid", "valid")
    # Inside the retry window: no new request, just the verdict.
    pages = sim.stats.pages
    assert await login.on_delayed() == (False, None)
    assert (login.state, row_status(db), sim.stats.pages) == ("delayed", "delayed", pages)
    assert await login.on_delayed(refused=True) == (True, None)  # go anonymous
    assert (login.state, login.token) == ("refused", None)

    login = FeedLogin(options(sim, db, auth_retry_s=0.0))
    assert await login.login() == "tok-1"
    assert await login.on_delayed() == (False, None)  # same token: delayed data, no reconnect
    assert login.state == "delayed" and "unchanged" in (login.detail or "")
    await login.on_real_time()
    assert (login.state, row_status(db)) == ("valid", "valid")
    sim.config.cookie_sessions["s1"] = ("g1", "tok-2")  # TradingView issued a new token
    assert await login.on_delayed() == (True, "tok-2")
    await sim.expire_session("s1")
    assert await login.on_delayed() == (True, None)
    assert (login.state, row_status(db)) == ("expired", "expired")
    assert login.token is None


async def test_unreadable_cookies_are_an_error_not_a_crash(sim: TvSim, db: str) -> None:
    store_cookies(db, "s1", "g1")
    other_key = cookie_store.CredentialBox(cookie_store.CredentialBox.generate_key())
    login = FeedLogin(
        options(sim, db, secret_key=other_key.generate_key().decode(), auth_retry_s=0.0)
    )
    assert await login.login() is None
    assert login.state == "error" and "decrypted" in (login.detail or "")
    assert login.retry_due(login.last_attempt or 0.0)


async def test_a_refused_token_leaves_the_feed_on_anonymous_data(sim: TvSim, db: str) -> None:
    sim.config.refuse_bad_tokens = True
    store_cookies(db, "s1", "g1")
    got: list[Tick] = []
    feed = LiveFeed(options(sim, db, auth_retry_s=0.0), [MNQ], got.extend)
    task = asyncio.get_running_loop().create_task(feed.run())
    try:
        tv = lambda: feed.status()["sources"]["tradingview"]  # noqa: E731
        await until(lambda: "tradingview" in feed.sources and tv()["authenticated"], "login")
        await until(lambda: feed.status()["symbols"][MNQ]["sources"]["tradingview"]["usable"], "up")
        await sim.publish(Tick(TV_MNQ, 1_800_000_000, 21000.0))
        await until(lambda: feed.status()["symbols"][MNQ]["delayed"] is False, "real time")
        await sim.expire_session("s1")  # the token is now refused on every connection
        await until(lambda: feed.login.state == "expired", "the expiry noticed")
        await until(lambda: not tv()["authenticated"], "anonymous reconnect")
        await until(lambda: feed.status()["symbols"][MNQ]["source"] == "tradingview", "back")
        await sim.publish(Tick(TV_MNQ, 1_800_000_001, 21000.25))
        await until(lambda: [t.price for t in got][-1:] == [21000.25], "anonymous ticks")
        assert feed.status()["symbols"][MNQ]["delayed"] is True
        assert row_status(db) == "expired"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
