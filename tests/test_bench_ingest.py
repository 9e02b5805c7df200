"""Smoke test of the ingest bench's core: real server process, load process, zero-lost check.

Tiny numbers and no timing assertions: it checks that the pieces fit together, that the result
has the expected structure, that the zero-lost check finds nothing missing on a healthy run (and
does find a signal that is not there), and that the server's processes are all gone afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from bench import ingest_load
from bench.ingest import (
    LoadResult,
    StoreCheck,
    check_store,
    cpu_lines,
    running_server,
    session_processes,
    summarize,
)
from bench.ingest_load import Client, LoadSpec, Sample, run_load
from bench.ingest_mix import Mix, Request

pytestmark = [pytest.mark.slow, pytest.mark.ray]

N_REQUESTS = 50


@pytest.fixture(scope="module")
def pool() -> Iterator[ProcessPoolExecutor]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as p:
        yield p


def test_mix_is_deterministic_for_a_seed() -> None:
    tokens = [f"t{i}" for i in range(5)]
    a, b = Mix(tokens, seed=3), Mix(tokens, seed=3)
    ra = [a.next() for _ in range(400)]
    rb = [b.next() for _ in range(400)]
    assert [(r.seq, r.token, r.kind) for r in ra] == [(r.seq, r.token, r.kind) for r in rb]
    kinds = {r.kind for r in ra}
    assert {"indicator", "strategy", "text"} <= kinds
    resends = [r for r in ra if r.kind == "resend"]
    assert all(any(o.body == r.body for o in ra if o.seq < r.seq) for r in resends)


def test_real_system_smoke(tmp_path: Path, pool: ProcessPoolExecutor) -> None:
    with running_server("real", tmp_path, recorders=6) as real:
        watch = session_processes(real.pid)
        assert "api (uvicorn + Ray driver)" in watch.values()
        assert len(real.tokens) == 6
        spec = LoadSpec(real.base_url, real.tokens, concurrency=4, max_requests=N_REQUESTS)
        spec.watch = watch
        result: LoadResult = pool.submit(run_load, spec).result(timeout=180)
    assert not session_processes(real.pid), "server processes left behind"

    assert len(result.samples) == N_REQUESTS
    assert sorted(s.seq for s in result.samples) == list(range(N_REQUESTS))
    assert all(0 < s.code < 500 for s in result.samples), [
        s for s in result.samples if not 0 < s.code < 500
    ]
    assert all(s.signal_id is not None for s in result.samples)
    assert all(s.status in {"applied", "filtered", "ignored", "duplicate", "rejected"}
               for s in result.samples)  # fmt: skip
    assert "load generator" in result.cpu

    stats = summarize("smoke", result)
    assert stats.requests == N_REQUESTS
    assert sum(stats.codes.values()) == N_REQUESTS
    assert stats.errors == 0
    assert stats.p50_ms <= stats.p99_ms <= stats.max_ms
    assert cpu_lines(stats)

    assert real.db_path is not None
    check = check_store(real.db_path, [result])
    assert isinstance(check, StoreCheck)
    assert check.rows == N_REQUESTS  # every request stored, rejected ones included
    assert check.answered_2xx == sum(1 for s in result.samples if 200 <= s.code < 300)
    assert check.answered_2xx > 0
    assert check.lost == 0, check.examples
    assert check.mismatched == 0, check.examples
    assert check.stuck_received == 0

    # the check does notice a 2xx answer whose signal is not in the store
    ghost = Sample(10_000, "indicator", 0.0, 0.0, 200, 10**9, "applied", None)
    broken = LoadResult([*result.samples, ghost], result.window, {})
    assert check_store(real.db_path, [broken]).lost == 1


def test_bare_baseline_smoke(tmp_path: Path, pool: ProcessPoolExecutor) -> None:
    with running_server("bare", tmp_path) as bare:
        spec = LoadSpec(bare.base_url, ["a", "b"], concurrency=4, max_requests=20)
        result: LoadResult = pool.submit(run_load, spec).result(timeout=60)
    assert not session_processes(bare.pid)
    assert [s.code for s in result.samples] == [200] * 20
    assert summarize("bare", result).accepted_per_s > 0


async def test_the_load_client_drops_idle_connections_the_server_may_be_closing() -> None:
    """A keep-alive connection idle near the server's timeout (uvicorn: 5 s) may be closing
    as a request is written on it: the client reuses only recently used ones."""
    hits: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hits.append("conn")
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(2)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client(f"http://127.0.0.1:{port}", 5.0)
    req = Request(0, "tok", b"{}", "application/json", "indicator")
    try:
        assert (await client.post(req))[0] == 200
        assert (await client.post(req))[0] == 200
        assert len(client.conns) == 1  # reused while fresh
        client.idle[0].idle_since = time.monotonic() - ingest_load.KEEPALIVE_EXPIRY_S - 0.1
        assert (await client.post(req))[0] == 200
        assert len(client.conns) == 2 and hits == ["conn", "conn"]  # the stale one dropped
    finally:
        client.close()
        server.close()
        await server.wait_closed()
