"""Direct channels (actors/channel.py) without Ray: a server on a Unix socket, a caller that
starts on its fallback (a fake Ray handle), moves to the channel, and falls back when it breaks."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from actors import channel
from actors.channel import ChannelClosed, ChannelServer, Direct


class Refused(Exception):
    """Raised by the target: must arrive at the caller as itself."""


class Odd(Exception):
    """Its constructor's arguments are not its ``args``: pickle cannot rebuild it."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")


class Target:
    def __init__(self) -> None:
        self.seen: list[int] = []
        self.release = asyncio.Event()

    async def add(self, a: int, b: int = 0) -> int:
        return a + b

    async def record(self, i: int) -> int:
        self.seen.append(i)
        return i

    async def refuse(self) -> None:
        raise Refused("no")

    async def odd(self) -> None:
        raise Odd(7, "odd")

    async def hang(self) -> None:
        await self.release.wait()

    async def secret(self) -> str:
        return "not served"


SERVED = ("add", "record", "refuse", "odd", "hang")


class FakeRef:
    """What a Ray handle's ``.remote()`` returns, reduced to being awaitable."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        if isinstance(self.value, BaseException):
            raise self.value
        return self.value
        yield


class FakeMethod:
    def __init__(self, handle: FakeHandle, name: str) -> None:
        self.handle, self.name = handle, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        self.handle.ray_calls.append(self.name)
        if self.name == "channel":
            return FakeRef(self.handle.info)
        return FakeRef(("ray", self.name, args, kwargs))


class FakeHandle:
    """A Ray actor handle: every call is recorded and answered ``("ray", ...)``."""

    def __init__(self, info: Any) -> None:
        self.info = info
        self.ray_calls: list[str] = []

    def __getattr__(self, name: str) -> FakeMethod:
        return FakeMethod(self, name)


@pytest.fixture
def same_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(channel, "_own_node", lambda: "node-1")


async def connected(target: Target, methods: tuple[str, ...] = SERVED) -> tuple[Direct, Any]:
    server = ChannelServer(target, methods)
    handle = FakeHandle(("node-1", await server.start()))
    direct = Direct(handle, methods)
    assert await direct.add.remote(1, 2) == ("ray", "add", (1, 2), {})  # before it connects
    await until(lambda: direct.connected)
    return direct, server


async def until(cond: Any, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.005)):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_calls_move_from_ray_to_the_channel(same_node: None) -> None:
    target = Target()
    direct, server = await connected(target)
    assert await direct.add.remote(2, b=5) == 7
    assert direct.sent == {"ray": 1, "channel": 1}
    assert server.calls == 1
    # methods the caller does not route through the channel stay on Ray
    assert await direct.secret.remote() == ("ray", "secret", (), {})
    server.close()


async def test_exceptions_arrive_as_themselves(same_node: None) -> None:
    direct, server = await connected(Target())
    with pytest.raises(Refused, match="no"):
        await direct.refuse.remote()
    server.close()


async def test_an_exception_pickle_cannot_rebuild_arrives_as_what_it_was(same_node: None) -> None:
    direct, server = await connected(Target())
    with pytest.raises(RuntimeError, match="Odd: 7 odd"):
        await direct.odd.remote()
    assert await direct.add.remote(1, 1) == 2  # and the channel is still up
    assert direct.connected
    server.close()


async def test_a_method_the_server_does_not_list_is_refused(same_node: None) -> None:
    target = Target()
    direct, server = await connected(target, ("add",))
    conn = direct._conn
    assert conn is not None
    with pytest.raises(AttributeError, match="not served"):
        await conn.call("secret", (), {})
    server.close()


async def test_calls_reach_the_target_in_the_order_made(same_node: None) -> None:
    target = Target()
    direct, server = await connected(target)
    results = await asyncio.gather(*[direct.record.remote(i) for i in range(200)])
    assert results == list(range(200))
    assert target.seen == list(range(200))
    server.close()


async def test_arguments_are_taken_when_the_call_is_made(same_node: None) -> None:
    direct, server = await connected(Target())
    args = [1]
    fut = direct.record.remote(args)
    args.append(2)  # as with Ray: the call carries what the list held when it was made
    assert await fut == [1]
    server.close()


async def test_a_broken_channel_fails_pending_calls_and_falls_back(same_node: None) -> None:
    target = Target()
    direct, server = await connected(target)
    pending = direct.hang.remote()
    await until(lambda: server.calls == 1)
    server.close()  # the actor went away mid-call
    with pytest.raises(ChannelClosed, match="outcome unknown"):
        await asyncio.wait_for(pending, 5)
    # the next call goes through Ray (which asks for the channel again, after RETRY_S)
    assert await direct.add.remote(1) == ("ray", "add", (1,), {})
    assert not direct.connected


async def test_reconnects_to_a_restarted_server(
    same_node: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(channel, "RETRY_S", 0.0)
    target = Target()
    direct, server = await connected(target)
    server.close()
    await until(lambda: not direct.connected)
    second = ChannelServer(target, SERVED)  # the restarted actor: a new socket
    direct._handle.info = ("node-1", await second.start())
    assert await direct.add.remote(1) == ("ray", "add", (1,), {})
    await until(lambda: direct.connected)
    assert await direct.add.remote(3, 4) == 7
    assert second.calls == 1
    second.close()


async def test_an_actor_on_another_node_stays_on_ray(same_node: None) -> None:
    server = ChannelServer(Target(), SERVED)
    handle = FakeHandle(("node-2", await server.start()))
    direct = Direct(handle, SERVED)
    for _ in range(3):
        assert await direct.add.remote(1) == ("ray", "add", (1,), {})
        await asyncio.sleep(0.01)
    assert not direct.connected and server.calls == 0
    server.close()


async def test_an_actor_without_a_channel_stays_on_ray(same_node: None) -> None:
    direct = Direct(FakeHandle(AttributeError("no channel method")), SERVED)
    assert await direct.add.remote(1) == ("ray", "add", (1,), {})
    await asyncio.sleep(0.02)
    assert await direct.add.remote(2) == ("ray", "add", (2,), {})
    assert not direct.connected


def test_off_a_loop_calls_go_through_ray(same_node: None) -> None:
    direct = Direct(FakeHandle(("node-1", "/nonexistent")), SERVED)
    ref = direct.add.remote(1)
    assert isinstance(ref, FakeRef) and direct._connecting is None


async def test_sockets_live_in_a_private_directory_and_stale_ones_go(tmp_path: Path) -> None:
    directory = channel._socket_dir()
    assert os.stat(directory).st_mode & 0o777 == 0o700
    dead = os.path.join(directory, "999999999-dead.sock")
    Path(dead).touch()
    server = ChannelServer(Target(), SERVED)
    path = await server.start()
    assert os.path.dirname(path) == directory
    assert not os.path.exists(dead)
    server.close()
    assert not os.path.exists(path)


async def test_without_ray_there_is_no_channel() -> None:
    """Outside Ray (a desk driven in process by tests) nothing connects, even to an actor
    object that answers ``channel()``: its calls must keep going through the handle given."""
    server = ChannelServer(Target(), SERVED)
    direct = Direct(FakeHandle((None, await server.start())), SERVED)
    for _ in range(3):
        assert await direct.add.remote(1) == ("ray", "add", (1,), {})
        await asyncio.sleep(0.01)
    assert not direct.connected and server.calls == 0
    server.close()


async def test_jt_channels_0_keeps_every_call_on_ray(
    same_node: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JT_CHANNELS", "0")
    server = ChannelServer(Target(), SERVED)
    direct = Direct(FakeHandle(("node-1", await server.start())), SERVED)
    for _ in range(3):
        assert await direct.add.remote(1) == ("ray", "add", (1,), {})
        await asyncio.sleep(0.01)
    assert not direct.connected and direct._handle.ray_calls == ["add"] * 3
    server.close()


async def test_a_handle_dropped_from_another_thread_closes_on_its_loop(same_node: None) -> None:
    """The API replaces handles from a worker thread (refresh_handles): the connection is
    closed on the loop that owns it, and the caller goes back to Ray."""
    target = Target()
    direct, server = await connected(target)
    await asyncio.to_thread(channel.drop, direct)
    await until(lambda: not server._writers)  # the server saw the connection end
    assert not direct.connected
    assert await direct.add.remote(1) == ("ray", "add", (1,), {})
    server.close()
