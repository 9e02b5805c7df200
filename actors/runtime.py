"""Connecting to Ray, the namespace and the names of the actors in the tree.

Every trading actor is detached and named in one namespace, so a crash of the process that
created it (the API driver, the supervisor) does not take it down, and any driver finds it by
name. Calls are at-most-once (``max_task_retries=0``): a call that may have run is resolved by
asking, never by re-sending (reference/ray.md §1).

Health pings run in a concurrency group of their own (``health``), so a ping is answered even
while the actor's default event loop is busy; what the default loop is doing shows in the ping
as ``loop_lag_s`` (the age of the last :class:`Beat`). Every tree actor's constructor first asks
the supervisor whether (and when) it may start (:func:`admit`, :mod:`actors.restarts`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from typing import Any

import ray

log = logging.getLogger("justtrades.runtime")

SUPERVISOR = "supervisor"
FEED = "feed"
BROKER = "broker-paper"

#: The concurrency group of health pings (one at a time, on a thread and loop of their own).
HEALTH = "health"
#: Every tree actor declares these groups. Ray takes them only from ``ray.remote(...)``
#: (``.options()`` rejects them), and a class whose method names a group fails to be created
#: without them: make tree actors remote with :func:`tree_class`.
CONCURRENCY_GROUPS: dict[str, int] = {HEALTH: 1}
#: The calls a broker actor and a recorder host take over their direct channels (same-node
#: Unix sockets, :mod:`actors.channel`): the hot paths of signals, orders, fills and ticks.
BROKER_CHANNEL = ("place_many", "cancel", "subscribe", "on_ticks")
HOST_CHANNEL = ("on_broker_events", "on_ticks", "on_signals")
#: What the API's webhook dispatcher sends a host over its channel.
API_CHANNEL = ("on_signals",)
#: What a feed sends its targets (hosts, the paper broker) over their channels.
FEED_CHANNEL = ("on_ticks",)
ADMIT_TIMEOUT_S = 3.0
BEAT_S = 0.5


class AdmissionRefused(RuntimeError):
    """The supervisor gave up on this actor: raised from its constructor, so Ray marks it DEAD
    instead of restarting it again."""


def broker_name(broker: str, account_id: int) -> str:
    """The broker actor serving an account: the one paper actor, or one per Tradovate login."""
    return BROKER if broker == "paper" else f"broker-{broker}-{account_id}"


def host_name(index: int) -> str:
    return f"recorder-host-{index}"


def connect(address: str | None, namespace: str, num_cpus: int | None = None) -> None:
    """Join ``address`` (e.g. ``auto``) or start a local Ray; idempotent. Call it from a
    long-lived thread (the main thread): a local Ray's daemons die with the starting thread."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "namespace": namespace,
        "include_dashboard": False,
        "log_to_driver": os.environ.get("JT_RAY_LOG_TO_DRIVER", "0") == "1",
        "ignore_reinit_error": True,
    }
    if address:
        kwargs["address"] = address
    else:
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        # Ray keeps an event record of every actor call in the GCS (~3.3 MiB per 1,000 calls,
        # to a ~360 MiB plateau); the feed makes calls continuously and we do not use Ray's
        # task list, so a local Ray we start keeps none (set the variable to override).
        os.environ.setdefault("RAY_task_events_report_interval_ms", "0")
    ray.init(**kwargs)


def tree_class(cls: type, **options: Any) -> Any:
    """``cls`` as a Ray actor class with the tree's concurrency groups (plus ``options``)."""
    return ray.remote(concurrency_groups=dict(CONCURRENCY_GROUPS), **options)(cls)


