"""Per-symbol failover between live price sources: pure policy, no I/O, no clock of its own.

Every source of the chain runs all the time (hot standby); the router decides, per symbol, which
source's ticks reach the recorders. The feed actor calls :meth:`FailoverRouter.on_tick` for every
tick of every source and :meth:`FailoverRouter.evaluate` every ``check_s`` with each source's
:class:`SourceHealth` and whether the symbol's market is open.

Rules:

- **Usable**: a source is usable for a symbol when it is *up* for it (connected, subscribed, no
  per-symbol error, a frame within the feed's ``stale_s``: the adapters decide that) and, only
  while the market is open and ``symbol_stale_s > 0``, it delivered a tick for the symbol
  within ``symbol_stale_s`` (a source that just came up counts from then). Ticks, not polls or
  heartbeats: in a quiet market every source is stale alike and nothing switches, but a
  fallback that saw prices move while the active source did not is switched to. A closed
  market is never stale: no trades is normal then.
- **Fail over** at once when the active source is not usable: to the first usable source in
  chain order. Nothing usable: stay (and say so). At start-up the primary gets ``grace_s`` to
  come up before this applies.
- **Switch back** to a source earlier in the chain once it has been usable for ``recover_s``
  without interruption (hold-down against flapping).
- **Delivery**: only the active source's ticks are delivered. Each switch is logged and
  counted (``failover`` away from earlier chain entries, ``failback`` towards them). On a switch
  the new source's latest tick is delivered at once if it arrived after the last delivered
  tick and carries a different price (a move seen only by the standby is not lost; an equal
  price would only repeat the last tick).
- **Time order**: recorders need ticks in time order, but sources stamp differently
  (TradingView whole exchange seconds, the scanner local receipt time, Tradovate exchange
  milliseconds). A tick older than the last delivered one for its symbol is delivered stamped
  with that last time (``clamped`` counts them): prices are never dropped or reordered, and the
  time axis never runs backwards. A delayed source (``delayed`` in status) is therefore visible
  as such, not by timestamps going back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.feed.sources.base import Tick

__all__ = ["FailoverRouter", "SourceHealth", "Switch"]


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """A source's state for one symbol, as its adapter sees it at ``now``."""

    up: bool
    up_since: float | None = None  # local time it last came up (None while down)
    delayed: bool | None = None  # None: not known yet
    error: str | None = None  # why it is down (or a per-symbol error)


@dataclass(frozen=True, slots=True)
class Switch:
    ts: float
    symbol: str
    source_from: str
    source_to: str
    kind: Literal["failover", "failback"]
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "symbol": self.symbol,
            "from": self.source_from,
            "to": self.source_to,
            "kind": self.kind,
            "reason": self.reason,
        }


@dataclass
class _Route:
    active: str
    created: float
    ever_up: set[str] = field(default_factory=set)
    usable_since: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, tuple[bool, str | None]] = field(default_factory=dict)
    delayed: dict[str, bool | None] = field(default_factory=dict)
    source_last: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    last_ts: float | None = None
    last_price: float | None = None
    last_arrival: float | None = None
    last_source: str | None = None
    delivered: int = 0
    clamped: int = 0
    failovers: int = 0
    failbacks: int = 0


