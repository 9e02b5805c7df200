"""Memory of the whole actor tree at 0, 1,000 and 10,000 recorder pairs.

``python -m bench.memory`` (``--quick`` for a smoke run with 0 and 200 pairs).

Each scale point runs in its own child process with its own Ray, so no point inherits another's
heap or Ray state:

1. the parent creates the recorders directly in a fresh SQLite database through the store
   (``repo.create_recorder``, one write transaction), with realistic settings: take-profit
   targets and a stop on every recorder, trailing / break-even / DCA / filters on some;
2. the child starts the system in-process (Ray + supervisor + hosts + API on loopback, feed
   ``none``), so the hosts load the recorders; it stores one signal row per recorder
   (``repo.insert_signal``, as the webhook does) and applies it through each host's
   ``on_signal`` in batches, opening a position on every recorder; it pushes tick batches
   through ``POST /api/feed/ticks`` so excursions are live, waits for the excursion flusher and
   checks that every position is open in the store;
3. it measures RSS (and PSS, which does not double-count shared pages) of every process of the
   tree: the driver / API process, each of our actors (PIDs from the GCS actor table, matched by
   actor id) and Ray's own processes (every other descendant of the driver: gcs_server, raylet,
   agents, idle workers).

Figures: per component and totals at each point, the marginal cost per pair
``(RSS@N - RSS@0) / N``, and the target check (total including Ray ≤ 1.5 GiB at 10,000 pairs).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import Report, machine, python, rss_bytes
from bench.procs import (
    RUN_ENV,
    cmdline,
    descendants,
    free_port,
    kill_tree,
    pids_with_env,  # noqa: F401  (re-exported: lived here before bench.procs)
    pss_bytes,
    reap_env,
    shutdown_ray_fully,
)

MIB = 1024 * 1024
TARGET_PAIRS = 10_000
TARGET_BYTES = int(1.5 * 1024**3)
POINTS = [0, 1_000, TARGET_PAIRS]
QUICK_POINTS = [0, 200]
SYMBOLS = ["MNQ1!", "MES1!", "NQ1!", "ES1!", "M2K1!", "MYM1!", "CL1!", "GC1!"]
SIGNAL_BATCH = 100  # on_signal calls in flight at once (across hosts); a webhook-like depth:
# 1,000 in flight leaves ~40 MiB more in the driver (Ray's client-side high-water mark)
CHILD_TIMEOUT_S = 900


# -- processes -------------------------------------------------------------------------------------


def ray_process_kind(cmd: str) -> str:
    """A readable name for one of Ray's own processes."""
    argv0 = cmd.split(" ", 1)[0]
    if "gcs_server" in argv0:
        return "gcs_server"
    if argv0.endswith("/raylet") or argv0 == "raylet":
        return "raylet"
    if "DashboardAgent" in cmd or "dashboard/agent.py" in cmd:
        return "dashboard agent"
    if "RuntimeEnvAgent" in cmd or "runtime_env/agent/main.py" in cmd:
        return "runtime env agent"
    if "autoscaler/_private/monitor.py" in cmd:
        return "autoscaler monitor"
    if "log_monitor" in cmd:
        return "log monitor"
    if "dashboard.py" in cmd or "ray::Dashboard" in cmd:
        return "dashboard"
    if cmd.startswith("ray::IDLE"):
        return "idle workers"
    if cmd.startswith("ray::"):
        return "other workers"
    return Path(argv0).name or "?"


# -- the recorders ---------------------------------------------------------------------------------


