"""HostDispatcher: concurrent webhook signals share one actor call; each caller gets its own
result, in order; a failed call fails every waiter in it (they answer 202, the signal is kept)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from ray.exceptions import ActorUnavailableError

from actors.channel import ChannelClosed
from api.dispatch import HostDispatcher


class FakeRemote:
    def __init__(self, owner: FakeHost) -> None:
        self.owner = owner

    def remote(
        self, items: list[tuple[int, int, dict[str, Any]]], redelivered: bool = False
    ) -> Any:
        self.owner.redelivered.append(redelivered)
        return self.owner.call(items)


class FakeHost:
    def __init__(self, fail: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.redelivered: list[bool] = []
        self.fail = fail
        self.on_signals = FakeRemote(self)

    async def call(self, items: list[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
        self.batches.append([sid for sid, _, _ in items])
        await asyncio.sleep(0.01)  # the actor call is in flight: later submits queue up
        if self.fail:
            raise RuntimeError("host unavailable")
        return [{"status": "applied", "signal_id": sid} for sid, _, _ in items]


async def test_concurrent_signals_are_coalesced_and_answered_individually() -> None:
    host = FakeHost()
    d = HostDispatcher(host)
    results = await asyncio.gather(*(d.submit(i, 7, {"kind": "buy"}) for i in range(50)))
    assert [r["signal_id"] for r in results] == list(range(50))
    assert [sid for b in host.batches for sid in b] == list(range(50))  # order kept
    assert len(host.batches) == 1  # all 50 arrived before the first call went out
    later = await asyncio.gather(d.submit(100, 7, {}), d.submit(101, 7, {}))
    assert [r["signal_id"] for r in later] == [100, 101] and host.batches[-1] == [100, 101]
    assert not d.busy


async def test_signals_arriving_during_a_call_go_in_the_next_one() -> None:
    host = FakeHost()
    d = HostDispatcher(host)
    first = asyncio.ensure_future(d.submit(1, 1, {}))
    await asyncio.sleep(0.001)  # the first call is now in flight
    rest = await asyncio.gather(*(d.submit(i, 1, {}) for i in range(2, 6)))
    assert (await first)["signal_id"] == 1 and len(rest) == 4
    assert host.batches == [[1], [2, 3, 4, 5]]


async def test_batches_are_capped() -> None:
    host = FakeHost()
    d = HostDispatcher(host, max_batch=10)
    await asyncio.gather(*(d.submit(i, 1, {}) for i in range(35)))
    assert [len(b) for b in host.batches] == [10, 10, 10, 5]


async def test_a_failed_call_fails_every_waiter_in_it() -> None:
    d = HostDispatcher(FakeHost(fail=True))
    outcomes = await asyncio.gather(*(d.submit(i, 1, {}) for i in range(5)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes)
    with pytest.raises(RuntimeError):
        await d.submit(99, 1, {})


@pytest.mark.parametrize(
    "error",
    [
        lambda: ActorUnavailableError("restarting", None),
        lambda: ChannelClosed("channel closed before the answer: outcome unknown"),
    ],
    ids=["ray", "channel"],
)
async def test_a_host_restarting_gets_the_batch_again_in_order(
    monkeypatch: pytest.MonkeyPatch, error: Callable[[], Exception]
) -> None:
    """Signals stored while the host restarts are delivered as soon as it answers again, before
    the ones that came after them (the webhook has answered 202 meanwhile), whether the call
    went through Ray or over the host's channel."""
    import api.dispatch as dispatch

    monkeypatch.setattr(dispatch, "REDELIVER_EVERY_S", 0.001)
    host = FakeHost()
    refusals = [3]

    async def flaky(items: list[tuple[int, int, dict[str, Any]]]) -> list[dict[str, Any]]:
        host.batches.append([sid for sid, _, _ in items])
        await asyncio.sleep(0.001)
        if refusals[0] > 0:
            refusals[0] -= 1
            raise error()
        return [{"status": "applied", "signal_id": sid} for sid, _, _ in items]

    host.call = flaky  # type: ignore[method-assign]
    d = HostDispatcher(host)
    first = d.submit(1, 7, {})
    await asyncio.sleep(0.0005)
    later = d.submit(2, 7, {})
    assert (await first)["signal_id"] == 1 and (await later)["signal_id"] == 2
    assert host.batches[:4] == [[1], [1], [1], [1]]  # the same batch until it went through
    assert host.redelivered[:4] == [False, True, True, True]  # the host checks the store
    assert host.batches[4] == [2] and host.redelivered[4] is False
    d.retry_for_s = 0.0  # out of patience: the waiters learn it (their signals stay stored)
    refusals[0] = 1
    with pytest.raises(type(error())):
        await d.submit(3, 7, {})
