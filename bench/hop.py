"""One hop between two actor processes: a Ray actor call against the direct channel.

``python -m bench.hop [--quick]``

Two async Ray actors on this node, as the feed and a host (or a host and the broker) are. The
sender sends a message every 3 ms (a tick batch of 10, stamped when sent), alternately as a Ray
actor call and over the receiver's direct channel (:mod:`actors.channel`, what the tree uses
between processes on one node); the receiver records when each arrived on its event loop. The
figure is the one-way delivery time; the Ray call is the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import ray

from actors.channel import ChannelServer, Direct, channel_info
from bench.common import Report, machine

GAP_S = 0.003


class Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {"ray": [], "channel": []}
        self.server = ChannelServer(self, ("on_batch",))

    async def channel(self) -> tuple[str | None, str]:
        return await channel_info(self.server)

    async def on_batch(self, how: str, sent: float, batch: dict[str, Any]) -> None:
        if how in self.arrivals:  # not the warm-up calls
            self.arrivals[how].append((time.time() - sent) * 1000)

    async def figures(self) -> dict[str, list[float]]:
        return self.arrivals


class Sender:
    async def run(self, receiver: Any, n: int) -> dict[str, int]:
        direct = Direct(receiver, ("on_batch",))
        while not direct.connected:  # the first calls go through Ray while it connects
            await direct.on_batch.remote("warm-up", time.time(), {})
            await asyncio.sleep(0.01)
        batch = {"MNQZ6": ([time.time()] * 10, [20000.25] * 10)}
        for i in range(n):
            if i % 2:
                direct.on_batch.remote("channel", time.time(), batch)
            else:
                receiver.on_batch.remote("ray", time.time(), batch)
            await asyncio.sleep(GAP_S)
        await direct.on_batch.remote("warm-up", time.time(), {})
        return direct.sent


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n = 400 if args.quick else 6000
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    report = Report("hop")
    report.notes.append(str(machine()))
    try:
        receiver = ray.remote(Receiver).remote()
        sender = ray.remote(Sender).remote()
        ray.get(sender.run.remote(receiver, n))
        time.sleep(0.2)
        arrivals = ray.get(receiver.figures.remote())
    finally:
        ray.shutdown()
    via_ray, via_channel = arrivals["ray"], arrivals["channel"]
    for name, values in (("Ray actor call", via_ray), ("direct channel", via_channel)):
        print(
            f"{name}: n={len(values)} p50={pct(values, 50):.3f} ms p90={pct(values, 90):.3f} ms "
            f"p99={pct(values, 99):.3f} ms max={max(values):.3f} ms"
        )
    for q in (50, 99):
        report.add(
            f"one-way hop p{q}, direct channel",
            pct(via_channel, q),
            "ms",
            baseline=pct(via_ray, q),
        )
    report.notes.append(
        f"{n} messages, one every {GAP_S * 1000:g} ms, alternately as a Ray actor call (the "
        "baseline) and over the direct channel; one-way: sent → on the receiver's loop"
    )
    report.emit()


if __name__ == "__main__":
    main()