def recorder_settings(i: int) -> dict[str, Any]:
    """Realistic, varied settings: TP targets and a stop everywhere; trailing, break-even, DCA
    and filters on a share of the recorders (as the JSON the API would store)."""
    from actors.recorder.config import (
        BreakEven,
        Dca,
        Filters,
        RecorderSettings,
        StopLoss,
        TakeProfit,
        TakeProfitTarget,
        TrailingStop,
    )

    if i % 4 == 1:
        tp = TakeProfit(targets=[TakeProfitTarget(value=30)])
    else:
        tp = TakeProfit(
            targets=[TakeProfitTarget(value=20, trim=50), TakeProfitTarget(value=40, trim=50)]
        )
    s = RecorderSettings(
        take_profit=tp,
        stop_loss=StopLoss(value=30),
        trailing_stop=TrailingStop(trigger=24, distance=12) if i % 3 == 0 else None,
        break_even=BreakEven(trigger=16, offset=2) if i % 7 == 0 else None,
        dca=Dca(step=10, add_size=1, max_quantity=3) if i % 5 == 0 else None,
        filters=Filters(cooldown_seconds=30, max_contracts=5) if i % 10 == 0 else Filters(),
    )
    return s.model_dump(mode="json")


def prepare_db(url: str, n: int) -> float:
    """A fresh migrated database with ``n`` recorders, created in one write transaction;
    returns the seconds it took."""
    from actors.store import Store, ensure_local_user, repo

    t0 = time.monotonic()
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    variants = [recorder_settings(i) for i in range(420)]  # lcm(3, 4, 5, 7) * 2
    with store.write() as s:
        for i in range(n):
            sym = SYMBOLS[i % len(SYMBOLS)]
            repo.create_recorder(s, user.id, f"bench-{i:05d}", sym, variants[i % len(variants)])
    store.dispose()
    return time.monotonic() - t0


# -- one scale point -------------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    kind: str  # driver | actor | ray
    pid: int
    rss: int
    pss: int


@dataclass
class PointResult:
    pairs: int
    hosts: int
    open_positions: int
    applied: int
    flushed_positions: int
    seconds: dict[str, float] = field(default_factory=dict)
    driver_rss: dict[str, int] = field(default_factory=dict)  # driver RSS after each phase
    procs: list[Proc] = field(default_factory=list)

    def total(self, kind: str | None = None, metric: str = "rss") -> int:
        return sum(getattr(p, metric) for p in self.procs if kind is None or p.kind == kind)

    def of(self, name: str, metric: str = "rss") -> int:
        return sum(getattr(p, metric) for p in self.procs if p.name == name)

    def names(self, kind: str) -> list[str]:
        return list(dict.fromkeys(p.name for p in self.procs if p.kind == kind))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PointResult:
        procs = [Proc(**p) for p in d.pop("procs")]
        return cls(**d, procs=procs)


def _log(msg: str) -> None:
    print(f"    [memory] {msg}", file=sys.stderr, flush=True)


def actor_pids(namespace: str, names: list[str]) -> dict[str, int]:
    """PIDs of our named actors, from the GCS actor table (no dashboard needed), matched by
    actor id; falls back to the worker's process title when that private API is unavailable."""
    from actors.runtime import get

    out: dict[str, int] = {}
    try:
        from ray._private import state

        for name in names:
            aid = get(name, namespace)._actor_id.hex()
            info = state.actors(actor_id=aid)
            if info.get("Pid"):
                out[name] = int(info["Pid"])
    except Exception as exc:  # pragma: no cover - depends on Ray internals
        _log(f"GCS actor table unavailable ({exc!r}); using process titles")
    if len(out) == len(names):
        return out
    titles = {
        "supervisor": "ray::Supervisor",
        "feed": "ray::FeedActor",
        "broker-paper": "ray::BrokerActor",
    }
    workers = [(pid, cmdline(pid)) for pid in descendants(os.getpid())]
    for name in names:
        if name in out:
            continue
        title = titles.get(name, "ray::RecorderHost")
        match = [pid for pid, cmd in workers if cmd.startswith(title) and pid not in out.values()]
        if match:
            out[name] = match[0]
    return out


def measure_tree(namespace: str, actor_names: list[str]) -> list[Proc]:
    """RSS and PSS of the driver, each of our actors and every other process under the driver."""
    me = os.getpid()
    ours = actor_pids(namespace, actor_names)
    by_pid = {pid: name for name, pid in ours.items()}
    procs: list[Proc] = []

    def add(name: str, kind: str, pid: int) -> None:
        with contextlib.suppress(OSError):  # exited meanwhile
            procs.append(Proc(name, kind, pid, rss_bytes(pid), pss_bytes(pid)))

    add("driver (API)", "driver", me)
    for name in actor_names:
        if name in ours:
            add(name, "actor", ours[name])
    for pid in descendants(me):
        if pid not in by_pid:
            add(ray_process_kind(cmdline(pid)), "ray", pid)
    return procs


