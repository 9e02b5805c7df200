"""Tick path: ticks/s through a RecorderHost holding 1,000 and 10,000 open positions over 20
symbols, and the exactness check against per-tick scalar processing (which the property tests
tie to the naive reference).

The host runs in this process (its actor body is a plain class), with its SQLite store, so the
figure includes tick conversion, the columnar update, tick-by-tick walks of triggered positions,
and persisting the exits they produce. As in the actor, the heap is frozen once the host is
constructed (:func:`actors.runtime.freeze_startup_heap`, a no-op outside Ray, so done here by
hand): the positions opened afterwards stay in the collector's reach, and the run's full
collections (reported) walk them as a running host's do. Baseline in the same run: the same positions processed the
obvious way (every tick applied to every position through the scalar core).

    python -m bench.tick_path [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import select

from actors.instruments import CONTRACTS, front_month, spec_for
from actors.recorder.config import RecorderSettings
from actors.recorder.host import RecorderHost
from actors.recorder.pair import Pair
from actors.runtime import freeze_heap
from actors.store import Store, create_recorder, ensure_local_user, insert_signal, models
from bench.common import Report

START = {"MNQ": 21000.0, "NQ": 21000.0, "MES": 6000.0, "ES": 6000.0, "M2K": 2300.0,
         "RTY": 2300.0, "MYM": 44000.0, "YM": 44000.0, "CL": 70.0, "MCL": 70.0, "GC": 2650.0,
         "MGC": 2650.0, "SI": 31.0, "6E": 1.08, "ZB": 117.0, "ZN": 110.0}  # fmt: skip


def symbols() -> list[str]:
    """16 front months plus the next contract of the four busiest roots: 20 symbols."""
    today = datetime.now(UTC).date()
    front = [front_month(root, today) for root in CONTRACTS]
    return front + [front_month(root, today, nth=2) for root in ("MNQ", "MES", "NQ", "ES")]


def settings_for(rng: random.Random) -> dict[str, Any]:
    """Realistic exits. Three quarters are wide (they stay open through the run); a quarter are
    tight, so stops, targets, trailing and DCA fire inside the exactness window too."""
    k = 1 if rng.random() < 0.75 else 8  # divide distances: tight positions
    s: dict[str, Any] = {
        "take_profit": {
            "unit": "ticks",
            "targets": [
                {"value": rng.randint(60, 200) // k, "trim": 50},
                {"value": rng.randint(220, 400) // k},
            ],
        },
        "stop_loss": {"unit": "ticks", "value": rng.randint(120, 400) // k},
    }
    if rng.random() < 0.3:
        s["trailing_stop"] = {
            "unit": "ticks",
            "trigger": rng.randint(80, 200) // k,
            "distance": max(1, rng.randint(20, 60) // k),
        }
    if rng.random() < 0.3:
        s["break_even"] = {"unit": "ticks", "trigger": rng.randint(60, 150) // k, "offset": 2}
    if rng.random() < 0.3:
        step = rng.randint(40, 120) // k
        s["dca"] = {"unit": "ticks", "step": step, "add_size": 1, "max_quantity": 4}
    return s


def tick_stream(
    syms: list[str], n_ticks: int, per_batch: int, seed: int
) -> list[dict[str, tuple[list[float], list[float]]]]:
    """Batches as the feed sends them: per symbol ``per_batch`` ticks of a mean-reverting walk
    (about ±60 ticks, with occasional fast moves), so wide positions stay open and tight ones
    trade in and out of their levels."""
    rng = random.Random(seed)
    px = {s: round(START[spec_for(s).root] / spec_for(s).tick_size) for s in syms}
    anchor = dict(px)
    ts = 1_800_000_000.0
    batches = []
    made = 0
    while made < n_ticks:
        batch = {}
        for s in syms:
            tss, prices = [], []
            tick = spec_for(s).tick_size
            for _ in range(per_batch):
                ts += 0.0001
                step = rng.choice((0, 0, 1, -1, 1, -1, 2, -2))
                if rng.random() < 0.002:
                    step *= 25  # a fast move
                dev = px[s] - anchor[s]  # mean reversion: a day's range, not a random drift
                if rng.random() < min(0.5, abs(dev) * 0.004):
                    step -= 1 if dev > 0 else -1
                px[s] += step
                tss.append(ts)
                prices.append(round(px[s] * tick, 10))
            batch[s] = (tss, prices)
            made += per_batch
        batches.append(batch)
    return batches


def build(
    n_pairs: int, workdir: Path, seed: int
) -> tuple[RecorderHost, list[tuple[int, str, RecorderSettings]]]:
    """A host with ``n_pairs`` recorders, each holding one open position."""
    url = f"sqlite:///{workdir / f'tick_{n_pairs}.db'}"
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    rng = random.Random(seed)
    syms = symbols()
    plan = []
    with store.write() as s:
        for i in range(n_pairs):
            cfg = settings_for(rng)
            rec = create_recorder(s, user.id, f"r{i}", syms[i % len(syms)], cfg)  # type: ignore[arg-type]
            plan.append((rec.id, syms[i % len(syms)], RecorderSettings.model_validate(cfg)))
    host = RecorderHost(0, 1, url, flush_s=1.0)
    freeze_heap()  # what RecorderActor does at the end of its constructor

    async def open_all() -> None:
        now = time.time()
        with store.write() as s:
            rows = [
                insert_signal(
                    s,
                    recorder_id=rid,
                    raw_body=b"{}",
                    content_type=None,
                    remote_addr=None,
                    dedupe_key=None,
                    window_s=0,
                    now=now,
                )[0].id
                for rid, _sym, _cfg in plan
            ]
        for sig_id, (rid, sym, _cfg) in zip(rows, plan, strict=True):
            side = "buy" if rid % 2 else "sell"
            price = START[spec_for(sym).root]
            intent = {"kind": side, "quantity": 2, "target": None, "price": price, "symbol": sym,
                      "signal_time": None, "received_at": 1_800_000_000.0}  # fmt: skip
            r = await host.on_signal(sig_id, rid, intent)
            assert r["status"] == "applied", r

    asyncio.run(open_all())
    return host, plan


def scalar_replay(
    plan: list[tuple[int, str, RecorderSettings]], batches: list[dict]
) -> tuple[list[Pair], list[Any]]:
    """The baseline and the exactness reference: every tick to every position, one by one."""
    pairs = []
    for rid, sym, cfg in plan:
        p = Pair(f"r{rid}:virtual", cfg, spec_for)
        p.on_signal(
            sym, 1_800_000_000.0, "buy" if rid % 2 else "sell", START[spec_for(sym).root], 2
        )
        pairs.append(p)
    by_symbol: dict[str, list[Pair]] = {}
    for p, (_rid, sym, _cfg) in zip(pairs, plan, strict=True):
        by_symbol.setdefault(sym, []).append(p)
    trades = []
    for batch in batches:
        for sym, (tss, prices) in batch.items():
            for p in by_symbol.get(sym, ()):
                for t, px in zip(tss, prices, strict=True):
                    trades.extend(p.on_tick(sym, t, px).trades)
    return pairs, trades


def run_host(host: RecorderHost, batches: list[dict]) -> float:
    async def go() -> float:
        t0 = time.perf_counter()
        for b in batches:
            await host.on_ticks(b)
        host.flush()
        return time.perf_counter() - t0

    return asyncio.run(go())


class FullCollections:
    """The garbage collector's full (generation 2) collections while in use: count, longest."""

    def __init__(self) -> None:
        self.pauses: list[float] = []
        self._start = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.pauses.append(time.perf_counter() - self._start)

    def __enter__(self) -> FullCollections:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> str:
        if not self.pauses:
            return "no full garbage collection during the run"
        return (
            f"{len(self.pauses)} full garbage collection(s) during the run, "
            f"longest {max(self.pauses) * 1000:.0f} ms, {sum(self.pauses) * 1000:.0f} ms in all"
        )


