"""Live pairs: signal → order submitted, and tick → exit order submitted (paper broker).

``python -m bench.live_latency [--quick]``

Real Ray actors in a namespace of their own: one recorder host (``RecorderActor``) and the paper
broker actor, a SQLite store with R recorders each traded by one trader on its own paper account.
Latencies come from timestamps inside the system: an order's ``created_ts`` is the instant its
cause entered the system (the signal's ``received_at``, or the tick's own time) and the broker
actor stamps when it handed the order to the adapter (``BrokerActor.sent_orders``). Both
include the host's commit of the order rows before sending (durable before sent).

(a) **signal → order submitted**: signals alternate ``buy`` / ``close`` per recorder (no
protective stop, so each signal is exactly one market order), sent one at a time as a webhook
would be answered, the way the API's dispatcher sends them (``on_signals`` over the host's
direct channel, :mod:`actors.channel`; ``JT_CHANNELS=0``: through Ray). Baseline in the same
run: a host ``ping`` round trip (through Ray).

(b) **tick → exit order submitted** at a steady 2,000 ticks/s for 30 s: ticks (a ±1-tick
random walk that drifts back into a band of ±8 ticks around where it started, each tick
stamped when generated) go to the host and the paper broker as the feed sends them
(:class:`Sender`, over the targets' direct channels): one batch in flight per target, at most one per coalescing window (the
product's default, 5 ms; ``--batch-ms``), ticks printed meanwhile coalesced into the next
batch. Every recorder
holds a long with a 4-tick take profit and re-enters by signal every 0.25 s once flat, so
exits keep firing: about one burst of 20 (one per account) per re-entry. (A free walk drifted
away from the entries: 9 bursts in 30 s, too few for a p99.) Baseline in the same run: the
same tick stream through a host with no live pairs (its batch round trip).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

from actors.broker.actor import BrokerActor
from actors.channel import Direct
from actors.recorder.actor import RecorderActor
from actors.recorder.config import RecorderSettings, Sizing, TakeProfit, TakeProfitTarget
from actors.runtime import (
    API_CHANNEL,
    BROKER,
    FEED_CHANNEL,
    actor_options,
    host_name,
    tree_class,
)
from actors.settings import Settings
from actors.store import Store, repo
from actors.supervisor import PAPER_LIMITS
from bench.common import Report, machine

SYMBOL = "MNQZ6"
TICK = 0.25
START = 20000.0
SIGNAL_TARGET_MS = 10.0
TICK_TARGET_MS = 20.0
RATE = 2000  # ticks per second
BATCH = 10  # ticks per batch (one batch per 5 ms)


BAND = 8  # ticks: the walk drifts back towards its start beyond this


def step(px: float, centre: float) -> float:
    """One tick of the walk: ±1 tick, biased back towards ``centre`` outside the band."""
    away = (px - centre) / TICK
    up = 0.5 if abs(away) <= BAND else (0.3 if away > 0 else 0.7)
    return px + (TICK if random.random() < up else -TICK)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def build(
    recorders: int,
    with_traders: bool,
    tmp: Path,
    recorder_cls: type = RecorderActor,
    broker_cls: type = BrokerActor,
) -> tuple[Any, Any, Store, list[int]]:
    ns = f"jt-bench-live-{uuid.uuid4().hex[:8]}"
    url = f"sqlite:///{tmp / f'{ns}.db'}"
    store = Store(url)
    store.migrate()
    user = repo.ensure_local_user(store)
    assert user.id is not None
    settings = RecorderSettings(
        sizing=Sizing(allow_add=False),
        take_profit=TakeProfit(targets=[TakeProfitTarget(value=4, trim=100)]),
    )
    rids = []
    for i in range(recorders):
        rec = repo.create_recorder(store, user.id, f"r{i}", SYMBOL, settings)
        assert rec.id is not None
        rids.append(rec.id)
        if with_traders:
            acc = repo.create_account(
                store, user.id, "paper", f"p{i}", "paper", None, [("paper-{account_id}", "P")]
            )
            assert acc.id is not None
            with store.read() as s:
                sub = repo.list_sub_accounts(s, acc.id)[0]
            repo.create_trader(store, user.id, rec.id, acc.id, sub.id)
    broker = (
        tree_class(broker_cls)
        .options(**actor_options(BROKER, ns))
        .remote(name=BROKER, kind="paper", namespace=ns, limits=PAPER_LIMITS)
    )
    host = (
        tree_class(recorder_cls)
        .options(**actor_options(host_name(0), ns))
        .remote(0, 1, url, 1.0, namespace=ns)
    )
    ray.get([broker.ping.remote(), host.ping.remote()])
    return host, broker, store, rids


def signal(host: Any, store: Store, rid: int, action: str) -> Any:
    return host.on_signal.remote(*signal_item(store, rid, action))


def signals(host: Any, items: list[tuple[int, int, dict[str, Any]]]) -> Any:
    """Several stored signals in one host call, as the webhook dispatcher coalesces them."""
    now = time.time()
    return host.on_signals.remote([(sid, rid, {**i, "received_at": now}) for sid, rid, i in items])


def signal_item(store: Store, rid: int, action: str) -> tuple[int, int, dict[str, Any]]:
    now = time.time()
    row, _ = repo.insert_signal(
        store,
        recorder_id=rid,
        raw_body=b"{}",
        content_type=None,
        remote_addr=None,
        dedupe_key=None,
        window_s=0,
        now=now,
    )
    intent = {
        "kind": action,
        "quantity": None,
        "target": None,
        "price": None,
        "symbol": SYMBOL,
        "signal_time": None,
        "received_at": time.time(),
    }
    assert row.id is not None
    return row.id, rid, intent


def walk(px: float, n: int) -> tuple[float, list[float], list[float]]:
    """``n`` ticks of the walk from ``px``, each stamped when printed: (last price, times,
    prices)."""
    tss, prices = [], []
    for _ in range(n):
        px = step(px, START)
        tss.append(time.time())
        prices.append(px)
    return px, tss, prices


def ticks(host: Any, broker: Any, px: float, n: int) -> tuple[float, list[Any]]:
    px, tss, prices = walk(px, n)
    batch = {SYMBOL: (tss, prices)}
    return px, [broker.on_ticks.remote(batch), host.on_ticks.remote(batch)]


class Sender:
    """One feed target, sent to as :meth:`actors.feed.actor.FeedActor._send_loop` does: one
    batch in flight, at most one batch per ``window_s`` counted from the previous batch, ticks
    arriving meanwhile coalesced into the next (a slow target gets bigger batches, not a
    growing queue). Over the target's direct channel once it is up, as the feed's batches go."""

    def __init__(self, handle: Any, window_s: float) -> None:
        self.handle, self.window_s = Direct(handle, FEED_CHANNEL), window_s
        self.tss: list[float] = []
        self.prices: list[float] = []
        self.in_flight: asyncio.Future[Any] | None = None
        self.last_sent = -float("inf")

    def offer(self, tss: list[float], prices: list[float], now: float) -> None:
        self.tss += tss
        self.prices += prices
        if not self.tss or now - self.last_sent < self.window_s:
            return
        if self.in_flight is not None and not self.in_flight.done():
            return
        # as the feed sends them: with when each tick reached it (here: when it was printed)
        batch = {SYMBOL: (self.tss, self.prices)}
        call = self.handle.on_ticks.remote(batch, None, None, {SYMBOL: self.tss})
        self.in_flight = asyncio.ensure_future(call)
        self.tss, self.prices, self.last_sent = [], [], now


async def signal_phase(host: Any, store: Store, rids: list[int], n: int) -> list[float]:
    """(a): ``n`` signals one at a time, alternately buy and close per recorder, each sent as
    the API's webhook dispatcher sends it (``on_signals``, over the host's direct channel once
    it is up). Returns the baseline: a host ``ping`` after each (through Ray: pings are served
    by a concurrency group of their own)."""
    api = Direct(host, API_CHANNEL)
    pings = []
    for i in range(n):
        rid = rids[i % len(rids)]
        action = "buy" if (i // len(rids)) % 2 == 0 else "close"
        await api.on_signals.remote([signal_item(store, rid, action)])
        t0 = time.perf_counter()
        await host.ping.remote()
        pings.append((time.perf_counter() - t0) * 1000)
    return pings


async def stream(
    host: Any, broker: Any, px: float, seconds: float, window: float, reentries: list[Any]
) -> tuple[int, float, float]:
    """(b)'s market: ``RATE`` ticks/s to the host and the broker for ``seconds``, the recorders
    re-entering every 0.25 s. Returns (ticks sent, elapsed s, last price)."""
    start = time.perf_counter()
    sent = 0
    feed = {"host": Sender(host, window), "broker": Sender(broker, window)}
    api = Direct(host, API_CHANNEL)
    pending: list[Any] = []
    last_reentry = start
    while (now := time.perf_counter()) - start < seconds:
        due = int((now - start) * RATE) - sent  # ticks the market printed since
        px, tss, prices = walk(px, due)
        sent += max(0, due)
        for target in feed.values():
            target.offer(tss, prices, now)
        if now - last_reentry > 0.25:  # re-enter whatever took profit
            last_reentry = now
            pending.append(signals(api, reentries.pop()))
        await asyncio.sleep(0.001)
    pending += [t.in_flight for t in feed.values() if t.in_flight is not None]
    await asyncio.gather(*pending)
    return sent, time.perf_counter() - start, px


async def round_trips(host: Any, broker: Any, px: float, n: int) -> tuple[float, list[float]]:
    """The baseline: ``n`` batches of ``BATCH`` ticks, each sent to both and awaited, over the
    same channels as the stream (the first few go through Ray while they connect)."""
    targets = [Direct(broker, FEED_CHANNEL), Direct(host, FEED_CHANNEL)]
    rtts = []
    for _ in range(n):
        px, tss, prices = walk(px, BATCH)
        batch = {SYMBOL: (tss, prices)}
        t0 = time.perf_counter()
        await asyncio.gather(
            *[t.on_ticks.remote(batch, None, None, {SYMBOL: tss}) for t in targets]
        )
        rtts.append((time.perf_counter() - t0) * 1000)
    return px, rtts


def latencies(broker: Any, kind: str) -> list[float]:
    """Milliseconds from cause to submission of orders whose id carries ``kind``."""
    return [ms for _, ms in timed_orders(broker, kind)]


def timed_orders(broker: Any, kind: str) -> list[tuple[float, float]]:
    """(cause time, milliseconds from cause to submission) of orders whose id carries ``kind``."""
    return [
        (created, (sent - created) * 1000)
        for cl, created, sent in ray.get(broker.sent_orders.remote())
        if kind in cl and created > 0
    ]


def bursts(orders: list[tuple[float, float]]) -> list[float]:
    """The slowest order of each burst: orders caused by the same tick (the recorders' exits
    at one price) are one burst, and their latencies rise and fall together."""
    worst: dict[float, float] = {}
    for cause, ms in orders:
        worst[cause] = max(ms, worst.get(cause, 0.0))
    return list(worst.values())


def main(
    argv: list[str] | None = None,
    recorder_cls: type = RecorderActor,
    broker_cls: type = BrokerActor,
    inspect: Callable[[Any, Any], None] | None = None,
) -> None:
    """The bench; ``bench.live_timeline`` passes instrumented actor classes and ``inspect``,
    called with the live host and broker after both phases, before Ray shuts down."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--recorders", type=int, default=20)
    ap.add_argument(
        "--batch-ms",
        type=float,
        default=Settings.model_fields["feed_batch_ms"].default,
        help="the feed's coalescing window (default: the product's, JT_FEED_BATCH_MS)",
    )
    args = ap.parse_args(argv)
    window = args.batch_ms / 1000
    n_signals = 200 if args.quick else 1000
    seconds = 3.0 if args.quick else 30.0
    random.seed(7)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    report = Report("live_latency")
    report.notes.append(str(machine()))
    tmp = Path(tempfile.mkdtemp(prefix="jt-bench-live-"))
    try:
        host, broker, store, rids = build(args.recorders, True, tmp, recorder_cls, broker_cls)
        px = START
        px, refs = ticks(host, broker, px, 1)
        ray.get(refs)

        # (a) signal -> order submitted
        pings = asyncio.run(signal_phase(host, store, rids, n_signals))
        time.sleep(0.5)
        sig = latencies(broker, "-s")
        p50, p99 = pct(sig, 50), pct(sig, 99)
        print(f"signal -> order submitted: n={len(sig)} p50={p50:.2f} ms p99={p99:.2f} ms")
        print(f"  baseline host ping: p50={pct(pings, 50):.2f} ms p99={pct(pings, 99):.2f} ms")
        report.add(
            "signal_to_order_p50",
            p50,
            "ms",
            baseline=pct(pings, 50),
            target=f"p99 <= {SIGNAL_TARGET_MS} ms",
        )
        report.add(
            "signal_to_order_p99",
            p99,
            "ms",
            target=f"<= {SIGNAL_TARGET_MS} ms",
            ok=p99 <= SIGNAL_TARGET_MS,
            baseline=pct(pings, 99),
        )

        # (b) tick -> exit order submitted at a steady 2,000 ticks/s
        for rid in rids:
            ray.get(signal(host, store, rid, "buy"))
        # signal rows stored up front: the driver must not compete with the host for the
        # database during the run (webhook ingest contention is bench.ingest's subject)
        reentries = [
            [signal_item(store, rid, "buy") for rid in rids] for _ in range(int(seconds * 4) + 2)
        ]
        sent, elapsed, px = asyncio.run(stream(host, broker, px, seconds, window, reentries))
        time.sleep(0.5)
        exit_orders = timed_orders(broker, "-x")
        exits = [ms for _, ms in exit_orders]
        per_burst = bursts(exit_orders)
        rate = sent / elapsed
        print(f"ticks sent: {sent} in {elapsed:.1f} s ({rate:.0f}/s); exit orders: {len(exits)}")
        x50, x99 = pct(exits, 50), pct(exits, 99)
        host_lag = ray.get(host.status.remote())["live"]["send_lag_p99_ms"]
        print(
            f"  of which in the host (cause -> handed to Ray), p99 over both phases: {host_lag:.2f} ms"
        )
        print(f"tick -> exit order submitted: p50={x50:.2f} ms p99={x99:.2f} ms")

        # baseline: the same stream through a host without live pairs
        host2, broker2, _store2, _ = build(args.recorders, False, tmp)
        px, rtts = asyncio.run(round_trips(host2, broker2, px, int(seconds * RATE / BATCH / 4)))
        print(
            f"  baseline tick batch round trip: p50={pct(rtts, 50):.2f} ms p99={pct(rtts, 99):.2f} ms"
        )
        report.add(
            "tick_rate", rate, "ticks/s", target=f">= {RATE * 0.95:.0f}", ok=rate >= RATE * 0.95
        )
        report.add("tick_to_exit_p50", x50, "ms", baseline=pct(rtts, 50))
        report.add(
            "tick_to_exit_p99",
            x99,
            "ms",
            target=f"<= {TICK_TARGET_MS} ms",
            ok=x99 <= TICK_TARGET_MS and len(exits) > 0,
            baseline=pct(rtts, 99),
        )
        report.notes.append(
            f"{len(per_burst)} exit bursts (orders caused by one tick); slowest order per "
            f"burst: p50 {pct(per_burst, 50):.1f} ms, p90 {pct(per_burst, 90):.1f} ms, max "
            f"{max(per_burst, default=float('nan')):.1f} ms. The orders of a burst are "
            "correlated, so the order p99 is set by the few slowest bursts"
        )
        if inspect is not None:
            inspect(host, broker)
        report.notes.append(
            f"feed coalescing window {args.batch_ms:g} ms (one batch in flight per target)"
        )
        report.notes.append(
            f"{args.recorders} recorders x 1 paper trader; {len(sig)} signal orders, "
            f"{len(exits)} tick exits; mean signal {statistics.fmean(sig) if sig else 0:.2f} ms"
        )
    finally:
        ray.shutdown()
    report.emit()


if __name__ == "__main__":
    main()