def _price_table() -> dict[str, tuple[str, float, float]]:
    """symbol -> (contract, start price, tick size)."""
    from datetime import UTC, datetime

    from actors.feed.actor import START_PRICES
    from actors.instruments import normalize, spec_for

    today = datetime.now(UTC).date()
    out = {}
    for sym in SYMBOLS:
        spec = spec_for(sym)
        out[sym] = (normalize(sym, today), START_PRICES.get(spec.root, 100.0), spec.tick_size)
    return out


def _tick_batches(n_batches: int, per_symbol: int, seed: int = 7) -> list[list[dict[str, Any]]]:
    """Random walks within ±4 ticks of each start price: excursions move on every position,
    no exit level (≥ 10 ticks away) is reached, so every position stays open."""
    rng = random.Random(seed)
    table = _price_table()
    offsets = dict.fromkeys(SYMBOLS, 0)
    batches = []
    t = time.time()
    for _ in range(n_batches):
        ticks = []
        for _k in range(per_symbol):
            t += 0.001
            for sym, (_c, start, tick) in table.items():
                offsets[sym] = max(-4, min(4, offsets[sym] + rng.choice((-1, 1))))
                ticks.append({"symbol": sym, "price": start + offsets[sym] * tick, "ts": t})
        batches.append(ticks)
    return batches


