"""Rate limiter: pools, margins, rolling windows, priorities, penalties (actors/broker/limiter.py).

Runs on a manual clock: ``sleep`` parks the caller until the test advances time, so every
assertion is about exact times, with no wall-clock waits.
"""

from __future__ import annotations

import asyncio

import pytest

from actors.broker.base import Priority
from actors.broker.limiter import RateLimit, RateLimiter


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleepers.append((self.now + delay, future))
        try:
            await future
        finally:
            self.sleepers = [(t, f) for t, f in self.sleepers if f is not future]

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in time order at their own deadlines."""
        target = self.now + seconds
        await self.settle()
        while True:
            due = [(t, f) for t, f in self.sleepers if t <= target and not f.done()]
            if not due:
                break
            t, future = min(due, key=lambda item: item[0])
            self.now = max(self.now, t)
            future.set_result(None)
            await self.settle()
        self.now = target
        await self.settle()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def limiter(
    clock: ManualClock, limits: dict[str, tuple[int, float]], margin: float = 0.0
) -> RateLimiter:
    return RateLimiter(limits, margin, clock=clock, sleep=clock.sleep)


class Log:
    """Records (name, time) of each grant."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.grants: list[tuple[str, float]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def start(
        self, lim: RateLimiter, name: str, pools: object, priority: int = Priority.ENTRY
    ) -> asyncio.Task[None]:
        async def run() -> None:
            await lim.acquire(pools, priority)  # type: ignore[arg-type]
            self.grants.append((name, self.clock.now))

        task = asyncio.get_running_loop().create_task(run())
        self.tasks.append(task)
        return task

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.grants]


async def test_safety_margin_and_budget_left(clock: ManualClock) -> None:
    lim = limiter(clock, {"orders": (10, 1.0)}, margin=0.2)
    assert lim.capacity("orders") == 8
    assert lim.budget_left() == {"orders": 8}
    log = Log(clock)
    for i in range(9):
        log.start(lim, f"r{i}", "orders")
    await clock.settle()
    assert len(log.grants) == 8
    assert lim.budget_left() == {"orders": 0}
    assert lim.waiting == 1
    await clock.advance(0.999)
    assert len(log.grants) == 8
    await clock.advance(0.001)
    assert log.grants[-1] == ("r8", 1.0)
    assert lim.budget_left() == {"orders": 7}  # the 8 from t=0 left, r8 holds one


async def test_capacity_never_rounds_to_zero(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (1, 1.0)}, margin=0.2)
    assert lim.capacity("p") == 1
    assert RateLimiter({"p": (5000, 3600.0)}).capacity("p") == 4000


async def test_rolling_window_not_fixed(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (4, 1.0)})
    log = Log(clock)
    for i in range(2):
        log.start(lim, f"a{i}", "p")
    await clock.advance(0.5)
    for i in range(4):
        log.start(lim, f"b{i}", "p")
    await clock.settle()
    # a0 a1 at 0.0, b0 b1 at 0.5; b2 b3 must wait for a0 a1 to leave the window at 1.0,
    # not for a fixed window boundary.
    assert log.grants == [("a0", 0.0), ("a1", 0.0), ("b0", 0.5), ("b1", 0.5)]
    await clock.advance(0.5)
    assert log.grants[4:] == [("b2", 1.0), ("b3", 1.0)]
    for i in range(2):
        log.start(lim, f"c{i}", "p")
    await clock.advance(0.49)
    assert len(log.grants) == 6
    await clock.advance(0.01)
    assert log.grants[6:] == [("c0", 1.5), ("c1", 1.5)]


async def test_a_request_must_fit_every_pool_it_draws_on(clock: ManualClock) -> None:
    lim = limiter(clock, {"hour": (3, 3600.0), "second": (2, 1.0)})
    log = Log(clock)
    for i in range(4):
        log.start(lim, f"r{i}", ["hour", "second"])
    await clock.settle()
    assert log.names == ["r0", "r1"]
    await clock.advance(1.0)
    assert log.names == ["r0", "r1", "r2"]  # the hour pool is now full
    await clock.advance(100.0)
    assert len(log.grants) == 3
    assert lim.budget_left() == {"hour": 0, "second": 2}
    await clock.advance(3500.0)
    assert log.grants[-1] == ("r3", 3600.0)


async def test_weights(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (5, 1.0)})
    log = Log(clock)
    log.start(lim, "heavy", {"p": 3})
    log.start(lim, "heavy2", {"p": 3})
    log.start(lim, "light", {"p": 2})
    await clock.settle()
    # light fits after heavy, but it is behind heavy2 on the same pool and may not pass it.
    assert log.names == ["heavy"]
    await clock.advance(1.0)
    assert log.names == ["heavy", "heavy2", "light"]
    with pytest.raises(ValueError):
        await lim.acquire({"p": 6})
    with pytest.raises(KeyError):
        await lim.acquire("nope")
    with pytest.raises(ValueError):
        await lim.acquire({"p": 0})


async def test_priority_order_fifo_within_a_priority(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (1, 1.0)})
    log = Log(clock)
    log.start(lim, "first", "p", Priority.ENTRY)
    await clock.settle()
    log.start(lim, "entry1", "p", Priority.ENTRY)
    log.start(lim, "entry2", "p", Priority.ENTRY)
    log.start(lim, "protect", "p", Priority.PROTECT)
    log.start(lim, "exit1", "p", Priority.EXIT)
    log.start(lim, "exit2", "p", Priority.EXIT)
    log.start(lim, "kill", "p", Priority.KILL)
    await clock.settle()
    assert lim.waiting == 6
    assert lim.waiting_by_priority() == {0: 1, 1: 2, 2: 1, 3: 2}
    await clock.advance(10.0)
    assert log.grants == [
        ("first", 0.0),
        ("kill", 1.0),
        ("exit1", 2.0),
        ("exit2", 3.0),
        ("protect", 4.0),
        ("entry1", 5.0),
        ("entry2", 6.0),
    ]


