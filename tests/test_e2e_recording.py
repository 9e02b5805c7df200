"""End to end on the real tree (Ray + uvicorn on loopback + SQLite, and PostgreSQL when
reachable): a recorder with two 50 % take-profit targets, a trailing stop and DCA follows buy,
add and opposite signals over a tick stream pushed through the feed; its trades, realised P&L,
worst/best unrealised P&L and exit reasons equal the naive reference's, to the cent."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.instruments import spec_for
from actors.recorder.config import RecorderSettings
from tests.reference.naive import NaiveRecorder
from tests.store_fixtures import BACKENDS, database_url
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

SETTINGS: dict[str, Any] = {
    "sizing": {"initial_size": 2, "add_size": 1},
    "take_profit": {
        "unit": "ticks",
        "targets": [{"value": 16, "trim": 50}, {"value": 120, "trim": 50}],
    },
    "stop_loss": {"unit": "ticks", "value": 80},
    "trailing_stop": {"unit": "ticks", "trigger": 24, "distance": 12},
    "dca": {"unit": "ticks", "step": 20, "add_size": 1, "max_quantity": 4},
}


@pytest.fixture(scope="module", params=BACKENDS)
def system(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with (
        database_url(request.param, tmp_path_factory.mktemp("e2e")) as url,
        running_system(url) as sut,
    ):
        yield sut


def walk(rng: random.Random, start: float, n: int, drift: float, tick: float) -> list[float]:
    """A tick path with a drift (in ticks per step), gaps and flat runs."""
    out, px = [], start
    for _ in range(n):
        step = rng.choice([0, 0, 1, -1, 1, -1, 2, -2]) + (1 if rng.random() < abs(drift) else 0) * (
            1 if drift > 0 else -1
        )
        if rng.random() < 0.03:
            step *= 6  # a gap
        px = round(px + step * tick, 2)
        out.append(px)
    return out


def scenario(tick: float) -> list[tuple[str, Any]]:
    """Signals interleaved with tick segments that drive DCA, TP1, the trailing stop,
    a reversal, and end with a position still open."""
    rng = random.Random(7)
    start = 21000.0
    ev: list[tuple[str, Any]] = []
    seg = walk(rng, start, 40, 0.0, tick)
    ev.append(("ticks", seg))
    ev.append(("signal", {"action": "buy", "price": seg[-1]}))
    seg = walk(rng, seg[-1], 120, -0.6, tick)  # falls through DCA levels
    ev.append(("ticks", seg))
    ev.append(("signal", {"action": "buy", "quantity": 1, "price": seg[-1]}))  # an add
    seg = walk(rng, seg[-1], 110, 0.6, tick)  # TP1, trailing activation
    seg += walk(rng, seg[-1], 200, -0.7, tick)  # pull back into the trailing stop
    ev.append(("ticks", seg))
    ev.append(("signal", {"action": "sell", "price": seg[-1]}))  # opens (or reverses to) a short
    seg = walk(rng, seg[-1], 150, 0.3, tick)
    ev.append(("ticks", seg))
    ev.append(("signal", {"action": "buy", "price": seg[-1]}))  # reverses to a long
    seg = walk(rng, seg[-1], 120, -0.2, tick)
    ev.append(("ticks", seg))
    return ev


def test_recording_matches_reference(system: System) -> None:
    rec = system.create_recorder("e2e", SETTINGS)
    token = rec["webhook_url"].rsplit("/", 1)[1]
    spec = spec_for("MNQ1!")
    ref = NaiveRecorder(RecorderSettings.model_validate(SETTINGS), spec.tick_size, spec.tick_value)
    ts = 1_800_000_000.0
    for kind, payload in scenario(spec.tick_size):
        if kind == "ticks":
            ticks = []
            for px in payload:
                ts += 1.0
                ticks.append({"symbol": "MNQ1!", "price": px, "ts": ts})
                ref.tick(ts, px)
            system.push_ticks(ticks)
        else:
            body = {"ticker": "MNQ1!", **payload}
            r = system.post_alert(token, json.dumps(body))
            assert r.status_code == 200, r.text
            expected = ref.signal(ts, body["action"], body["price"], body.get("quantity"))
            assert r.json()["status"] == expected

    got = system.client.get(f"/api/recorders/{rec['id']}/trades", params={"limit": 1000}).json()
    got.sort(key=lambda t: t["id"])
    want = ref.trades
    reasons = [t.reason for t in want]
    assert {"tp1", "trailing_stop", "reverse"} <= set(reasons), reasons  # the path exercises them
    assert any(t.quantity for t in want)
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        assert (g["side"], g["quantity"], g["reason"]) == (w.side, w.quantity, w.reason)
        assert g["entry_price"] == pytest.approx(float(w.entry_price), abs=1e-9)
        assert g["exit_price"] == pytest.approx(float(w.exit_price), abs=1e-9)
        assert round(g["pnl"], 2) == round(float(w.pnl), 2)
        assert round(g["mfe_usd"], 2) == round(float(w.mfe_usd), 2)
        assert round(g["mae_usd"], 2) == round(float(w.mae_usd), 2)

    # the open position's live excursions
    pos = system.client.get(f"/api/recorders/{rec['id']}/positions").json()
    rp = ref.position()
    assert rp is not None and len(pos) == 1
    assert (pos[0]["side"], pos[0]["quantity"]) == (rp.side, rp.quantity)
    assert round(pos[0]["worst_unrealised"], 2) == round(float(rp.worst_unrealised), 2)
    assert round(pos[0]["best_unrealised"], 2) == round(float(rp.best_unrealised), 2)
    assert pos[0]["worst_unrealised"] < 0  # drawdown is really tracked, never a $0 placeholder

    stats = system.client.get(f"/api/recorders/{rec['id']}/stats").json()
    assert stats["trades"] == len(want)
    assert stats["net_pnl"] == round(float(sum(t.pnl for t in want)), 2)


def test_signals_are_stored_with_status(system: System) -> None:
    rec = system.create_recorder("statuses", {"sizing": {"initial_size": 1}})
    token = rec["webhook_url"].rsplit("/", 1)[1]
    system.push_ticks([{"symbol": "MNQ1!", "price": 21000.0}])
    ok = system.post_alert(token, '{"action":"buy","ticker":"MNQ1!","time":"2026-01-05T15:00:00Z"}')
    assert ok.status_code == 200 and ok.json()["status"] == "applied"
    dup = system.post_alert(
        token, '{"action":"buy","ticker":"MNQ1!","time":"2026-01-05T15:00:00Z"}'
    )
    assert dup.status_code == 200 and dup.json()["status"] == "duplicate"
    bad = system.post_alert(token, '{"action":"hodl","ticker":"MNQ1!"}')
    assert bad.status_code == 400 and bad.json()["reason"] == "unknown_action"
    text = system.post_alert(token, "action=sell;ticker=MNQ1!;", "text/plain")
    assert text.status_code == 200 and text.json()["status"] == "applied"
    unknown = system.post_alert("not-a-token", "{}")
    assert unknown.status_code == 404
    rows = system.client.get(f"/api/recorders/{rec['id']}/signals").json()
    assert [r["status"] for r in rows] == ["applied", "rejected", "duplicate", "applied"]
    assert rows[1]["reason"] == "unknown_action" and "hodl" in rows[1]["body"]


def test_webhooks_reach_the_host_over_its_direct_channel(system: System) -> None:
    """The API and the hosts share this machine: after the first signal (through Ray while
    the channel connects) the host gets them over its channel (actors/channel.py)."""
    rec = system.create_recorder("channel", {"sizing": {"initial_size": 1}})
    token = rec["webhook_url"].rsplit("/", 1)[1]
    system.push_ticks([{"symbol": "MNQ1!", "price": 21000.0}])
    for i in range(20):
        action = "buy" if i % 2 == 0 else "close"
        body = f'{{"action":"{action}","ticker":"MNQ1!","time":"2026-01-05T15:00:{i:02d}Z"}}'
        r = system.post_alert(token, body)
        assert r.status_code == 200 and r.json()["status"] == "applied", r.text
        time.sleep(0.05)
    calls = system.client.get("/status").json()["signal_calls"]
    assert calls["ray"] >= 1 and calls["channel"] >= 1
    rows = system.client.get(f"/api/recorders/{rec['id']}/signals").json()
    assert [r["status"] for r in rows] == ["applied"] * 20


def test_restarted_host_rebuilds_from_store(system: System, tmp_path: Path) -> None:
    """Kill the host process mid-position: Ray restarts it, it reloads the pair from the store
    and the next tick exits it exactly as if nothing had happened."""
    import time

    import ray

    from actors.runtime import get, host_name

    rec = system.create_recorder("restart", {"take_profit": {"targets": [{"value": 8}]}})
    token = rec["webhook_url"].rsplit("/", 1)[1]
    system.push_ticks([{"symbol": "MNQ1!", "price": 21000.0}])
    assert (
        system.post_alert(token, '{"action":"buy","ticker":"MNQ1!"}').json()["status"] == "applied"
    )
    host = get(host_name(rec["id"] % system.settings.recorder_hosts), system.settings.namespace)
    before = ray.get(host.ping.remote())["started"]
    ray.kill(host, no_restart=False)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 60:  # wait for the new process (a new ``started`` stamp)
        try:
            if ray.get(host.ping.remote(), timeout=5)["started"] != before:
                break
        except Exception:
            pass
        time.sleep(0.2)
    else:
        pytest.fail("host did not come back")
    pos = system.client.get(f"/api/recorders/{rec['id']}/positions").json()
    assert len(pos) == 1 and pos[0]["target_prices"] == [21002.0]
    system.push_ticks([{"symbol": "MNQ1!", "price": 21002.0}])
    trades = system.client.get(f"/api/recorders/{rec['id']}/trades").json()
    assert [(t["reason"], t["exit_price"], t["pnl"]) for t in trades] == [("tp1", 21002.0, 4.0)]


def test_filters_through_the_api(system: System) -> None:
    """Filters configured on a recorder act on real webhooks and say why."""
    import time

    system.push_ticks([{"symbol": "MNQ1!", "price": 21000.0}])
    longs = system.create_recorder("long-only", {"filters": {"direction": "long"}})
    tok = longs["webhook_url"].rsplit("/", 1)[1]
    r = system.post_alert(tok, '{"action":"sell","ticker":"MNQ1!"}').json()
    assert (r["status"], r["reason"]) == ("filtered", "direction_long_only")
    assert system.post_alert(tok, '{"action":"buy","ticker":"MNQ1!"}').json()["status"] == "applied"
    r = system.post_alert(tok, '{"action":"sell","ticker":"MNQ1!","price":21001}').json()
    assert r["status"] == "applied" and [f["side"] for f in r["fills"]] == ["sell"]  # closes only
    assert system.client.get(f"/api/recorders/{longs['id']}/positions").json() == []

    off = system.create_recorder("disabled", {})
    system.client.patch(f"/api/recorders/{off['id']}", json={"enabled": False})
    tok = off["webhook_url"].rsplit("/", 1)[1]
    r = system.post_alert(tok, '{"action":"buy","ticker":"MNQ1!"}').json()
    assert (r["status"], r["reason"]) == ("filtered", "disabled")

    capped = system.create_recorder("capped", {"filters": {"max_contracts": 2}})
    tok = capped["webhook_url"].rsplit("/", 1)[1]
    r = system.post_alert(tok, '{"action":"buy","ticker":"MNQ1!","quantity":5}').json()
    assert r["fills"][0]["quantity"] == 2

    delayed = system.create_recorder("delayed", {"filters": {"signal_delay_seconds": 0.5}})
    tok = delayed["webhook_url"].rsplit("/", 1)[1]
    r = system.post_alert(tok, '{"action":"buy","ticker":"MNQ1!"}').json()
    assert (r["status"], r["reason"]) == ("received", "delayed")
    time.sleep(1.0)
    rows = system.client.get(f"/api/recorders/{delayed['id']}/signals").json()
    assert rows[0]["status"] == "applied"
    assert len(system.client.get(f"/api/recorders/{delayed['id']}/positions").json()) == 1


def test_recorder_crud_and_templates(system: System) -> None:
    rec = system.create_recorder("crud", {"take_profit": {"targets": [{"value": 10}]}})
    assert rec["webhook_url"].startswith(system.base_url + "/webhook/")
    assert "{{strategy.position_size}}" in rec["alerts"]["strategy"]
    assert json.loads(rec["alerts"]["indicator"])["ticker"] == "{{ticker}}"
    dup = system.client.post("/api/recorders", json={"name": "crud"})
    assert dup.status_code == 409
    bad = system.client.post("/api/recorders", json={"name": "x", "symbol": "NOPE1!"})
    assert bad.status_code == 422
    bad = system.client.post(
        "/api/recorders", json={"name": "y", "settings": {"take_profit": {"targets": []}}}
    )
    assert bad.status_code == 422
    r = system.client.patch(f"/api/recorders/{rec['id']}", json={"symbol": "MES1!"})
    assert r.status_code == 200 and r.json()["symbol"] == "MES1!"
    assert system.client.delete(f"/api/recorders/{rec['id']}").status_code == 204
    assert system.client.get(f"/api/recorders/{rec['id']}").status_code == 404
    token = rec["webhook_url"].rsplit("/", 1)[1]
    assert system.post_alert(token, '{"action":"buy","ticker":"MNQ1!"}').status_code == 404


def test_reset_history(system: System) -> None:
    rec = system.create_recorder("reset", {})
    tok = rec["webhook_url"].rsplit("/", 1)[1]
    system.push_ticks([{"symbol": "MNQ1!", "price": 21000.0}])
    system.post_alert(tok, '{"action":"buy","ticker":"MNQ1!"}')
    system.post_alert(tok, '{"action":"close","ticker":"MNQ1!","price":21001}')
    system.post_alert(tok, '{"action":"buy","ticker":"MNQ1!"}')
    assert len(system.client.get(f"/api/recorders/{rec['id']}/trades").json()) == 1
    out = system.client.post(f"/api/recorders/{rec['id']}/reset").json()
    assert out["deleted"]["trades"] == 1 and out["deleted"]["signals"] == 3
    assert system.client.get(f"/api/recorders/{rec['id']}/trades").json() == []
    assert system.client.get(f"/api/recorders/{rec['id']}/positions").json() == []
    assert system.client.get(f"/api/recorders/{rec['id']}/stats").json()["trades"] == 0