def run_point(
    database_url: str,
    n_pairs: int,
    *,
    hosts: int = 2,
    tick_batches: int = 5,
    ticks_per_symbol: int = 25,
    shutdown_ray: bool | None = None,
) -> PointResult:
    """Start the system on a database prepared by :func:`prepare_db`, open a position on every
    recorder, move prices, wait for the flusher and measure every process of the tree.

    Uses the current Ray runtime when one is initialised (tests), else starts one and shuts it
    down at the end (unless ``shutdown_ray`` is False: the caller does it)."""
    import httpx
    import ray
    import uvicorn
    from sqlalchemy import func
    from sqlmodel import col, select

    from actors.runtime import BROKER, FEED, SUPERVISOR, connect, get, host_name
    from actors.settings import Settings
    from actors.store import Position, Recorder, Store, repo
    from api.app import create_app

    started_ray = not ray.is_initialized()
    if shutdown_ray is None:
        shutdown_ray = started_ray
    port = free_port()
    settings = Settings(
        database_url=database_url,
        namespace=f"jt-bench-mem-{uuid.uuid4().hex[:10]}",
        host="127.0.0.1",
        port=port,
        feed="none",
        recorder_hosts=hosts,
    )
    seconds: dict[str, float] = {}
    driver: dict[str, int] = {}
    t0 = time.monotonic()
    if started_ray:
        # Start Ray on this (long-lived) thread, as create_app's connect() would, but not from
        # a thread-pool worker: Ray starts gcs_server and raylet with PR_SET_PDEATHSIG, which
        # fires when the *thread* that started them exits, and AnyIO retires idle pool threads
        # (the app's boot() is exposed to that; see the report). connect() is then a no-op.
        connect(settings.ray_address, settings.namespace, settings.num_cpus)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ns = settings.namespace
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() - t0 > 300:
                raise RuntimeError("the API did not start")
            time.sleep(0.05)
        handles = [get(host_name(i), ns) for i in range(hosts)]
        ray.get([h.ping.remote() for h in handles], timeout=600)  # constructors loaded the pairs
        seconds["start_and_load"] = time.monotonic() - t0
        driver["started"] = rss_bytes(os.getpid())
        _log(f"{n_pairs} pairs: system up, hosts loaded in {seconds['start_and_load']:.1f}s")

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:

            def push(ticks: list[dict[str, Any]]) -> None:
                r = client.post("/api/feed/ticks", json={"ticks": ticks, "wait": True})
                r.raise_for_status()
                assert r.json()["drained"] is True, r.text

            table = _price_table()
            push([{"symbol": s, "price": p} for s, (_c, p, _t) in table.items()])  # last prices

            # Signals: stored first (as the webhook does), then applied by the owning host.
            t1 = time.monotonic()
            store = Store(settings.resolved_database_url())
            with store.read() as s:
                ids = list(
                    s.exec(
                        select(Recorder.id, Recorder.symbol)
                        .where(col(Recorder.deleted).is_(False))
                        .order_by(col(Recorder.id))
                    )
                )
            now = time.time()
            calls: list[tuple[int, int, dict[str, Any]]] = []
            with store.write() as s:
                for k, (rid, sym) in enumerate(ids):
                    contract, price, _tick = table[sym]
                    kind = "buy" if k % 2 == 0 else "sell"
                    intent = {
                        "kind": kind,
                        "quantity": 1,
                        "target": None,
                        "price": price,
                        "symbol": contract,
                        "signal_time": None,
                        "received_at": now,
                    }
                    body = json.dumps({"action": kind, "ticker": sym, "quantity": 1})
                    row, _dup = repo.insert_signal(
                        s,
                        recorder_id=rid,
                        raw_body=body.encode(),
                        content_type="application/json",
                        remote_addr="127.0.0.1",
                        dedupe_key=None,
                        window_s=0,
                        now=now,
                        parsed={"intent": intent},
                        action=kind,
                        ticker=sym,
                        symbol=contract,
                        price=price,
                        quantity=1,
                    )
                    assert row.id is not None
                    calls.append((row.id, rid, intent))
            seconds["store_signals"] = time.monotonic() - t1
            driver["signals_stored"] = rss_bytes(os.getpid())
            t2 = time.monotonic()
            applied = 0
            for start in range(0, len(calls), SIGNAL_BATCH):
                refs = [
                    handles[rid % hosts].on_signal.remote(sid, rid, intent)
                    for sid, rid, intent in calls[start : start + SIGNAL_BATCH]
                ]
                applied += sum(r["status"] == "applied" for r in ray.get(refs, timeout=600))
            seconds["apply_signals"] = time.monotonic() - t2
            driver["signals_applied"] = rss_bytes(os.getpid())
            _log(
                f"{n_pairs} pairs: {applied} signals applied in {seconds['apply_signals']:.1f}s "
                f"(stored in {seconds['store_signals']:.1f}s)"
            )

            t3 = time.monotonic()
            for batch in _tick_batches(tick_batches, ticks_per_symbol):
                push(batch)
            seconds["ticks"] = time.monotonic() - t3
            time.sleep(2 * settings.excursion_flush_s + 0.5)  # let the flusher write excursions
            status = client.get("/status").json()
            open_positions = int(status["open_positions"])
            with store.read() as s:
                flushed = s.exec(
                    select(func.count())
                    .select_from(Position)
                    .where(Position.side != "flat", col(Position.last_price).is_not(None))
                ).one()
            store.dispose()
            del calls, ids

        gc.collect()
        driver["measured"] = rss_bytes(os.getpid())
        names = [SUPERVISOR, FEED, BROKER, *[host_name(i) for i in range(hosts)]]
        procs = measure_tree(ns, names)
        seconds["total"] = time.monotonic() - t0
        return PointResult(
            n_pairs, hosts, open_positions, applied, int(flushed), seconds, driver, procs
        )
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        try:
            sup = get(SUPERVISOR, ns)
            ray.get(sup.shutdown.remote(), timeout=30)
            ray.kill(sup, no_restart=True)
        except Exception as exc:
            _log(f"tree shutdown: {exc!r}")
        if shutdown_ray:
            ray.shutdown()


# -- the orchestrating parent -----------------------------------------------------------------------


