"""The actor tree as a whole: a replay feed reaches the hosts, the supervisor re-creates a child
that died for good, and /status and /metrics show the tree."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import ray

from actors.runtime import FEED, get, host_name
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

BARS = """ts,symbol,open,high,low,close
2026-01-06T15:00:00Z,MNQ1!,21000,21003,20998.5,21002.25
2026-01-06T15:01:00Z,MNQ1!,21002.25,21002.5,20995,20996
2026-01-06T15:00:00Z,MES1!,6000,6001,5999,6000.5
"""


@pytest.fixture(scope="module")
def replay_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    d = tmp_path_factory.mktemp("tree")
    (d / "bars.csv").write_text(BARS)
    url = f"sqlite:///{d / 'jt.db'}"
    with running_system(url, feed=f"replay:{d / 'bars.csv'}", feed_speed=0) as sut:
        yield sut


def wait_for(fn, timeout: float = 30.0, every: float = 0.2):  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = fn()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("condition not met in time")


def test_replay_feed_reaches_every_host(replay_system: System) -> None:
    ns = replay_system.settings.namespace
    feed = get(FEED, ns)
    assert ray.get(feed.drain.remote())
    status = ray.get(feed.status.remote())
    contracts = {s[:3] for s in status["last"]}
    assert contracts == {"MNQ", "MES"}
    # bar expansion visits every tick: 2 MNQ bars + 1 MES bar at tick resolution
    assert status["ticks_in"] > 40
    for i in range(replay_system.settings.recorder_hosts):
        last = ray.get(get(host_name(i), ns).status.remote())["last_prices"]
        mnq = next(v for k, v in last.items() if k.startswith("MNQ"))
        mes = next(v for k, v in last.items() if k.startswith("MES"))
        assert (mnq, mes) == (20996.0, 6000.5)


def test_signal_without_price_fills_at_last_replayed_tick(replay_system: System) -> None:
    rec = replay_system.create_recorder("replayed", {})
    token = rec["webhook_url"].rsplit("/", 1)[1]
    assert ray.get(get(FEED, replay_system.settings.namespace).drain.remote())
    r = replay_system.post_alert(token, '{"action":"sell","ticker":"MNQ1!"}')
    assert r.json()["fills"][0]["price"] == 20996.0 and r.json()["fills"][0]["side"] == "sell"


def test_supervisor_recreates_a_dead_child_and_status_shows_it(replay_system: System) -> None:
    ns = replay_system.settings.namespace
    name = host_name(1)
    ray.kill(get(name, ns), no_restart=True)  # dead for good: Ray will not restart it

    def recreated() -> dict | None:
        tree = replay_system.client.get("/status").json()["tree"]
        child = next(c for c in tree["children"] if c["name"] == name)
        return child if child["state"] == "running" and child["restarts"] >= 1 else None

    child = wait_for(recreated)
    assert child["last_error"] and "ActorDiedError" in child["last_error"]
    assert ray.get(get(name, ns).ping.remote())["ok"]
    status = replay_system.client.get("/status").json()
    assert status["feed"]["source"].startswith("replay:")
    assert len(status["hosts"]) == replay_system.settings.recorder_hosts
    metrics = replay_system.client.get("/metrics").text
    assert f'jt_actor_restarts{{actor="{name}"}}' in metrics
    assert "jt_feed_ticks" in metrics
    assert replay_system.client.get("/health").json()["ok"] is True
