"""The TradingView simulator in a background thread, for synchronous callers (Ray tests, tools).

``with TvSimThread(config, symbols=...) as sim:`` runs a :class:`TvSim` on its own event loop in
a daemon thread; :meth:`TvSimThread.call` runs a function on that loop (the simulator's state
belongs to it) and returns its result, awaiting it when it is a coroutine.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from actors.feed.sources.base import Tick
from actors.feed.tv_sim.server import TvSim
from actors.feed.tv_sim.state import SimConfig

__all__ = ["TvSimThread"]


class TvSimThread:
    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        symbols: Mapping[str, float | None] | Iterable[str] = (),
    ) -> None:
        self.sim = TvSim(config, symbols=symbols)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="tv-sim", daemon=True)

    def _main(self) -> None:
        async def run() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            try:
                async with self.sim:
                    self._ready.set()
                    await self._stop.wait()
            except BaseException as exc:
                self._error = exc
                self._ready.set()
                raise

        asyncio.run(run())

    def start(self, timeout_s: float = 15.0) -> TvSimThread:
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"the TradingView simulator did not start: {self._error!r}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)

    def call(self, fn: Callable[[TvSim], Any], timeout_s: float = 10.0) -> Any:
        """``fn(sim)`` on the simulator's loop; a coroutine result is awaited there."""
        assert self._loop is not None

        async def run() -> Any:
            out = fn(self.sim)
            return await out if asyncio.iscoroutine(out) else out

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout_s)

    def publish(self, *ticks: Tick) -> None:
        """Trade prints, in order (TradingView symbols)."""

        async def run(sim: TvSim) -> None:
            for tick in ticks:
                await sim.publish(tick)

        self.call(run)

    @property
    def ws_url(self) -> str:
        return self.sim.ws_url

    @property
    def http_url(self) -> str:
        return self.sim.http_url

    def __enter__(self) -> TvSimThread:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