class FailoverRouter:
    """See the module docstring. ``chain`` lists source names, primary first."""

    def __init__(
        self,
        chain: Iterable[str],
        symbols: Iterable[str],
        *,
        now: float,
        symbol_stale_s: float = 120.0,
        recover_s: float = 10.0,
        grace_s: float = 15.0,
    ) -> None:
        self.chain = tuple(chain)
        if not self.chain:
            raise ValueError("a failover chain needs at least one source")
        self.symbol_stale_s, self.recover_s, self.grace_s = symbol_stale_s, recover_s, grace_s
        self.routes = {s: _Route(self.chain[0], now) for s in symbols}

    # -- ticks ----------------------------------------------------------------------------------

    def on_tick(self, source: str, tick: Tick, arrival: float) -> Tick | None:
        """Record ``tick`` from ``source``; the tick to deliver (time-clamped) or None."""
        route = self.routes.get(tick.symbol)
        if route is None:
            return None
        route.source_last[source] = (tick.ts, tick.price, arrival)
        if source != route.active:
            return None
        return self._deliver(route, tick, arrival, source)

    def _deliver(self, route: _Route, tick: Tick, arrival: float, source: str) -> Tick:
        ts = tick.ts
        if route.last_ts is not None and ts < route.last_ts:
            ts = route.last_ts
            route.clamped += 1
        route.last_ts, route.last_price, route.last_arrival = ts, tick.price, arrival
        route.last_source = source
        route.delivered += 1
        return tick if ts == tick.ts else Tick(tick.symbol, ts, tick.price)

    # -- health ---------------------------------------------------------------------------------

    def _usable(
        self, route: _Route, source: str, h: SourceHealth, now: float, market_open: bool
    ) -> tuple[bool, str | None]:
        if not h.up:
            return False, h.error or "down"
        if market_open and self.symbol_stale_s > 0:
            last = route.source_last.get(source)
            seen = [t for t in (h.up_since, last[2] if last else None) if t is not None]
            if not seen or now - max(seen) > self.symbol_stale_s:
                return (
                    False,
                    f"stale: no data for {self.symbol_stale_s:g}s while the market is open",
                )
        return True, None

    def evaluate(
        self,
        symbol: str,
        health: Mapping[str, SourceHealth],
        now: float,
        market_open: bool,
    ) -> tuple[Switch | None, Tick | None]:
        """Apply the rules to ``symbol``; the switch made (if any) and a catch-up tick to
        deliver (if any). A source missing from ``health`` counts as down."""
        route = self.routes[symbol]
        for source in self.chain:
            h = health.get(source, SourceHealth(False, error="not running"))
            ok, reason = self._usable(route, source, h, now, market_open)
            route.verdicts[source] = (ok, reason)
            route.delayed[source] = h.delayed
            if h.up:
                route.ever_up.add(source)
            if ok:
                route.usable_since.setdefault(source, now)
            else:
                route.usable_since.pop(source, None)
        active = route.active
        active_ok, active_reason = route.verdicts[active]
        target: str | None = None
        if not active_ok:
            if active not in route.ever_up and now - route.created < self.grace_s:
                return None, None  # start-up: the primary is still connecting
            target = next((s for s in self.chain if s != active and route.verdicts[s][0]), None)
            reason = f"{active}: {active_reason}"
        else:
            for source in self.chain[: self.chain.index(active)]:
                since = route.usable_since.get(source)
                if since is not None and now - since >= self.recover_s:
                    target = source
                    break
            reason = f"{target} healthy for {self.recover_s:g}s"
        if target is None:
            return None, None
        return self._switch(symbol, route, target, reason, now)

    def _switch(
        self, symbol: str, route: _Route, target: str, reason: str, now: float
    ) -> tuple[Switch, Tick | None]:
        kind: Literal["failover", "failback"] = (
            "failover" if self.chain.index(target) > self.chain.index(route.active) else "failback"
        )
        switch = Switch(now, symbol, route.active, target, kind, reason)
        route.active = target
        if kind == "failover":
            route.failovers += 1
        else:
            route.failbacks += 1
        catch_up = None
        last = route.source_last.get(target)
        if last is not None:
            ts, price, arrival = last
            newer = route.last_arrival is None or arrival > route.last_arrival
            if newer and price != route.last_price:
                catch_up = self._deliver(route, Tick(symbol, ts, price), arrival, target)
        return switch, catch_up

    # -- status ---------------------------------------------------------------------------------

    def active(self, symbol: str) -> str:
        return self.routes[symbol].active

    def route_status(self, symbol: str, now: float) -> dict[str, Any]:
        r = self.routes[symbol]
        return {
            "source": r.active,
            "primary": r.active == self.chain[0],
            "delayed": r.delayed.get(r.active),
            "last_price": r.last_price,
            "last_tick_ts": r.last_ts,
            "last_tick_age_s": None if r.last_arrival is None else round(now - r.last_arrival, 3),
            "last_tick_source": r.last_source,
            "delivered": r.delivered,
            "clamped": r.clamped,
            "failovers": r.failovers,
            "failbacks": r.failbacks,
            "sources": {
                s: {
                    "usable": r.verdicts.get(s, (False, None))[0],
                    "reason": r.verdicts.get(s, (False, "not checked yet"))[1],
                    "delayed": r.delayed.get(s),
                }
                for s in self.chain
            },
        }