def actor_options(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    """Options shared by every actor in the tree."""
    return {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "get_if_exists": True,
        **extra,
    }


def get(name: str, namespace: str) -> Any:
    return ray.get_actor(name, namespace=namespace)


def _in_actor() -> bool:
    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def reconstructed() -> bool:
    """True in an actor whose process Ray restarted (its constructor runs again with the
    arguments of its creation); False outside Ray actors."""
    return _in_actor() and bool(ray.get_runtime_context().was_current_actor_reconstructed)


def admit(name: str | None = None, namespace: str | None = None) -> dict[str, Any] | None:
    """Ask the supervisor whether this actor may start; call it first in a constructor.
    (The actor's ping reports ``admitted``: whether the supervisor answered.)

    Sleeps the back-off the supervisor asks for, raises :class:`AdmissionRefused` when it
    refuses (restart budget spent). Returns the decision, or None when nobody was asked: not
    inside a Ray actor, no ``supervisor`` in the namespace, or no answer in
    ``ADMIT_TIMEOUT_S`` (a supervisor that is down must not keep the tree from starting).
    ``name`` defaults to the actor's own; pass ``namespace``: the default is the namespace of
    the *job* that created the actor, which need not be the actor's. Blocking is fine here: nothing else runs
    in an actor before its constructor returns (``ray.get`` in an async actor's constructor
    works; Ray only warns once).
    """
    if not _in_actor():
        return None
    ctx = ray.get_runtime_context()
    name = name or ctx.get_actor_name()
    namespace = namespace or ctx.namespace
    if not name or name == SUPERVISOR:
        return None
    try:
        sup = ray.get_actor(SUPERVISOR, namespace=namespace)
    except ValueError:
        return None
    try:
        decision: dict[str, Any] = ray.get(sup.admit.remote(name), timeout=ADMIT_TIMEOUT_S)
    except Exception as exc:  # supervisor down, restarting or busy: start anyway
        log.warning("%s: admission not answered (%r); starting", name, exc)
        return None
    if not decision.get("admitted", True):
        raise AdmissionRefused(f"{name}: supervisor refused the start: {decision.get('reason')}")
    delay = float(decision.get("delay_s") or 0.0)
    if delay > 0:
        log.warning("%s: restart back-off %.1fs", name, delay)
        time.sleep(delay)
    return decision


def freeze_startup_heap() -> None:
    """Move every object alive now out of the garbage collector's reach (``gc.freeze``).

    Call it at the end of a latency-sensitive actor's constructor. What exists then (modules,
    Ray's and SQLAlchemy's state, the loaded pairs) lives as long as the process, yet every
    full collection walked it: a gen-2 collection stopped the recorder host for 52-107 ms in
    ``bench.live_latency``, mid-run, holding up every tick and order behind it. Frozen objects
    are still freed by reference counting when they go; only cycles among them would be
    kept, which is the documented trade-off of ``gc.freeze``. Outside a Ray actor (a test
    building the class in process) it does nothing."""
    if _in_actor():
        freeze_heap()


def freeze_heap() -> None:
    """``gc.collect()`` then ``gc.freeze()``: for a long-lived process once it has started
    (the API server after boot: see ``create_app(frozen_heap=True)``). Not for a process that
    keeps building and dropping what it froze (a test run): frozen cycles are never freed."""
    gc.collect()
    gc.freeze()


class Beat:
    """Stamps ``ts`` every ``BEAT_S`` from a task on the actor's default event loop.

    A ping served in the ``health`` group proves the process answers, not that the default loop
    (where the actor's real work runs) does: :meth:`lag` says how long that loop has not run the
    beat. Started from a constructor (inside a Ray actor it runs on the default loop); outside
    Ray (plain-class tests) there is no loop to watch and :meth:`lag` is None.
    """

    def __init__(self, interval_s: float = BEAT_S) -> None:
        self.interval_s = interval_s
        self.ts = time.monotonic()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Beat:
        if self.task is None and _in_actor():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return self
            self.task = loop.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            self.ts = time.monotonic()
            await asyncio.sleep(self.interval_s)

    def lag(self) -> float | None:
        if self.task is None:
            return None
        return round(time.monotonic() - self.ts, 3)
