"""Load generator of the ingest bench: runs in its own process (never in a server's).

:func:`run_load` posts the :class:`~bench.ingest_mix.Mix` stream over plain HTTP/1.1 keep-alive
connections, either closed-loop (a fixed number of requests in flight) or open-loop (a fixed
offered rate, latency measured from each request's *scheduled* send time so a stalled server
cannot hide its queue). It records every answer (client-side latency, HTTP status, ``signal_id``
and ``status`` from the body) and, over the measured window only, the CPU seconds of the
processes it is told to watch (the server and its Ray processes) and of itself.

The client is a minimal asyncio protocol (:class:`_Conn`: one request at a time per connection,
``Content-Length`` framing, reconnect when the server closes), not ``httpx``: on a 2-core machine
the generator shares the cores with the server, and ``httpx`` cost 1.2-2 ms of CPU per request
here (more than the bare FastAPI server it measures: the generator, not the server, capped the
baseline). This one costs about a tenth of that.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import time
from dataclasses import dataclass, field
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from bench.ingest_mix import Mix, Request

CLK_TCK = os.sysconf("SC_CLK_TCK")


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


#: Idle connections older than this are not reused (the server's keep-alive timeout is 5 s).
KEEPALIVE_EXPIRY_S = 2.0


class HTTPError(Exception):
    """A transport-level failure (connection refused or lost, timeout, unparsable answer)."""


class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, ``Content-Length`` answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False
        self.idle_since = 0.0  # monotonic time it was last put back in the pool

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HTTPError(f"connection lost: {exc!r}"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            waiter.set_exception(HTTPError("answer without content-length"))
            return
        stop = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(self.buf) < total:
            return
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        if b"\r\nconnection: close" in head:
            self.closed = True
        waiter.set_result((int(head[9:12]), body))

    async def request(self, data: bytes, timeout_s: float) -> tuple[int, bytes]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter = self.waiter = loop.create_future()
        timer = loop.call_later(timeout_s, _expire, waiter)
        self.transport.write(data)
        try:
            return await waiter
        finally:
            timer.cancel()


def _expire(waiter: asyncio.Future[tuple[int, bytes]]) -> None:
    if not waiter.done():
        waiter.set_exception(HTTPError("timeout"))


class Client:
    """A pool of :class:`_Conn` to one server: a request takes an idle one or opens one."""

    def __init__(self, base_url: str, timeout_s: float) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout_s = timeout_s
        self.idle: list[_Conn] = []
        self.conns: list[_Conn] = []
        self.head = f"HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: ".encode()

    def encode(self, req: Request) -> bytes:
        return b"".join(
            (
                b"POST /webhook/",
                req.token.encode(),
                b" ",
                self.head,
                req.content_type.encode(),
                b"\r\nContent-Length: %d\r\n\r\n" % len(req.body),
                req.body,
            )
        )

    async def post(self, req: Request) -> tuple[int, bytes]:
        conn = self._idle_conn()
        if conn is None:
            loop = asyncio.get_running_loop()
            _, conn = await loop.create_connection(_Conn, self.host, self.port)
            self.conns.append(conn)
        try:
            answer = await conn.request(self.encode(req), self.timeout_s)
        except BaseException:
            if conn.transport is not None:
                conn.transport.abort()  # a late answer must not be read as the next one's
            raise
        if not conn.closed:
            conn.idle_since = time.monotonic()
            self.idle.append(conn)
        elif conn.transport is not None:
            conn.transport.close()
        return answer

    def _idle_conn(self) -> _Conn | None:
        """The most recently used idle connection, if the server cannot be closing it: uvicorn
        closes a connection idle for 5 s (``timeout_keep_alive``), and a request written while
        its close is on the way is lost to the client as a transport error the server never
        saw. Like HTTP clients' keep-alive expiry, older idle connections are dropped here."""
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < KEEPALIVE_EXPIRY_S:
                return conn
            if conn.transport is not None:
                conn.transport.close()
        return None

    def close(self) -> None:
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.close()


async def _post(client: Client, req: Request, start: float) -> Sample:
    try:
        code, body = await client.post(req)
    except (OSError, HTTPError, ValueError) as exc:
        return Sample(
            req.seq, req.kind, start, time.perf_counter(), 0, None, type(exc).__name__, None
        )
    end = time.perf_counter()
    sid = status = reason = None
    with contextlib.suppress(ValueError):
        data: Any = json.loads(body)
        if isinstance(data, dict):
            sid, status, reason = data.get("signal_id"), data.get("status"), data.get("reason")
    return Sample(req.seq, req.kind, start, end, code, sid, status, reason)


async def _run(spec: LoadSpec) -> LoadResult:
    mix = Mix(spec.tokens, seed=spec.seed, resend_gap=max(128, 4 * spec.concurrency))
    closed = spec.rate is None
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
    client = Client(spec.base_url, spec.timeout_s)
    try:
        marking = asyncio.create_task(marker())
        if closed:

            async def worker() -> None:
                while more():
                    req = mix.next()
                    samples.append(await _post(client, req, time.perf_counter()))

            await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
        else:
            rate = float(spec.rate or 1.0)
            inflight: set[asyncio.Task[None]] = set()

            async def one(req: Request, due: float) -> None:
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
                    task = asyncio.create_task(one(req, due))
                    inflight.add(task)
                    task.add_done_callback(inflight.discard)
                await asyncio.sleep(max(0.0, begin + k / rate - time.perf_counter()))
            if inflight:
                await asyncio.wait(inflight, timeout=spec.timeout_s + 5)
        if counted:
            w_end = time.perf_counter()
            mark("end")
        marking.cancel()
    finally:
        client.close()
    start, end = marks.get("start", {}), marks.get("end", {})
    cpu = {label: end[label] - start.get(label, 0.0) for label in end}
    return LoadResult(samples, (w_start, w_end), cpu, skipped, "closed" if closed else "open")


def run_load(spec: LoadSpec) -> LoadResult:
    """Entry point for the generator process (picklable arguments and result).

    The generator's garbage collector is off while it runs (its heap frozen first): latency
    counts from the scheduled send to the answer read here, so a collection in this process
    (gen2 pauses of 40-100 ms were logged in it, two inside one open-loop window) was
    counted as the server's latency. A phase allocates a few tens of MB at most."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return asyncio.run(_run(spec))
    finally:
        gc.enable()
        gc.unfreeze()
        gc.collect()
