"""The Ray actor class for a recorder host: a light shell around :class:`RecorderHost`.

Any process that holds an actor handle imports the actor's class module (Ray needs the
class's method table). The feed and the supervisor hold host handles; if the class lived in
``host.py`` they would import numpy, SQLAlchemy and the whole recording core for nothing
(~46 MiB each, measured by bench/memory). This module imports nothing heavy; the host is
built inside the actor process only.
"""

from __future__ import annotations

from typing import Any

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
)


class RecorderActor:
    """Actor body: delegates every remote method to a RecorderHost built in ``__init__``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from actors.recorder.host import RecorderHost

        self._host = RecorderHost(*args, **kwargs)


def _delegate(name: str) -> Any:
    async def method(self: RecorderActor, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self._host, name)(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"RecorderHost.{name}"
    return method


for _name in METHODS:
    setattr(RecorderActor, _name, _delegate(_name))
