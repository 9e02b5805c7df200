"""Supervisor: builds the actor tree, watches it and restarts what died.

Ray restarts a crashed actor process by itself (``max_restarts=-1``), about 0.4 s apart and
forever, and never restarts an actor whose constructor raised. The supervisor adds what Ray
lacks: health pings, detection of restarts (the child's ``started`` stamp changes), re-wiring
after a restart (a feed that came back must start its source again), re-creation of a child that
is dead for good, with exponential back-off, and a restart budget after which the child is
marked FAILED and left down (visible in ``/status``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.broker.logins import tradovate_logins
from actors.feed.actor import FeedActor
from actors.recorder.actor import RecorderActor
from actors.runtime import BROKER, FEED, actor_options, host_name

log = logging.getLogger("justtrades.supervisor")

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
RESTART_BUDGET = 10  # restarts inside RESTART_WINDOW_S before a child is FAILED
RESTART_WINDOW_S = 300.0
PING_TIMEOUT_S = 5.0
PAPER_LIMITS = {"paper": (1_000_000, 1.0)}
STARTUP_PING_S = 120.0  # first answer of a new child: constructors load state from the store


@dataclass(slots=True)
class Child:
    name: str
    kind: str
    state: str = "starting"  # starting | running | unavailable | restarting | failed
    restarts: int = 0
    started: float | None = None
    last_ok: float | None = None
    last_error: str | None = None
    backoff_s: float = BACKOFF_START_S
    next_attempt: float = 0.0
    restart_times: list[float] = field(default_factory=list)


class Supervisor:
    """Actor body (async, detached, named ``supervisor``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = config
        self.ns: str = config["namespace"]
        self.children: dict[str, Child] = {}
        self.handles: dict[str, Any] = {}
        self.watch: asyncio.Task[None] | None = None
        self.started = time.time()
        self.logins: dict[str, dict[str, Any]] = {}  # Tradovate broker actors: name -> kwargs

    # -- building -------------------------------------------------------------------------------

    def _host_names(self) -> list[str]:
        return [host_name(i) for i in range(int(self.cfg["recorder_hosts"]))]

    def _create(self, name: str) -> Any:
        c = self.cfg
        if name == FEED:
            targets = [*self._host_names(), BROKER]
            return (
                ray.remote(FeedActor)
                .options(**actor_options(name, self.ns))
                .remote(
                    self.ns,
                    c["feed"],
                    c["symbols"],
                    targets,
                    c["feed_rate_hz"],
                    c["feed_speed"],
                    c["feed_batch_ms"],
                )
            )
        if name in self.logins:
            from actors.broker.actor import BrokerActor

            return (
                ray.remote(BrokerActor)
                .options(**actor_options(name, self.ns))
                .remote(namespace=self.ns, **self.logins[name])
            )
        if name == BROKER:
            from actors.broker.actor import BrokerActor

            return (
                ray.remote(BrokerActor)
                .options(**actor_options(name, self.ns))
                .remote(
                    name=name,
                    kind="paper",
                    slippage_ticks=c["paper_slippage_ticks"],
                    latency_ms=c["paper_latency_ms"],
                    namespace=self.ns,
                    # the paper broker has no broker-side budget: Tradovate's default limits
                    # only slowed it (a 50-account kill took 1 s instead of 4 ms)
                    limits=PAPER_LIMITS,
                )
            )
        index = self._host_names().index(name)
        return (
            ray.remote(RecorderActor)
            .options(**actor_options(name, self.ns))
            .remote(
                index,
                len(self._host_names()),
                c["database_url"],
                c["excursion_flush_s"],
                namespace=self.ns,
            )
        )

    async def start(self) -> dict[str, Any]:
        """Create (or adopt) every child, wire the feed, start watching. Idempotent."""
        self.logins = await asyncio.to_thread(tradovate_logins, self.cfg)
        names = [*self._host_names(), BROKER, *self.logins, FEED]
        for name in names:
            if name not in self.handles:
                self.handles[name] = self._create(name)
                self.children[name] = Child(name, name.split("-")[0])
        for name in names:  # a host loading thousands of pairs takes seconds to answer first
            await self._check(self.children[name], timeout=STARTUP_PING_S)
        await self.handles[FEED].start.remote()
        if self.watch is None or self.watch.done():
            self.watch = asyncio.get_running_loop().create_task(self._watch_loop())
        return await self.tree()

    async def ensure_brokers(self) -> list[str]:
        """Start a broker actor for every Tradovate login added since (an account created or
        synced through the API); returns the names of the Tradovate broker actors."""
        logins = await asyncio.to_thread(tradovate_logins, self.cfg)
        for name, kwargs in logins.items():
            self.logins[name] = kwargs
            if name not in self.handles:
                self.handles[name] = self._create(name)
                self.children[name] = Child(name, "broker")
                await self._check(self.children[name], timeout=STARTUP_PING_S)
        return sorted(logins)

    # -- watching -------------------------------------------------------------------------------

    async def _watch_loop(self) -> None:
        interval = float(self.cfg.get("health_interval_s", 1.0))
        while True:
            await asyncio.sleep(interval)
            for child in list(self.children.values()):
                try:
                    await self._check(child)
                except Exception as exc:  # the watcher itself must never die
                    log.exception("health check of %s failed", child.name)
                    child.last_error = repr(exc)

    async def _check(self, child: Child, timeout: float = PING_TIMEOUT_S) -> None:
        if child.state == "failed":
            return
        now = time.time()
        if child.state == "restarting" and now < child.next_attempt:
            return
        handle = self.handles[child.name]
        try:
            pong = await asyncio.wait_for(handle.ping.remote(), timeout=timeout)
        except ActorDiedError as exc:
            self._recreate(child, repr(exc))
            return
        except (ActorUnavailableError, TimeoutError, RayActorError) as exc:
            child.state, child.last_error = "unavailable", repr(exc)
            return
        started = pong.get("started")
        if child.started is not None and started != child.started:
            self._note_restart(child, now)
            if child.name == FEED:  # re-wire: a restarted feed starts with no source running
                await handle.start.remote()
            elif child.kind == "broker":  # its listeners are gone: hosts subscribe again now
                await self._rewire_broker(child.name)
        child.started, child.last_ok = started, now
        if child.state != "failed":
            child.state = "running"
            child.backoff_s = BACKOFF_START_S

    async def _rewire_broker(self, broker: str) -> None:
        """A restarted broker actor forgot its subscribers and published events to nobody while
        it was down: every host subscribes again and looks up what its pairs missed."""
        hosts = [self.handles[name] for name in self._host_names() if name in self.handles]
        results = await asyncio.gather(
            *(h.rewire.remote(broker) for h in hosts), return_exceptions=True
        )
        for name, result in zip(self._host_names(), results, strict=False):
            if isinstance(result, Exception):
                log.warning("%s not re-wired to %s: %r", name, broker, result)

    def _note_restart(self, child: Child, now: float) -> None:
        child.restarts += 1
        child.restart_times = [t for t in child.restart_times if now - t < RESTART_WINDOW_S]
        child.restart_times.append(now)
        if len(child.restart_times) > RESTART_BUDGET:
            child.state = "failed"
            child.last_error = f"more than {RESTART_BUDGET} restarts in {RESTART_WINDOW_S:.0f}s"
            log.error("%s marked FAILED: %s", child.name, child.last_error)

    def _recreate(self, child: Child, error: str) -> None:
        """A child dead for good (constructor raised, killed): re-create it after back-off."""
        now = time.time()
        child.last_error = error
        if child.state == "restarting" and now < child.next_attempt:
            return
        self._note_restart(child, now)
        if child.state == "failed":
            return
        child.state = "restarting"
        child.next_attempt = now + child.backoff_s
        child.backoff_s = min(child.backoff_s * 2, BACKOFF_MAX_S)
        self.handles[child.name] = self._create(child.name)
        child.started = None

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> dict[str, Any]:
        return {"ok": True, "started": self.started}

    async def tree(self) -> dict[str, Any]:
        return {
            "supervisor": {"started": self.started, "uptime_s": time.time() - self.started},
            "children": [asdict(c) | {"restart_times": None} for c in self.children.values()],
        }

    async def names(self) -> dict[str, Any]:
        return {"hosts": self._host_names(), "feed": FEED, "broker": BROKER}

    async def shutdown(self) -> None:
        if self.watch is not None:
            self.watch.cancel()
        for h in self.handles.values():
            ray.kill(h, no_restart=True)
        self.handles.clear()