async def test_unrelated_pools_are_not_held_up(clock: ManualClock) -> None:
    lim = limiter(clock, {"a": (1, 10.0), "b": (1, 1.0)})
    log = Log(clock)
    log.start(lim, "a1", "a")
    log.start(lim, "a2", "a", Priority.KILL)  # waits 10 s for pool a
    log.start(lim, "b1", "b")
    log.start(lim, "b2", "b")
    await clock.settle()
    assert log.names == ["a1", "b1"]
    await clock.advance(1.0)  # the timer must wake for pool b, not sleep until pool a frees
    assert log.grants[-1] == ("b2", 1.0)
    await clock.advance(9.0)
    assert log.grants[-1] == ("a2", 10.0)


async def test_new_short_window_waiter_reschedules_a_long_timer(clock: ManualClock) -> None:
    lim = limiter(clock, {"a": (1, 100.0), "b": (1, 1.0)})
    log = Log(clock)
    log.start(lim, "a1", "a")
    log.start(lim, "a2", "a")  # the timer now sleeps until t=100
    await clock.advance(0.5)
    log.start(lim, "b1", "b")
    log.start(lim, "b2", "b")
    await clock.settle()
    await clock.advance(1.0)
    assert ("b2", 1.5) in log.grants
    assert len(clock.sleepers) == 1  # one timer, whatever the number of waiters


async def test_penalty_blocks_everything_and_only_extends(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (100, 1.0)})
    await lim.acquire("p")
    lim.penalty(5.0)
    lim.penalty(2.0)  # shorter: ignored
    assert lim.penalty_remaining() == 5.0
    assert lim.budget_left() == {"p": 0}
    assert not lim.try_acquire("p")
    log = Log(clock)
    log.start(lim, "entry", "p")
    log.start(lim, "kill", "p", Priority.KILL)
    await clock.advance(4.9)
    assert log.grants == []
    await clock.advance(0.1)
    assert log.grants == [("kill", 5.0), ("entry", 5.0)]
    assert lim.penalty_remaining() == 0.0
    with pytest.raises(ValueError):
        lim.penalty(-1.0)


async def test_penalty_arriving_while_waiting_extends_the_wait(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (1, 1.0)})
    log = Log(clock)
    log.start(lim, "a", "p")
    log.start(lim, "b", "p")
    await clock.advance(0.5)
    lim.penalty(3.0)  # until 3.5
    await clock.advance(2.9)
    assert log.names == ["a"]
    await clock.advance(0.1)
    assert log.grants == [("a", 0.0), ("b", 3.5)]


async def test_cancelled_waiter_gives_its_place_up(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (1, 1.0), "q": (5, 1.0)})
    log = Log(clock)
    log.start(lim, "a", "p")
    blocked = log.start(lim, "b", ["p", "q"])  # holds pool q up for everyone behind it
    log.start(lim, "c", "q")
    await clock.settle()
    assert log.names == ["a"]
    blocked.cancel()
    await clock.settle()
    assert log.names == ["a", "c"]
    assert lim.waiting == 0
    assert not clock.sleepers  # nobody waiting: the timer is gone


async def test_try_acquire(clock: ManualClock) -> None:
    lim = limiter(clock, {"p": (3, 1.0)})
    assert lim.try_acquire("p")
    assert lim.try_acquire("p")
    assert lim.try_acquire("p")
    assert not lim.try_acquire("p")  # full
    log = Log(clock)
    log.start(lim, "queued", "p")
    await clock.advance(1.0)
    assert log.names == ["queued"]
    assert lim.try_acquire("p")  # one left of three, nobody queued
    log.start(lim, "heavy", {"p": 2})  # does not fit into the one left: waits
    await clock.settle()
    assert lim.budget_left() == {"p": 1}
    assert not lim.try_acquire("p")  # it would fit, but the queued request comes first
    assert lim.granted == 5
    await clock.advance(1.0)
    assert log.grants == [("queued", 1.0), ("heavy", 2.0)]


async def test_many_waiters_are_served_at_the_rate(clock: ManualClock) -> None:
    lim = limiter(clock, {"s": (10, 1.0)}, margin=0.2)
    log = Log(clock)
    for i in range(40):
        log.start(lim, f"r{i}", "s")
    await clock.advance(10.0)
    times = [t for _, t in log.grants]
    assert log.names == [f"r{i}" for i in range(40)]
    assert times == [float(i // 8) for i in range(40)]


def test_invalid_configuration() -> None:
    with pytest.raises(ValueError):
        RateLimiter({})
    with pytest.raises(ValueError):
        RateLimiter({"p": (0, 1.0)})
    with pytest.raises(ValueError):
        RateLimiter({"p": (1, 0.0)})
    with pytest.raises(ValueError):
        RateLimiter({"p": (1, 1.0)}, safety_margin=1.0)
    with pytest.raises(ValueError):
        RateLimiter([RateLimit("p", 1, 1.0), RateLimit("p", 2, 1.0)])


async def test_real_clock_smoke() -> None:
    lim = RateLimiter({"p": (2, 0.05)}, safety_margin=0.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for _ in range(5):
        await lim.acquire("p")
    # 2 at once, 2 after 50 ms, 1 after 100 ms
    assert 0.09 <= loop.time() - t0 < 1.0
