"""Admission of actor starts: exponential back-off and a restart budget (pure, no Ray).

Ray restarts a crashed actor process about 0.4 s apart, forever (``max_restarts=-1``), and has no
back-off of its own (reference/ray.md §1.1, §7). Every tree actor's constructor therefore asks
the supervisor first (:func:`actors.runtime.admit`); the supervisor keeps one :class:`Ledger` per
actor name and answers with a :class:`Decision`:

* the first start of a name, and a restart after a quiet period (``quiet_s`` since the previous
  start went ahead), go at once;
* restarts close together form a burst: the first waits 0 s, then ``backoff_start_s``, doubling
  up to ``backoff_max_s``;
* more than ``budget`` restarts inside ``window_s``: refused. The constructor then raises, which
  makes Ray mark the actor DEAD (a constructor exception is never restarted), and the ledger
  stays failed until it is cleared (a restart by hand).

The ledger is the only count of restarts: Ray's own restarts and the supervisor's re-creations
both go through a constructor, so both are counted here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 30.0
RESTART_BUDGET = 10  # restarts inside RESTART_WINDOW_S before a child is FAILED
RESTART_WINDOW_S = 300.0
QUIET_S = 60.0  # a restart this long after the previous start begins a new burst (no wait)


@dataclass(frozen=True, slots=True)
class Policy:
    """Back-off and budget. Supervisor config keys: ``backoff_start_s``, ``backoff_max_s``,
    ``restart_budget``, ``restart_window_s``, ``backoff_quiet_s`` (defaults above)."""

    backoff_start_s: float = BACKOFF_START_S
    backoff_max_s: float = BACKOFF_MAX_S
    budget: int = RESTART_BUDGET
    window_s: float = RESTART_WINDOW_S
    quiet_s: float = QUIET_S

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> Policy:
        return cls(
            backoff_start_s=float(cfg.get("backoff_start_s", BACKOFF_START_S)),
            backoff_max_s=float(cfg.get("backoff_max_s", BACKOFF_MAX_S)),
            budget=int(cfg.get("restart_budget", RESTART_BUDGET)),
            window_s=float(cfg.get("restart_window_s", RESTART_WINDOW_S)),
            quiet_s=float(cfg.get("backoff_quiet_s", QUIET_S)),
        )

    def delay(self, burst: int) -> float:
        """Wait before restart number ``burst`` (0-based) of a burst: 0, start, 2×start, …"""
        if burst <= 0:
            return 0.0
        return min(self.backoff_start_s * 2.0 ** min(burst - 1, 64), self.backoff_max_s)


@dataclass(frozen=True, slots=True)
class Decision:
    admitted: bool
    delay_s: float = 0.0
    restart: bool = False  # False for a first start (or the first after a clear)
    reason: str | None = None  # why it was refused

    def as_dict(self) -> dict[str, Any]:
        return {
            "admitted": self.admitted,
            "delay_s": self.delay_s,
            "restart": self.restart,
            "reason": self.reason,
        }


@dataclass(slots=True)
class Ledger:
    """The starts of one actor name."""

    restarts: int = 0  # every restart admitted since the supervisor started (never cleared)
    restart_times: list[float] = field(default_factory=list)  # admitted restarts in the window
    burst: int = -1  # index of the last restart in its burst (-1: none yet)
    go_at: float | None = None  # when the last admitted start went ahead (after its delay)
    last_delay_s: float = 0.0
    failed: bool = False
    reason: str | None = None

    def admit(self, now: float, policy: Policy) -> Decision:
        if self.failed:
            return Decision(False, reason=self.reason)
        if self.go_at is None:  # first start of this name
            self.go_at, self.last_delay_s = now, 0.0
            return Decision(True)
        self.restart_times = [t for t in self.restart_times if now - t < policy.window_s]
        if len(self.restart_times) >= policy.budget:
            self.fail(f"more than {policy.budget} restarts in {policy.window_s:.0f}s")
            return Decision(False, restart=True, reason=self.reason)
        quiet = now - self.go_at >= policy.quiet_s
        self.burst = 0 if quiet else self.burst + 1
        delay = policy.delay(self.burst)
        self.restart_times.append(now)
        self.restarts += 1
        self.go_at, self.last_delay_s = now + delay, delay
        return Decision(True, delay, restart=True)

    def fail(self, reason: str) -> None:
        self.failed, self.reason = True, reason

    def clear(self) -> None:
        """Forget the budget and the burst (a restart by hand): the next start goes at once."""
        self.restart_times.clear()
        self.burst, self.go_at, self.last_delay_s = -1, None, 0.0
        self.failed, self.reason = False, None

    def view(self, now: float, policy: Policy) -> dict[str, Any]:
        recent = [t for t in self.restart_times if now - t < policy.window_s]
        return {
            "restarts": self.restarts,
            "restarts_in_window": len(recent),
            "budget": policy.budget,
            "backoff_s": self.last_delay_s,
            "waiting_s": max(0.0, self.go_at - now) if self.go_at is not None else 0.0,
            "failed": self.failed,
            "reason": self.reason,
        }
