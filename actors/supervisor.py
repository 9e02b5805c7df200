"""Supervisor: builds the actor tree, watches it, restarts what died and gives up with reason.

Ray restarts a crashed actor process by itself (``max_restarts=-1``), about 0.4 s apart and
forever, and never restarts an actor whose constructor raised. The supervisor adds what Ray
lacks:

* health pings (in every actor's ``health`` concurrency group, so they answer while the actor is
  busy); a child whose default loop has not run for ``stall_after_s`` shows as ``stalled``;
* admission (:meth:`Supervisor.admit`, called from every tree actor's constructor through
  :func:`actors.runtime.admit`): exponential back-off for restarts close together and a restart
  budget (:mod:`actors.restarts`). A refused constructor raises, so Ray marks the actor DEAD and
  the crash loop ends; the ledger of admissions is the one count of restarts per child;
* re-wiring after a restart (a feed that came back must start its source again; a restarted
  broker's subscribers subscribe again) and re-creation of a child that is dead for good;
* FAILED, when the budget is spent: the child stays down (killed), is shown in ``/status`` and
  ``/metrics``, and a FAILED broker actor HALTs the live pairs trading through it. A person
  brings it back with :meth:`Supervisor.restart_child` (a host then loads its live pairs HALTED).

Config keys (besides the tree's): ``health_interval_s``, ``stall_after_s`` and the back-off keys
of :class:`actors.restarts.Policy`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass
from typing import Any

import ray
from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

from actors.broker.logins import tradovate_logins
from actors.feed.actor import FeedActor
from actors.recorder.actor import RecorderActor
from actors.restarts import (  # noqa: F401  (budget constants re-exported)
    BACKOFF_MAX_S,
    BACKOFF_START_S,
    RESTART_BUDGET,
    RESTART_WINDOW_S,
    Ledger,
    Policy,
)
from actors.runtime import BROKER, FEED, HEALTH, Beat, actor_options, host_name, tree_class

log = logging.getLogger("justtrades.supervisor")

PING_TIMEOUT_S = 5.0
PAPER_LIMITS = {"paper": (1_000_000, 1.0)}
STARTUP_PING_S = 120.0  # first answer of a new child: constructors load state from the store
STALL_AFTER_S = 10.0  # default loop silent this long (ping still answering): ``stalled``
NAME_RELEASE_S = 10.0  # wait at most this long for Ray to release a dead actor's name


@dataclass(slots=True)
class Child:
    name: str
    kind: str  # recorder | broker | feed
    state: str = "starting"  # starting | running | stalled | unavailable | restarting | failed
    started: float | None = None
    last_ok: float | None = None
    last_error: str | None = None
    loop_lag_s: float | None = None
    admitted: bool | None = None  # its constructor got the supervisor's answer in time
    fresh: bool = False  # a new actor (new id) that has not answered yet: re-wire on its answer


class Supervisor:
    """Actor body (async, detached, named ``supervisor``; remote via ``tree_class``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = config
        self.ns: str = config["namespace"]
        self.children: dict[str, Child] = {}
        self.handles: dict[str, Any] = {}
        self.ledgers: dict[str, Ledger] = {}
        self.policy = Policy.from_config(config)
        self.stall_after_s = float(config.get("stall_after_s", STALL_AFTER_S))
        self.locks: dict[str, asyncio.Lock] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.watch: asyncio.Task[None] | None = None
        self.started = time.time()
        self.logins: dict[str, dict[str, Any]] = {}  # Tradovate broker actors: name -> kwargs
        self._beat = Beat().start()

    # -- building -------------------------------------------------------------------------------

    def _host_names(self) -> list[str]:
        return [host_name(i) for i in range(int(self.cfg["recorder_hosts"]))]

    def _create(self, name: str, **extra: Any) -> Any:
        """Get or create ``name``; ``extra``: constructor keywords for this creation only."""
        c = self.cfg
        if name == FEED:
            targets = [*self._host_names(), BROKER]
            return (
                tree_class(FeedActor)
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
        if name in self.logins or name == BROKER:
            from actors.broker.actor import BrokerActor

            if name in self.logins:
                kwargs = self.logins[name]
            else:
                kwargs = {
                    "name": name,
                    "kind": "paper",
                    "slippage_ticks": c["paper_slippage_ticks"],
                    "latency_ms": c["paper_latency_ms"],
                    # the paper broker has no broker-side budget: Tradovate's default limits
                    # only slowed it (a 50-account kill took 1 s instead of 4 ms)
                    "limits": PAPER_LIMITS,
                }
            return (
                tree_class(BrokerActor)
                .options(**actor_options(name, self.ns))
                .remote(namespace=self.ns, **kwargs)
            )
        index = self._host_names().index(name)
        return (
            tree_class(RecorderActor)
            .options(**actor_options(name, self.ns))
            .remote(
                index,
                len(self._host_names()),
                c["database_url"],
                c["excursion_flush_s"],
                namespace=self.ns,
                **extra,
            )
        )

    def _add(self, name: str, kind: str) -> None:
        """Adopt ``name`` if it runs (a supervisor restarted; its next start is a restart),
        else create it (its constructor's admission is its first start)."""
        try:
            self.handles[name] = ray.get_actor(name, namespace=self.ns)
            ledger = self._ledger(name)
            ledger.go_at = ledger.go_at or time.time()
        except ValueError:
            self.handles[name] = self._create(name)
        self.children[name] = Child(name, kind)

    async def _spawn(self, name: str, old: Any, **extra: Any) -> Any:
        """Create ``name`` anew once Ray has released the name of the dead actor ``old`` (it
        does so asynchronously; meanwhile get-or-create would hand back the dead actor)."""
        deadline = time.monotonic() + NAME_RELEASE_S
        while time.monotonic() < deadline:
            try:
                current = ray.get_actor(name, namespace=self.ns)
            except ValueError:
                break
            if current._actor_id != old._actor_id:
                return current  # somebody re-created it meanwhile: adopt that one
            await asyncio.sleep(0.1)
        return self._create(name, **extra)

    async def start(self) -> dict[str, Any]:
        """Create (or adopt) every child, wire the feed, start watching. Idempotent."""
        self.logins = await asyncio.to_thread(tradovate_logins, self.cfg)
        names = [*self._host_names(), BROKER, *self.logins, FEED]
        for name in names:
            if name not in self.handles:
                self._add(name, name.split("-")[0])
        for name in names:  # a host loading thousands of pairs takes seconds to answer first
            await self._guarded(self.children[name], STARTUP_PING_S)
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
                self._add(name, "broker")
                await self._guarded(self.children[name], STARTUP_PING_S)
        return sorted(logins)

    # -- admission ------------------------------------------------------------------------------

    def _ledger(self, name: str) -> Ledger:
        ledger = self.ledgers.get(name)
        if ledger is None:
            ledger = self.ledgers[name] = Ledger()
        return ledger

    async def admit(self, name: str) -> dict[str, Any]:
        """Called (through :func:`actors.runtime.admit`) by every constructor in the tree:
        wait ``delay_s`` before starting, or refuse. Runs in the default group, whose loop
        never blocks (``start`` awaits its children's pings while they ask here)."""
        ledger = self._ledger(name)
        decision = ledger.admit(time.time(), self.policy)
        child = self.children.get(name)
        if decision.restart:
            log.warning("%s restart %d: %s", name, ledger.restarts, decision.as_dict())
        if child is not None:
            if not decision.admitted:
                self._background(self._fail(child, decision.reason or "restart budget spent"))
            elif decision.delay_s > 0:
                child.state = "restarting"
        return decision.as_dict()

    def _background(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)  # referenced until done, so it is not garbage-collected
        task.add_done_callback(self.tasks.discard)

    # -- watching -------------------------------------------------------------------------------

    def _lock(self, name: str) -> asyncio.Lock:
        lock = self.locks.get(name)
        if lock is None:
            lock = self.locks[name] = asyncio.Lock()
        return lock

    async def _watch_loop(self) -> None:
        interval = float(self.cfg.get("health_interval_s", 1.0))
        while True:
            await asyncio.sleep(interval)
            children = list(self.children.values())
            await asyncio.gather(*(self._guarded(c, PING_TIMEOUT_S, wait=False) for c in children))

    async def _guarded(self, child: Child, timeout: float, wait: bool = True) -> None:
        """One check at a time per child (a slow re-creation must not be started twice); the
        watcher skips a child that is being handled instead of queueing behind it."""
        lock = self._lock(child.name)
        if lock.locked() and not wait:
            return
        async with lock:
            try:
                await self._check(child, timeout)
            except Exception as exc:  # the watcher itself must never die
                log.exception("health check of %s failed", child.name)
                child.last_error = repr(exc)

    async def _check(self, child: Child, timeout: float = PING_TIMEOUT_S) -> None:
        if child.state == "failed":
            return
        handle = self.handles[child.name]
        try:
            pong = await asyncio.wait_for(handle.ping.remote(), timeout=timeout)
        except ActorDiedError as exc:
            await self._recreate(child, repr(exc))
            return
        except (ActorUnavailableError, TimeoutError, RayActorError) as exc:
            waiting = self._ledger(child.name).go_at or 0.0
            child.state = "restarting" if waiting > time.time() else "unavailable"
            child.last_error = repr(exc)
            return
        started = pong.get("started")
        if child.fresh or (child.started is not None and started != child.started):
            await self._rewire(child, new_actor=child.fresh)
        child.fresh = False
        child.started, child.last_ok = started, time.time()
        child.loop_lag_s, child.admitted = pong.get("loop_lag_s"), pong.get("admitted")
        lag = child.loop_lag_s
        child.state = "stalled" if lag is not None and lag > self.stall_after_s else "running"

    async def _rewire(self, child: Child, new_actor: bool) -> None:
        """A child came back. ``new_actor``: the supervisor re-created it (a new actor id), so
        handles cached elsewhere point at the dead one; else Ray restarted its process."""
        if child.name == FEED:  # a restarted feed starts with no source running
            await self.handles[FEED].start.remote()
            return
        feed = self.handles.get(FEED)
        if new_actor and feed is not None:  # the feed's cached handle points at the dead one
            try:
                await feed.retarget.remote(child.name)
            except RayActorError as exc:  # a feed that is down gets its targets when it starts
                log.warning("feed not re-targeted to %s: %r", child.name, exc)
        if child.kind == "broker":  # its listeners are gone: hosts subscribe again now
            await self._rewire_broker(child.name)
        elif child.kind == "recorder":  # pairs of a FAILED broker stay HALTED on a new host
            for broker in self.children.values():
                if broker.kind == "broker" and broker.state == "failed":
                    await self.handles[child.name].halt.remote(
                        self._halt_reason(broker), broker.name
                    )

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

    async def _recreate(self, child: Child, error: str) -> None:
        """A child dead for good (its constructor raised, or it was killed): create it anew.
        Its constructor's admission counts the restart and applies the back-off; once the
        budget is spent the admission refused, the ledger is failed, and so is the child."""
        child.last_error = error
        ledger = self._ledger(child.name)
        if ledger.failed:
            await self._fail(child, ledger.reason or error)
            return
        child.state = "restarting"
        self.handles[child.name] = await self._spawn(child.name, self.handles[child.name])
        child.started, child.fresh = None, True

    # -- giving up ------------------------------------------------------------------------------

    @staticmethod
    def _halt_reason(broker: Child) -> str:
        return f"broker actor {broker.name} FAILED: {broker.last_error}"

    async def _fail(self, child: Child, reason: str) -> None:
        """Give up on ``child``: it stays down (killed, so a late start cannot bring it back
        unnoticed), and a broker's live pairs are HALTED on every host."""
        if child.state == "failed":
            return
        child.state, child.last_error = "failed", reason
        self._ledger(child.name).fail(reason)
        log.error("%s marked FAILED: %s", child.name, reason)
        try:
            ray.kill(self.handles[child.name], no_restart=True)
        except Exception as exc:  # already gone
            log.info("kill of %s: %r", child.name, exc)
        if child.kind == "broker":
            await self._halt_hosts(self._halt_reason(child), child.name)

    async def _halt_hosts(self, reason: str, broker: str) -> None:
        names = [n for n in self._host_names() if n in self.handles]
        results = await asyncio.gather(
            *(self.handles[n].halt.remote(reason, broker) for n in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, Exception):  # a host that is down halts them on its return
                log.error("%s did not halt the pairs of %s: %r", name, broker, result)
            elif result:
                log.error("%s: %d live pairs HALTED (%s)", name, result, reason)

    async def fail_child(self, name: str, reason: str) -> dict[str, Any]:
        """Give up on a child by hand (operators, tests): the same path as a spent budget."""
        child = self.children.get(name)
        if child is None:
            return {"ok": False, "reason": "unknown_child"}
        async with self._lock(name):
            await self._fail(child, reason)
        return {"ok": True, "child": self._view(child)}

    async def restart_child(self, name: str) -> dict[str, Any]:
        """Bring a FAILED child back by hand: its budget starts afresh, and a recorder host
        loads its live pairs HALTED (a person resumes each one). Answers ``ok`` with the
        child's state after its first ping, or ``unknown_child`` / ``not_failed``."""
        child = self.children.get(name)
        if child is None:
            return {"ok": False, "reason": "unknown_child"}
        async with self._lock(name):
            if child.state != "failed":
                return {"ok": False, "reason": "not_failed", "child": self._view(child)}
            extra: dict[str, Any] = {}
            if child.kind == "recorder":
                extra["halt_reason"] = f"restarted by hand after FAILED: {child.last_error}"
            self._ledger(name).clear()
            old = self.handles[name]
            try:
                ray.kill(old, no_restart=True)
            except Exception as exc:
                log.info("kill of %s: %r", name, exc)
            child.state, child.started, child.fresh = "starting", None, True
            self.handles[name] = await self._spawn(name, old, **extra)
            log.warning("%s restarted by hand", name)
            await self._check(child, STARTUP_PING_S)
        return {"ok": True, "child": self._view(child)}

    # -- reads ----------------------------------------------------------------------------------

    @ray.method(concurrency_group=HEALTH)
    async def ping(self) -> dict[str, Any]:
        return {"ok": True, "started": self.started, "loop_lag_s": self._beat.lag()}

    def _view(self, child: Child) -> dict[str, Any]:
        """The child plus its ledger (``restarts``, ``restarts_in_window``, ``backoff_s``…)."""
        ledger = self._ledger(child.name).view(time.time(), self.policy)
        ledger.pop("reason")  # the child's last_error says it
        return asdict(child) | ledger

    async def tree(self) -> dict[str, Any]:
        return {
            "supervisor": {
                "started": self.started,
                "uptime_s": time.time() - self.started,
                "loop_lag_s": self._beat.lag(),
            },
            "children": [self._view(c) for c in self.children.values()],
        }

    async def ledger(self) -> dict[str, dict[str, Any]]:
        """Admissions of every actor name that asked (children or not)."""
        now = time.time()
        return {name: lg.view(now, self.policy) for name, lg in self.ledgers.items()}

    async def names(self) -> dict[str, Any]:
        return {"hosts": self._host_names(), "feed": FEED, "broker": BROKER}

    async def shutdown(self) -> None:
        if self.watch is not None:
            self.watch.cancel()
        for name, h in self.handles.items():
            try:
                ray.kill(h, no_restart=True)
            except Exception as exc:  # already gone
                log.info("kill of %s: %r", name, exc)
        self.handles.clear()