def run_child(n: int, url: str, hosts: int, tag: str) -> tuple[PointResult, list[str], list[str]]:
    """One scale point in a fresh process (and a fresh Ray). Afterwards everything the child
    started is gone or killed. Returns the result, what was still running after the child
    exited (killed here: a leak), and what outlived the child's ``ray.shutdown()`` (killed by
    the child)."""
    env = {**os.environ, RUN_ENV: tag}
    cmd = [python(), "-m", "bench.memory", "--point", str(n), "--db", url, "--hosts", str(hosts)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env, start_new_session=True)
    out = ""
    res: PointResult | None = None
    try:
        out, _ = proc.communicate(timeout=CHILD_TIMEOUT_S)
        for line in out.splitlines():
            if line.startswith("POINT "):
                res = PointResult.from_json(json.loads(line[6:]))
    finally:
        kill_tree(proc)
        matches = [(RUN_ENV, tag)]
        if res is not None:  # the child's raylet: its agents carry RAY_RAYLET_PID, not our tag
            matches += [("RAY_RAYLET_PID", str(p.pid)) for p in res.procs if p.name == "raylet"]
        leaked = reap_env(matches, settle_s=15.0)
        if leaked:
            _log(f"killed {len(leaked)} leftover processes: {leaked}")
    if proc.returncode != 0 or res is None:
        raise RuntimeError(f"point {n} failed (exit {proc.returncode}, result: {res is not None})")
    after_shutdown = [json.loads(ln[8:]) for ln in out.splitlines() if ln.startswith("CLEANUP ")]
    return res, leaked, after_shutdown[0] if after_shutdown else []


def mib(b: float) -> float:
    return b / MIB


