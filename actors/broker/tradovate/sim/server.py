"""Running the simulator: in a background thread (tests, local tools) or in the foreground.

:class:`SimServer` starts uvicorn on loopback in a daemon thread, waits until it listens and
exposes the URLs a client needs (REST base, user socket, md socket). One server is one
environment; start two for live and demo.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

import uvicorn

from actors.broker.tradovate.sim.app import create_app
from actors.broker.tradovate.sim.config import SimConfig
from actors.broker.tradovate.sim.core import TradovateSim

__all__ = ["SimServer", "free_port", "listen_socket"]

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def listen_socket(host: str = "127.0.0.1", port: int = 0) -> socket.socket:
    """A socket bound to ``host:port`` (0: any free port), for uvicorn's ``run(sockets=...)``.

    Binding when the port is chosen, not when the server starts, closes the race of
    :func:`free_port`: between choosing a port and binding it, any other socket of the machine
    (an outgoing connection's local port included) could take it ("address already in use",
    seen in CI)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


class SimServer:
    """A simulator on ``host:port`` in a daemon thread; use as a context manager.

    ``sim`` may be passed pre-built (to share a clock or schedule); otherwise one is built from
    ``config`` and the initial fault switches ``faults``. ``walk`` starts the random-walk
    price source (symbol → start price) every ``walk_interval_s``.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        faults: dict[str, Any] | None = None,
        *,
        sim: TradovateSim | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        walk: dict[str, float] | None = None,
        walk_interval_s: float = 1.0,
    ) -> None:
        self.sim = sim or TradovateSim(config, faults)
        self.host = host
        self._sock = listen_socket(host, port or 0)
        self.port = int(self._sock.getsockname()[1])
        self.app = create_app(self.sim, walk=walk, walk_interval_s=walk_interval_s)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=self.port,
                log_level="warning",
                ws="websockets-sansio",
            )
        )
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """REST base, the equivalent of ``https://demo.tradovateapi.com/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def md_base_url(self) -> str:
        """Market-data base, the equivalent of ``https://md.tradovateapi.com/v1``."""
        return f"http://{self.host}:{self.port}/md/v1"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/websocket"

    @property
    def md_ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/md/v1/websocket"

    @property
    def admin_url(self) -> str:
        return f"http://{self.host}:{self.port}/sim"

    def start(self, timeout_s: float = 15.0) -> SimServer:
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            name="tradovate-sim",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Tradovate simulator did not start")
            time.sleep(0.02)
        return self

    def call_in_loop(self, fn: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run ``fn`` on the server's event loop and return its result — the thread-safe way
        for in-process code to touch :attr:`sim` (e.g. ``lambda: sim.push_prices([...])``),
        since the simulator's state is owned by that loop."""
        loop: asyncio.AbstractEventLoop = self.app.state.loop

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(timeout_s)

    def push_prices(self, ticks: list[dict[str, Any]]) -> dict[str, Any]:
        """In-process equivalent of ``POST /sim/prices``."""
        return self.call_in_loop(lambda: self.sim.push_prices(ticks))

    def stop(self, timeout_s: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        self._sock.close()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