def host_state(host: RecorderHost, plan: list[tuple[int, str, RecorderSettings]]) -> list[dict]:
    host.flush()
    return [host.recorders[rid].pair.snapshot(sym) for rid, sym, _ in plan]


def measure(report: Report, n_pairs: int, n_ticks: int, check_ticks: int, workdir: Path) -> None:
    print(f"-- {n_pairs:,} open positions, {len(symbols())} symbols", flush=True)
    host, plan = build(n_pairs, workdir, seed=n_pairs)
    batches = tick_stream(symbols(), n_ticks, per_batch=25, seed=1)
    with FullCollections() as collections:
        elapsed = run_host(host, batches)
    total = sum(len(t) for b in batches for t, _ in b.values())
    rate = total / elapsed
    open_after = sum(len(c) for c in host.columns.values())
    report.add(
        f"host ticks/s @ {n_pairs:,} positions",
        rate,
        "ticks/s",
        "≥ 100,000 @ 10k",
        ok=rate >= 100_000 if n_pairs >= 10_000 else None,
    )
    report.note(
        f"{n_pairs:,} positions: {total:,} ticks in {elapsed:.2f}s, {host.counters['trades']} exits, {open_after:,} still open"
    )
    report.note(f"{n_pairs:,} positions: {collections.summary()}")

    # exactness and the per-tick baseline on a prefix of the same stream
    host2, _ = build(n_pairs, workdir / "check", seed=n_pairs)
    prefix, done = [], 0
    for b in batches:
        if done >= check_ticks:
            break
        prefix.append(b)
        done += sum(len(t) for t, _ in b.values())
    run_host(host2, prefix)
    t0 = time.perf_counter()
    pairs, ref_trades = scalar_replay(plan, prefix)
    base_elapsed = time.perf_counter() - t0
    base_rate = done / base_elapsed
    report.add(f"per-tick baseline ticks/s @ {n_pairs:,}", base_rate, "ticks/s")
    report.add(f"columnar speed-up @ {n_pairs:,}", rate / base_rate, "x", baseline=None)
    states = host_state(host2, plan)
    ref_states = [p.snapshot(sym) for p, (_r, sym, _c) in zip(pairs, plan, strict=True)]
    mismatched = sum(
        1
        for a, b in zip(states, ref_states, strict=True)
        if (a["pos"], a["exits"]) != (b["pos"], b["exits"])
    )
    with host2.store.read() as sess:
        got = sorted(
            (t.symbol, t.closed_at, t.reason, t.exit_price, t.pnl, t.quantity)
            for t in sess.exec(select(models.Trade)).all()
        )
    want = sorted(
        (t.symbol, t.close_ts, t.reason, float(t.exit_price), float(t.pnl), t.quantity)
        for t in ref_trades
    )
    report.add(
        f"exactness: positions differing @ {n_pairs:,}",
        mismatched,
        "pairs",
        "0",
        ok=mismatched == 0,
    )
    report.add(
        f"exactness: trades differing @ {n_pairs:,}",
        len(set(got) ^ set(want)),
        "trades",
        "0",
        ok=got == want,
    )
    report.note(
        f"exactness checked over the first {done:,} ticks: {len(want)} exits in the reference"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    report = Report("tick_path")
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        (work / "check").mkdir()
        if args.quick:
            measure(report, 200, 20_000, 5_000, work)
        else:
            measure(report, 1_000, 200_000, 20_000, work)
            measure(report, 10_000, 400_000, 4_000, work)
    report.emit()


if __name__ == "__main__":
    main()
