"""Load generator of the ingest bench: runs in its own process (never in a server's).

:func:`run_load` posts the :class:`~bench.ingest_mix.Mix` stream with ``httpx.AsyncClient``,
either closed-loop (a fixed number of requests in flight) or open-loop (a fixed offered rate,
latency measured from each request's *scheduled* send time so a stalled server cannot hide its
queue). It records every answer (client-side latency, HTTP status, ``signal_id`` and ``status``
from the body) and, over the measured window only, the CPU seconds of the processes it is told
to watch (the server and its Ray processes) and of itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx

from bench.ingest_mix import Mix, Request

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Connections per ``httpx.AsyncClient``. httpcore's pool does work proportional to its size on
#: every request: one client with 32 connections cost ~3 ms CPU per request here (and capped the
#: generator near 300/s), clients of 8 connections ~0.7 ms. So the load is spread over clients.
CONNS_PER_CLIENT = 8


@dataclass
class LoadSpec:
    base_url: str
    tokens: list[str]
    concurrency: int = 32
    warmup_s: float = 2.0
    duration_s: float = 20.0
    rate: float | None = None
    """Open loop at this many requests/s; ``None`` is closed loop with ``concurrency``."""
    max_in_flight: int = 256
    """Open loop: a request due while this many are in flight is skipped (and counted)."""
    max_requests: int | None = None
    """Stop after this many requests (smoke tests); the window is then the whole run."""
    seed: int = 7
    watch: dict[int, str] = field(default_factory=dict)
    """pid → label: CPU seconds of these processes over the measured window."""
    profile_pid: int | None = None
    """Send SIGUSR1 / SIGUSR2 to this pid at the start / end of the measured window."""
    timeout_s: float = 10.0


class Sample(NamedTuple):
    seq: int
    kind: str
    start: float  # perf_counter of the (scheduled) send
    end: float
    code: int  # HTTP status; 0 = transport error
    signal_id: int | None
    status: str | None  # body "status" (or the transport error's name)
    reason: str | None


@dataclass
class LoadResult:
    samples: list[Sample]
    window: tuple[float, float]
    cpu: dict[str, float]
    """label → CPU seconds over the window (``load generator`` is this process)."""
    skipped: int = 0
    mode: str = "closed"

    @property
    def window_s(self) -> float:
        return self.window[1] - self.window[0]

    def measured(self) -> list[Sample]:
        lo, hi = self.window
        return [s for s in self.samples if lo <= s.start < hi]

    def completed_in_window(self) -> list[Sample]:
        lo, hi = self.window
        return [s for s in self.samples if lo <= s.end <= hi]


def proc_cpu(pid: int) -> float:
    """utime + stime of one process in seconds (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            parts = f.read().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def cpu_snapshot(watch: dict[int, str]) -> dict[str, float]:
    out: dict[str, float] = {"load generator": self_cpu()}
    for pid, label in watch.items():
        out[label] = out.get(label, 0.0) + proc_cpu(pid)
    return out


async def _post(client: httpx.AsyncClient, req: Request, start: float) -> Sample:
    try:
        r = await client.post(
            f"/webhook/{req.token}", content=req.body, headers={"content-type": req.content_type}
        )
        end = time.perf_counter()
        sid = status = reason = None
        with contextlib.suppress(ValueError):
            data: Any = r.json()
            if isinstance(data, dict):
                sid, status, reason = data.get("signal_id"), data.get("status"), data.get("reason")
        return Sample(req.seq, req.kind, start, end, r.status_code, sid, status, reason)
    except httpx.HTTPError as exc:
        return Sample(
            req.seq, req.kind, start, time.perf_counter(), 0, None, type(exc).__name__, None
        )


async def _run(spec: LoadSpec) -> LoadResult:
    mix = Mix(spec.tokens, seed=spec.seed, resend_gap=max(128, 4 * spec.concurrency))
    closed = spec.rate is None
    conns = spec.concurrency if closed else spec.max_in_flight
    n_clients = max(1, -(-conns // CONNS_PER_CLIENT))
    per = -(-conns // n_clients)
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per)
    samples: list[Sample] = []
    counted = spec.max_requests is not None
    begin = time.perf_counter()
    w_start = begin + (0.0 if counted else spec.warmup_s)
    w_end = float("inf") if counted else w_start + spec.duration_s
    marks: dict[str, dict[str, float]] = {}

    def mark(name: str) -> None:
        marks[name] = cpu_snapshot(spec.watch)
        if spec.profile_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(spec.profile_pid, signal.SIGUSR1 if name == "start" else signal.SIGUSR2)

    async def marker() -> None:
        await asyncio.sleep(max(0.0, w_start - time.perf_counter()))
        mark("start")
        if not counted:
            await asyncio.sleep(max(0.0, w_end - time.perf_counter()))
            mark("end")

    def more() -> bool:
        if counted:
            return mix.seq < (spec.max_requests or 0)
        return time.perf_counter() < w_end

    skipped = 0
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=spec.base_url, limits=limits, timeout=spec.timeout_s)
            )
            for _ in range(n_clients)
        ]
        marking = asyncio.create_task(marker())
        if closed:

            async def worker(client: httpx.AsyncClient) -> None:
                while more():
                    req = mix.next()
                    samples.append(await _post(client, req, time.perf_counter()))

            await asyncio.gather(*(worker(clients[i % n_clients]) for i in range(spec.concurrency)))
        else:
            rate = float(spec.rate or 1.0)
            inflight: set[asyncio.Task[None]] = set()

            async def one(client: httpx.AsyncClient, req: Request, due: float) -> None:
                samples.append(await _post(client, req, due))

            k = 0
            while more():
                now = time.perf_counter()
                while begin + k / rate <= now:
                    due = begin + k / rate
                    req = mix.next()
                    k += 1
                    if len(inflight) >= spec.max_in_flight:
                        skipped += 1 if due >= w_start else 0
                        continue
                    task = asyncio.create_task(one(clients[k % n_clients], req, due))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                await asyncio.sleep(max(0.0, begin + k / rate - time.perf_counter()))
            if inflight:
                await asyncio.wait(inflight, timeout=spec.timeout_s + 5)
        if counted:
            w_end = time.perf_counter()
            mark("end")
        marking.cancel()
    start, end = marks.get("start", {}), marks.get("end", {})
    cpu = {label: end[label] - start.get(label, 0.0) for label in end}
    return LoadResult(samples, (w_start, w_end), cpu, skipped, "closed" if closed else "open")


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point for the generator process (picklable arguments and result)."""
    return asyncio.run(_run(spec))
