"""What every request handler needs: settings, the store, the local user, actor handles."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from actors.runtime import host_name
from actors.settings import Settings
from actors.store import Store
from api.dispatch import HostDispatcher
from api.signal_writer import SignalWriter

TOKEN_TTL_S = 2.0


@dataclass(slots=True)
class Context:
    settings: Settings
    store: Store
    user_id: int
    supervisor: Any = None
    hosts: list[Any] = field(default_factory=list)
    feed: Any = None
    broker: Any = None
    _cache: dict[str, tuple[float, Any]] = field(default_factory=dict)
    dispatchers: list[HostDispatcher] = field(default_factory=list)
    #: webhook token -> (expires, recorder). Known tokens only (random ones never fill it);
    #: cleared on every recorder change made through this process, else stale for TOKEN_TTL_S.
    tokens: dict[str, tuple[float, Any]] = field(default_factory=dict)

    signals: SignalWriter = field(init=False)

    def __post_init__(self) -> None:
        self.dispatchers = [
            HostDispatcher(h, name=host_name(i), namespace=self.settings.namespace)
            for i, h in enumerate(self.hosts)
        ]
        self.signals = SignalWriter(self.store)

    def refresh_handles(self) -> None:
        """Look the tree's actors up again by name. A handle is bound to one actor id: after
        the supervisor re-created an actor (a restart by hand, or one dead for good), the
        handles cached here point at the dead one. A name not found keeps its old handle.
        Blocking (GCS look-ups): call it from a worker thread."""
        from actors.runtime import BROKER, FEED, get, host_name

        ns = self.settings.namespace

        def lookup(name: str, old: Any) -> Any:
            try:
                return get(name, ns)
            except ValueError:
                return old

        for i, old in enumerate(self.hosts):
            self.hosts[i] = lookup(host_name(i), old)
            if i < len(self.dispatchers):  # queued webhooks go to the new actor
                self.dispatchers[i].handle = self.hosts[i]
        self.feed = lookup(FEED, self.feed)
        self.broker = lookup(BROKER, self.broker)

    def host_for(self, recorder_id: int) -> Any:
        """All pairs of one recorder live on one host, so a signal is one actor call."""
        return self.hosts[recorder_id % len(self.hosts)]

    def dispatcher_for(self, recorder_id: int) -> HostDispatcher:
        return self.dispatchers[recorder_id % len(self.dispatchers)]

    def cached_recorder(self, token: str) -> Any | None:
        hit = self.tokens.get(token)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def remember_recorder(self, token: str, recorder: Any) -> None:
        self.tokens[token] = (time.monotonic() + TOKEN_TTL_S, recorder)

    def cached(self, key: str, max_age_s: float) -> Any | None:
        hit = self._cache.get(key)
        if hit is not None and time.monotonic() - hit[0] < max_age_s:
            return hit[1]
        return None

    def remember(self, key: str, value: Any) -> Any:
        self._cache[key] = (time.monotonic(), value)
        return value


def get_ctx(request: Request) -> Context:
    return request.app.state.ctx
