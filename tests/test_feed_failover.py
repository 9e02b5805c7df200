"""The failover policy (pure: explicit clock and market state) and the feed spec grammar."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from actors.feed.failover import FailoverRouter, SourceHealth
from actors.feed.live import market_status
from actors.feed.options import FeedOptions, parse_chain
from actors.feed.sources.base import Tick
from actors.settings import Settings

S = "MNQZ6"
CHAIN = ("tradingview", "scanner")
UP = SourceHealth(True, up_since=0.0)
DOWN = SourceHealth(False, error="connecting")


def router(**kw: float) -> FailoverRouter:
    args = {"symbol_stale_s": 30.0, "recover_s": 5.0, "grace_s": 2.0} | kw
    return FailoverRouter(CHAIN, [S], now=0.0, **args)


def ev(
    r: FailoverRouter, now: float, tv: SourceHealth, sc: SourceHealth, market_open: bool = False
):
    return r.evaluate(S, {"tradingview": tv, "scanner": sc}, now, market_open)


# ----------------------------------------------------------------------------- spec grammar


@pytest.mark.parametrize(
    ("spec", "chain"),
    [
        ("simulated", None),
        ("none", None),
        ("replay:/tmp/x.csv", None),
        ("tradingview", ("tradingview", "scanner")),
        ("tradovate", ("tradovate", "tradingview", "scanner")),
        ("scanner", ("scanner",)),
        ("tradovate>scanner", ("tradovate", "scanner")),
        (" tradingview > tradovate ", ("tradingview", "tradovate")),
    ],
)
def test_chains(spec: str, chain: tuple[str, ...] | None) -> None:
    assert parse_chain(spec) == chain


@pytest.mark.parametrize("spec", ["polygon", "tradingview>tradingview", "scanner>nope", ""])
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_chain(spec)


def test_a_bad_jt_feed_fails_at_startup() -> None:
    with pytest.raises(ValueError, match="unknown feed 'polygon'"):
        Settings(feed="polygon")


def test_options_from_settings_and_from_a_plain_string() -> None:
    opts = FeedOptions.from_source(Settings(feed="tradovate", feed_stale_s=3.0).feed_config())
    assert opts.chain == ("tradovate", "tradingview", "scanner") and opts.stale_s == 3.0
    assert FeedOptions.from_source("simulated") == FeedOptions()
    with pytest.raises(ValueError):
        FeedOptions.from_source({"spec": "tradingview", "bogus": 1})
    shown = repr(FeedOptions.from_source({"spec": "x", "secret_key": "K3Y", "database_url": "pw"}))
    assert "K3Y" not in shown and "pw" not in shown


# ----------------------------------------------------------------------------- routing


def test_only_the_active_source_is_delivered() -> None:
    r = router()
    assert r.on_tick("tradingview", Tick(S, 10.0, 1.0), 10.0) == Tick(S, 10.0, 1.0)
    assert r.on_tick("scanner", Tick(S, 11.0, 2.0), 11.0) is None
    assert r.route_status(S, 12.0)["last_price"] == 1.0


def test_fail_over_at_once_and_back_only_after_recover_s() -> None:
    r = router()
    assert ev(r, 1.0, UP, UP) == (None, None)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    switch, catch_up = ev(r, 2.0, DOWN, UP)
    assert switch is not None and (switch.source_from, switch.source_to) == CHAIN
    assert switch.kind == "failover" and "connecting" in switch.reason
    assert catch_up is None
    assert r.on_tick("scanner", Tick(S, 3.0, 101.0), 3.0) == Tick(S, 3.0, 101.0)
    # The primary comes back; it stays on the scanner until recover_s of health.
    assert ev(r, 4.0, SourceHealth(True, up_since=4.0), UP) == (None, None)
    assert ev(r, 8.9, SourceHealth(True, up_since=4.0), UP) == (None, None)
    assert r.active(S) == "scanner"
    switch, _ = ev(r, 9.0, SourceHealth(True, up_since=4.0), UP)
    assert switch is not None and switch.kind == "failback" and r.active(S) == "tradingview"
    st = r.route_status(S, 9.0)
    assert (st["failovers"], st["failbacks"], st["source"], st["primary"]) == (
        1,
        1,
        "tradingview",
        True,
    )


def test_a_flap_restarts_the_hold_down() -> None:
    r = router()
    ev(r, 1.0, UP, UP)
    ev(r, 2.0, DOWN, UP)
    ev(r, 3.0, UP, UP)
    ev(r, 6.0, DOWN, UP)  # down again before recover_s passed
    ev(r, 7.0, UP, UP)
    assert ev(r, 11.0, UP, UP) == (None, None)  # only 4 s since it came back
    assert ev(r, 12.0, UP, UP)[0] is not None


def test_startup_grace_then_failover_and_nothing_usable_means_stay() -> None:
    r = router(grace_s=2.0)
    assert ev(r, 1.0, DOWN, UP) == (None, None)  # the primary is still connecting
    assert ev(r, 2.5, DOWN, DOWN) == (None, None)  # nothing to switch to
    assert r.active(S) == "tradingview"
    assert r.route_status(S, 2.5)["sources"]["scanner"] == {
        "usable": False,
        "reason": "connecting",
        "delayed": None,
    }
    assert ev(r, 3.0, DOWN, UP)[0] is not None


def test_a_dead_fallback_goes_straight_back_to_a_usable_primary() -> None:
    r = router()
    ev(r, 1.0, UP, UP)
    ev(r, 2.0, DOWN, UP)
    switch, _ = ev(r, 3.0, SourceHealth(True, up_since=3.0), DOWN)
    assert switch is not None and switch.kind == "failback"  # no hold-down: the active is dead


def test_closed_market_is_not_stale_but_open_market_is() -> None:
    r = router(symbol_stale_s=30.0, grace_s=0.0)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    r.on_tick("scanner", Tick(S, 90.0, 100.25), 90.0)  # the fallback saw the price move
    assert ev(r, 100.0, UP, UP, market_open=False) == (None, None)
    switch, catch_up = ev(r, 100.0, UP, UP, market_open=True)
    assert switch is not None and switch.reason.startswith("tradingview: stale")
    assert catch_up == Tick(S, 90.0, 100.25)


def test_a_quiet_market_switches_nothing() -> None:
    # Polls and heartbeats are not data: no source ticked, so none is better than another.
    r = router(symbol_stale_s=30.0, grace_s=0.0)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    r.on_tick("scanner", Tick(S, 2.0, 100.0), 2.0)
    assert ev(r, 100.0, UP, UP, market_open=True) == (None, None)
    assert r.route_status(S, 100.0)["sources"]["scanner"]["reason"].startswith("stale")


def test_symbol_stale_off() -> None:
    r = router(symbol_stale_s=0.0)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    assert ev(r, 10_000.0, UP, UP, market_open=True) == (None, None)


def test_catch_up_delivers_a_move_only_the_standby_saw() -> None:
    r = router()
    ev(r, 1.0, UP, UP)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    r.on_tick("scanner", Tick(S, 1.5, 100.0), 1.5)  # same price: would only repeat
    _, catch_up = ev(r, 2.0, DOWN, UP)
    assert catch_up is None
    r = router()
    ev(r, 1.0, UP, UP)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    r.on_tick("scanner", Tick(S, 1.8, 100.25), 1.8)
    _, catch_up = ev(r, 2.0, DOWN, UP)
    assert catch_up == Tick(S, 1.8, 100.25)
    # ... but not a price older than the last delivered tick.
    r = router()
    ev(r, 1.0, UP, UP)
    r.on_tick("scanner", Tick(S, 0.5, 99.0), 0.5)
    r.on_tick("tradingview", Tick(S, 1.0, 100.0), 1.0)
    assert ev(r, 2.0, DOWN, UP)[1] is None


def test_time_never_runs_backwards_and_no_price_is_lost() -> None:
    r = router()
    out = [r.on_tick("tradingview", Tick(S, ts, px), ts) for ts, px in [(10.0, 1.0), (12.5, 2.0)]]
    ev(r, 1.0, UP, UP)
    ev(r, 13.0, DOWN, UP)
    out.append(r.on_tick("scanner", Tick(S, 12.0, 3.0), 13.1))  # a fallback's clock lags
    out.append(r.on_tick("scanner", Tick(S, 14.0, 4.0), 14.0))
    assert out == [Tick(S, 10.0, 1.0), Tick(S, 12.5, 2.0), Tick(S, 12.5, 3.0), Tick(S, 14.0, 4.0)]
    assert r.route_status(S, 14.0)["clamped"] == 1


# ----------------------------------------------------------------------------- market hours

CT = ZoneInfo("America/Chicago")


@pytest.mark.parametrize(
    ("when", "is_open"),
    [
        ("2025-12-02 10:00", True),  # a normal session
        ("2025-12-02 16:30", False),  # the daily break
        ("2025-12-06 12:00", False),  # Saturday
        ("2025-12-25 10:00", False),  # Christmas
    ],
)
def test_market_status_of_a_feed_symbol(when: str, is_open: bool) -> None:
    now = datetime.fromisoformat(when).replace(tzinfo=CT).timestamp()
    st = market_status("MNQZ5", now)
    assert st["open"] is is_open
    assert st["next_open"] is not None and datetime.fromisoformat(st["next_open"]).timestamp() > now
