"""Where the live latencies go: ``bench.live_latency`` with a timeline of the host and broker.

``python -m bench.live_timeline [bench.live_latency options]``

A diagnostic, not a benchmark (it prints no targets): the live-latency bench runs with actor
classes that record every host call (signals, ticks, broker events), every answer, write, send,
flush and timer beat, each with its wall time and its thread CPU time, and every ``place_many``
the broker receives. Afterwards it prints, for signal orders and for tick exits, the time spent
per stage (cause → host sends, host → broker, broker → order sent), the host writes that stalled
beyond their CPU time, and the host's timeline around the slowest bursts. The recording costs a
few microseconds per event; compare its bench figures with a plain ``bench.live_latency`` run.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import ray

from actors.broker.actor import BrokerActor
from actors.recorder.actor import RecorderActor
from bench import live_latency
from bench.live_latency import pct

Event = tuple[str, float, float, int, float, float, float]
"""(kind, wall start, wall end, count, first cause ts, last cause ts, thread CPU seconds)."""


def _timed(log: list[Event], kind: str, fn: Callable[..., Any], count: Callable[..., int]) -> Any:
    def wrapper(*args: Any) -> Any:
        t, c = time.time(), time.thread_time()
        out = fn(*args)
        log.append((kind, t, time.time(), count(*args), 0.0, 0.0, time.thread_time() - c))
        return out

    return wrapper


class TimedRecorder(RecorderActor):
    """A recorder host actor that records its timeline (:data:`Event`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tl: list[Event] = []
        host, desk = self._host, self._host.desk
        send = desk.send

        def timed_send() -> None:
            n, t = len(desk.outbox), time.time()
            send()
            if n:
                self._tl.append(("send", t, time.time(), n, 0.0, 0.0, -1.0))

        desk.send = timed_send  # type: ignore[method-assign]
        desk._answer = _timed(self._tl, "answer", desk._answer, len)  # type: ignore[method-assign]
        host._write = _timed(self._tl, "write", host._write, lambda fn: 0)  # type: ignore[method-assign]
        host.flush = _timed(self._tl, "flush", host.flush, lambda: 0)  # type: ignore[method-assign]
        host._beat = _timed(self._tl, "beat", host._beat, lambda: 0)  # type: ignore[method-assign]

    async def _call(self, kind: str, n: int, first: float, last: float, coro: Any) -> Any:
        t, c = time.time(), time.thread_time()
        out = await coro
        self._tl.append((kind, t, time.time(), n, first, last, time.thread_time() - c))
        return out

    async def on_ticks(self, batch: Any, *args: Any) -> Any:
        tss = [ts for ts_list, _ in batch.values() for ts in ts_list]
        first, last = (min(tss), max(tss)) if tss else (0.0, 0.0)
        return await self._call("ticks", len(tss), first, last, self._host.on_ticks(batch, *args))

    async def on_signals(self, items: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._call(
            "signals", len(items), 0.0, 0.0, self._host.on_signals(items, *args, **kwargs)
        )

    async def on_broker_events(self, events: Any, *args: Any) -> Any:
        return await self._call(
            "events", len(events), 0.0, 0.0, self._host.on_broker_events(events, *args)
        )

    async def timeline(self) -> list[Event]:
        return self._tl


class TimedBroker(BrokerActor):
    """The paper broker actor, recording when each ``place_many`` arrived (cause: the earliest
    ``created_ts`` of its orders)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tl: list[Event] = []

    async def place_many(self, orders: list[Any], listener: str | None = None) -> Any:
        t = time.time()
        cause = min((o.created_ts for o in orders), default=0.0)
        self._tl.append(("place", t, t, len(orders), cause, cause, -1.0))
        return await super().place_many(orders, listener)

    async def timeline(self) -> list[Event]:
        return self._tl


def stages(host: list[Event], broker: list[Event], sent: list[tuple[str, float, float]],
           kind: str) -> list[tuple[float, float, float, float, float]]:  # fmt: skip
    """Per order group of ``kind`` ("-s" signals, "-x" tick exits), by cause: (total, cause →
    host send starts, send ends → broker place, place → last sent) in ms, and the cause's
    time (a signal's arrival, a tick's print)."""
    groups: dict[float, list[float]] = {}
    for cl, created, at in sent:
        if kind in cl and created > 0:
            groups.setdefault(created, []).append(at)
    sends = [e for e in host if e[0] == "send"]
    places = {e[4]: e for e in broker if e[0] == "place"}
    out = []
    for cause, ats in groups.items():
        place = places.get(cause)
        if place is None:
            continue
        # the host's send that handed these orders over: the last one before they arrived
        send = next((e for e in reversed(sends) if cause <= e[1] and e[2] <= place[1]), None)
        if send is None:
            continue
        out.append(
            (
                (max(ats) - cause) * 1000,
                (send[1] - cause) * 1000,
                (place[1] - send[2]) * 1000,
                (max(ats) - place[1]) * 1000,
                cause,
            )
        )
    return out


def report(host: list[Event], broker: list[Event], sent: list[tuple[str, float, float]]) -> None:
    host.sort(key=lambda e: e[1])
    broker.sort(key=lambda e: e[1])
    names = ("total", "cause -> host send", "host send -> broker", "broker -> last sent")
    for kind, label in (("-s", "signal orders"), ("-x", "tick exits (per burst)")):
        rows = stages(host, broker, sent, kind)
        print(f"\n{label}: {len(rows)} groups, ms p50 / p90 / p99")
        for i, name in enumerate(names):
            vals = [r[i] for r in rows]
            print(f"  {name:<24} {pct(vals, 50):7.2f} {pct(vals, 90):7.2f} {pct(vals, 99):7.2f}")
        for total, *_, cause in sorted(rows, key=lambda r: -r[0])[:3]:
            _around(host + broker, cause, total, "signal" if kind == "-s" else "tick")
    writes = [e for e in host if e[0] == "write"]
    stalls = [e for e in writes if (e[2] - e[1]) - e[6] > 0.003]
    walls = [(e[2] - e[1]) * 1000 for e in writes]
    print(
        f"\nhost writes: {len(writes)}, wall p50/p99 {pct(walls, 50):.2f}/{pct(walls, 99):.2f} ms;"
        f" {len(stalls)} stalled > 3 ms beyond their CPU time"
    )


def _around(events: list[Event], cause: float, total: float, what: str) -> None:
    """The host's and broker's work from 50 ms before a burst's cause to its last order."""
    print(
        f"\n  burst: last order {total:.1f} ms after its {what}; work around it (ms from the {what})"
    )
    for kind, t0, t1, n, *_, cpu in sorted(events, key=lambda e: e[1]):
        if cause - 0.05 < t0 < cause + total / 1000 and (t1 - t0 > 0.0005 or kind != "ticks"):
            used = f"cpu {cpu * 1000:5.1f}" if cpu >= 0 else " " * 9
            print(
                f"    {kind:<8} {(t0 - cause) * 1000:+7.1f}  {(t1 - t0) * 1000:5.1f}  {used} n={n}"
            )


def main() -> None:
    def inspect(host: Any, broker: Any) -> None:
        report(
            ray.get(host.timeline.remote()),
            ray.get(broker.timeline.remote()),
            ray.get(broker.sent_orders.remote()),
        )

    live_latency.main(sys.argv[1:], TimedRecorder, TimedBroker, inspect)


if __name__ == "__main__":
    main()
