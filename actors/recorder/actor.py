"""The Ray actor class for a recorder host: a light shell around :class:`RecorderHost`.

Any process that holds an actor handle imports the actor's class module (Ray needs the
class's method table). The feed and the supervisor hold host handles; if the class lived in
``host.py`` they would import numpy, SQLAlchemy and the whole recording core for nothing
(~46 MiB each, measured by bench/memory). This module imports nothing heavy; the host is
built inside the actor process only.

Make it remote with :func:`actors.runtime.tree_class`: ``ping`` runs in the ``health``
concurrency group.
"""

from __future__ import annotations

from typing import Any

import ray

from actors.channel import ChannelServer, channel_info
from actors.runtime import HEALTH, HOST_CHANNEL, Beat, admit, freeze_startup_heap, reconstructed

#: The host's remote interface (all coroutines on RecorderHost).
METHODS = (
    "on_signal",
    "on_signals",
    "on_ticks",
    "load_recorder",
    "reset",
    "positions",
    "ping",
    "status",
    "on_broker_events",
    "load_traders",
    "live_positions",
    "resolve",
    "reconcile_view",
    "rewire",
    "halt",
)


class RecorderActor:
    """Actor body: delegates every remote method to a RecorderHost built in ``__init__``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # back-off, or refusal: before loading anything
        namespace = kwargs.get("namespace", args[4] if len(args) > 4 else None)
        self._admitted = admit(namespace=namespace) is not None
        if kwargs.get("halt_reason") and reconstructed():
            # Ray re-runs a crashed actor's constructor with its first arguments: a host
            # restarted by hand must not HALT its live pairs again after a later crash (what
            # was HALTED is in the store, what a person resumed since must stay resumed).
            kwargs.pop("halt_reason", None)
        from actors.recorder.host import RecorderHost

        self._host = RecorderHost(*args, **kwargs)
        self._beat = Beat().start()
        self._channel = ChannelServer(self, HOST_CHANNEL)
        freeze_startup_heap()

    async def channel(self) -> tuple[str | None, str]:
        """This host's direct channel (node, socket): signals, broker events, ticks."""
        return await channel_info(self._channel)


def _delegate(name: str) -> Any:
    async def method(self: RecorderActor, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self._host, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"RecorderHost.{name}"
    return method


@ray.method(concurrency_group=HEALTH)
async def _ping(self: RecorderActor) -> dict[str, Any]:
    """RecorderHost.ping plus the default loop's lag. Runs on the health group's own loop, so
    the host's ``ping`` must stay a plain read (no awaits on the default loop's objects)."""
    extra = {"loop_lag_s": self._beat.lag(), "admitted": self._admitted}
    return (await self._host.ping()) | extra


_ping.__name__ = _ping.__qualname__ = "ping"

for _name in METHODS:
    setattr(RecorderActor, _name, _ping if _name == "ping" else _delegate(_name))
