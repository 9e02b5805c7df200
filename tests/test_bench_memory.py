"""Smoke test of the memory bench's core with tiny numbers: prepare a database with 20
recorders, start the tree in-process, open a position on each, move prices, measure every
process. Checks the result's structure and consistency; no memory or timing assertions."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from sqlmodel import select

from actors.recorder.config import RecorderSettings
from actors.runtime import BROKER, FEED, SUPERVISOR, host_name
from actors.store import Recorder, Store
from bench.common import Report
from bench.memory import PointResult, prepare_db, ray_process_kind, report_points, run_point
from tests.system import ensure_ray

pytestmark = [pytest.mark.slow, pytest.mark.ray]

PAIRS = 20


def test_prepared_recorders_have_valid_varied_settings(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mem.db'}"
    prepare_db(url, PAIRS)
    store = Store(url)
    with store.read() as s:
        rows = list(s.exec(select(Recorder)))
    store.dispose()
    assert len(rows) == PAIRS
    settings = [RecorderSettings.model_validate(r.settings) for r in rows]
    assert all(st.take_profit is not None and st.stop_loss is not None for st in settings)
    assert any(st.trailing_stop is not None for st in settings)
    assert any(st.dca is not None for st in settings)
    assert len({r.symbol for r in rows}) > 1


def test_ray_process_names() -> None:
    assert ray_process_kind("/x/ray/core/src/ray/gcs/gcs_server --log_dir=/tmp") == "gcs_server"
    assert ray_process_kind("/x/ray/core/src/ray/raylet/raylet --raylet_socket_name=s") == "raylet"
    assert ray_process_kind("ray::IDLE") == "idle workers"
    assert ray_process_kind("ray::DashboardAgent") == "dashboard agent"


def test_memory_point_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ensure_ray()
    url = f"sqlite:///{tmp_path / 'mem.db'}"
    prepare_db(url, PAIRS)
    res = run_point(url, PAIRS, hosts=2, tick_batches=2, ticks_per_symbol=5)

    assert res.pairs == PAIRS and res.hosts == 2
    assert res.applied == PAIRS
    assert res.open_positions == PAIRS
    assert res.flushed_positions == PAIRS

    actors = {p.name: p for p in res.procs if p.kind == "actor"}
    assert set(actors) == {SUPERVISOR, FEED, BROKER, host_name(0), host_name(1)}
    assert len({p.pid for p in actors.values()}) == len(actors)
    drivers = [p for p in res.procs if p.kind == "driver"]
    assert [p.pid for p in drivers] == [os.getpid()]
    ray_names = {p.name for p in res.procs if p.kind == "ray"}
    assert {"raylet", "gcs_server"} <= ray_names
    assert all(0 < p.pss <= p.rss for p in res.procs)
    assert res.total() == sum(res.total(k) for k in ("driver", "actor", "ray"))
    assert res.total(metric="pss") <= res.total()
    assert {"start_and_load", "apply_signals", "total"} <= set(res.seconds)
    assert set(res.driver_rss) == {"started", "signals_stored", "signals_applied", "measured"}

    # the child process hands its result over as JSON
    assert PointResult.from_json(json.loads(json.dumps(asdict(res)))) == res

    # reporting: a (synthetic) 0-pair baseline gives baselines and marginal figures
    base = replace(res, pairs=0, applied=0, open_positions=0, flushed_positions=0)
    rep = Report("memory")
    report_points(rep, [base, res], {PAIRS: 0.1})
    rep.emit()
    out = capsys.readouterr().out
    result = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
    figs = {f["metric"]: f for f in result["figures"]}
    total = figs[f"{PAIRS} pairs: total RSS (driver+actors+Ray)"]
    assert total["unit"] == "MiB" and total["baseline"] is not None
    assert total["value"] == pytest.approx(res.total() / 2**20)
    assert f"{PAIRS} pairs: marginal RSS per pair, total" in figs
    assert f"0 pairs: {host_name(0)} RSS" in figs