def report_points(rep: Report, points: list[PointResult], created_s: dict[int, float]) -> None:
    base = points[0] if points and points[0].pairs == 0 else None

    def add(metric: str, value_bytes: int, p: PointResult, get: Any, **kw: Any) -> None:
        baseline = mib(get(base)) if base is not None and p is not base else None
        rep.add(metric, mib(value_bytes), "MiB", baseline=baseline, **kw)

    for p in points:
        tag = f"{p.pairs:,} pairs"
        if p.pairs:
            rep.add(f"{tag}: create recorders (1 txn)", created_s[p.pairs], "s")
            rep.add(f"{tag}: start + hosts load pairs", p.seconds["start_and_load"], "s")
            rep.add(f"{tag}: apply signals (on_signal)", p.seconds["apply_signals"], "s")
        for name in p.names("driver") + p.names("actor"):
            add(f"{tag}: {name} RSS", p.of(name), p, lambda b, n=name: b.of(n))
        add(f"{tag}: our actors total RSS", p.total("actor"), p, lambda b: b.total("actor"))
        add(f"{tag}: Ray system processes RSS", p.total("ray"), p, lambda b: b.total("ray"))
        target = ""
        ok = None
        if p.pairs == TARGET_PAIRS:
            target, ok = "<= 1,536 MiB (1.5 GiB)", p.total() <= TARGET_BYTES
        add(f"{tag}: total RSS (driver+actors+Ray)", p.total(), p, lambda b: b.total(), target=target, ok=ok)  # fmt: skip
        add(f"{tag}: total PSS (driver+actors+Ray)", p.total(metric="pss"), p, lambda b: b.total(metric="pss"))  # fmt: skip
        ray_parts: dict[str, int] = {}
        for pr in p.procs:
            if pr.kind == "ray":
                ray_parts[pr.name] = ray_parts.get(pr.name, 0) + pr.rss
        parts = ", ".join(f"{k} {mib(v):,.0f}" for k, v in sorted(ray_parts.items()))
        rep.note(
            f"{tag}: Ray processes (MiB RSS): {parts}; open positions {p.open_positions:,}, "
            f"applied {p.applied:,}, positions with flushed excursions {p.flushed_positions:,}"
        )
        if p.pairs and (p.open_positions != p.pairs or p.flushed_positions != p.pairs):
            rep.note(f"{tag}: WARNING not every recorder had a live, flushed position")
    if base is None:
        return
    rep.note(
        f"fixed cost: with 0 pairs the tree already takes {mib(base.total()):,.0f} MiB RSS "
        f"({base.total() / TARGET_BYTES:.0%} of the 1.5 GiB target), "
        f"{mib(base.total(metric='pss')):,.0f} MiB PSS"
    )
    for p in points:
        grew = p.of("gcs_server") - base.of("gcs_server")
        if p.pairs and grew > 8 * MIB:
            rep.note(
                f"{p.pairs:,} pairs: gcs_server grew {mib(grew):,.0f} MiB. It is the number of "
                "actor calls, not pairs: Ray keeps an event record of every task in the GCS "
                "(~3.3 MiB per 1,000 calls, up to task_events_max_num_task_in_gcs = 100,000; "
                "measured separately: plateau ~360 MiB after ~120k calls; 44 MiB flat with "
                "RAY_task_events_report_interval_ms=0)"
            )
    for p in points:
        if not p.pairs:
            continue
        tag = f"{p.pairs:,} pairs"
        hosts_now = sum(p.of(n) for n in p.names("actor") if n.startswith("recorder-host"))
        hosts_base = sum(base.of(n) for n in base.names("actor") if n.startswith("recorder-host"))
        for label, now, then in (
            ("recorder hosts", hosts_now, hosts_base),
            ("driver (API)", p.total("driver"), base.total("driver")),
            ("total", p.total(), base.total()),
        ):
            rep.add(f"{tag}: marginal RSS per pair, {label}", (now - then) / p.pairs / 1024, "KiB")


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.memory")
    ap.add_argument("--quick", action="store_true", help="smoke run: 0 and 200 pairs")
    ap.add_argument("--hosts", type=int, default=2, help="recorder hosts (default 2)")
    ap.add_argument("--points", type=str, help="comma-separated pair counts (default 0,1000,10000)")
    ap.add_argument("--point", type=int, help=argparse.SUPPRESS)  # child mode
    ap.add_argument("--db", type=str, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.point is not None:  # child: one scale point, result on stdout
        res = run_point(args.db, args.point, hosts=args.hosts, shutdown_ray=False)
        print("POINT " + json.dumps(asdict(res)), flush=True)
        left = shutdown_ray_fully()
        print("CLEANUP " + json.dumps(left), flush=True)
        if left:
            _log(f"ray.shutdown() left {len(left)} processes running; killed: {left}")
        return

    points = QUICK_POINTS if args.quick else POINTS
    if args.points:
        points = [int(x) for x in args.points.split(",")]
    m = machine()
    print(f"memory bench: points {points}, {args.hosts} recorder hosts; {m}", flush=True)
    rep = Report("memory")
    tag = uuid.uuid4().hex
    results: list[PointResult] = []
    created: dict[int, float] = {}
    leaks: list[str] = []
    with tempfile.TemporaryDirectory(prefix="jt-bench-mem-") as tmp:
        for n in points:
            url = f"sqlite:///{Path(tmp) / f'mem-{n}.db'}"
            created[n] = prepare_db(url, n)
            print(f"  point {n:,}: {n:,} recorders created in {created[n]:.1f}s", flush=True)
            res, leaked, outlived = run_child(n, url, args.hosts, tag)
            results.append(res)
            leaks += leaked
            if outlived:
                rep.note(
                    f"point {n:,}: {len(outlived)} of Ray's processes outlived ray.shutdown() "
                    f"by 5 s and were killed: {', '.join(outlived)}"
                )
    report_points(rep, results, created)
    rep.add("processes left after each point's child exited", len(leaks), "", target="0", ok=not leaks)  # fmt: skip
    if TARGET_PAIRS not in points:
        rep.note(f"target (total ≤ 1.5 GiB at {TARGET_PAIRS:,} pairs) not checked in this run")
    rep.note(
        "Ray is started on the bench's main thread: the app's boot() starts it from a thread-pool "
        "worker, and gcs_server and raylet (started with PR_SET_PDEATHSIG) are SIGKILLed when "
        "AnyIO retires that thread after >= 10 s idle (reproduced on `justtrades serve`: a burst "
        "of concurrent requests, 12 s idle, one request -> raylet and gcs_server dead)"
    )
    rep.note(
        "RSS counts shared pages (libraries, Ray's shared memory) once per process; PSS splits "
        "them, so total PSS is the better estimate of the machine memory the tree takes"
    )
    rep.emit()


if __name__ == "__main__":
    main()
