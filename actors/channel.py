"""Direct channels: an actor's hot calls over a Unix socket to callers on the same node.

Why: a live order crosses two to four actor hops between a signal or tick and the broker's
adapter (host → broker to place, broker → host for the fill, feed → host for the tick that
exits). Measured on the 2-core machine (``bench.hop``: two async Ray actors, one message every
3 ms): a one-way Ray actor call took p50 1.9–2.0 ms, p99 4.0–4.7 ms from send to the callee's
loop; the same message as a frame over a Unix socket between the same processes p50 0.18–0.21
ms, p99 0.54–0.61 ms. A Ray call goes through the caller's and the callee's core worker threads and the
callee's task thread, each handing over the GIL; a frame is read by the callee's event loop
itself.

Ray stays the control plane: it creates, names, restarts and finds the actors, and carries every
call until a channel is up. A channel only carries the methods its actor lists, and only to
callers on the actor's node (a Unix socket); a caller elsewhere, or one whose channel broke
(the actor restarted), goes on through Ray and connects again in the background.

Semantics are Ray's for an async actor with ``max_task_retries=0``: each call runs as a task on
the actor's default loop, at most once; a call whose connection broke before its answer fails
with :class:`ChannelClosed` (its outcome unknown, like an actor-died error: callers resolve
doubt by asking, never by re-sending). Arguments are pickled when the call is made, results and
exceptions come back pickled. (Calls on one channel reach the loop in order; Ray promises no
order for async actors, and callers do not rely on one.) Pickle is safe here for the reason it is
in Ray: only processes of the same user on the same machine can open the socket (its directory
is private to that user).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import struct
import tempfile
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("justtrades.channel")

_HEADER = struct.Struct("<I")
#: A caller whose connect failed tries again after this long (while using Ray meanwhile).
RETRY_S = 1.0


class ChannelClosed(ConnectionError):
    """The channel broke before the call's answer came: whether the call ran is unknown."""


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read(reader: asyncio.StreamReader) -> Any:
    (n,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(n))


def _socket_dir() -> str:
    """A directory only this user can enter (the sockets in it accept pickled calls)."""
    path = os.path.join(tempfile.gettempdir(), f"justtrades-channels-{os.getuid()}")
    os.makedirs(path, mode=0o700, exist_ok=True)
    if os.stat(path).st_uid != os.getuid():
        raise PermissionError(f"{path} belongs to another user")
    os.chmod(path, 0o700)
    return path


def _remove_stale(directory: str) -> None:
    """Sockets of processes that died without closing their server."""
    for name in os.listdir(directory):
        pid = name.split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(directory, name))
        except PermissionError:
            pass


class ChannelServer:
    """Serves ``methods`` of ``target`` (coroutine methods) on a Unix socket; start it from a
    coroutine running on the loop the calls must run on (the actor's default loop)."""

    def __init__(self, target: Any, methods: Iterable[str]) -> None:
        self.target = target
        self.methods = frozenset(methods)
        self.path: str | None = None
        self.calls = 0
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        if self.path is None:
            directory = _socket_dir()
            _remove_stale(directory)
            path = os.path.join(directory, f"{os.getpid()}-{id(self):x}.sock")
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            self._server = await asyncio.start_unix_server(self._serve, path)
            self.path = path
        return self.path

    def close(self) -> None:
        """Stop serving and drop every connection (their callers' pending calls fail with
        :class:`ChannelClosed` and they go back to Ray)."""
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self._writers.add(writer)
        try:
            while True:
                req_id, method, args, kwargs = await _read(reader)
                task = loop.create_task(self._run(writer, req_id, method, args, kwargs))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the caller went away, or the loop is closing
        except Exception:  # a frame we cannot read: this connection is unusable
            log.exception("channel: bad frame, closing the connection")
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _run(
        self,
        writer: asyncio.StreamWriter,
        req_id: int,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.calls += 1
        try:
            if method not in self.methods:
                raise AttributeError(f"{method!r} is not served on this channel")
            reply: tuple[int, bool, Any] = (
                req_id,
                True,
                await getattr(self.target, method)(*args, **kwargs),
            )
        except Exception as exc:
            reply = (req_id, False, _portable(exc))
        try:
            data = _frame(reply)
        except Exception as exc:  # an answer pickle cannot carry
            data = _frame((req_id, False, RuntimeError(f"unpicklable answer: {exc!r}")))
        if not writer.is_closing():
            writer.write(data)


def _portable(exc: Exception) -> Exception:
    """``exc`` if the caller can unpickle it, else a RuntimeError that says what it was (an
    exception whose constructor takes other arguments than it passes on cannot be rebuilt,
    and the caller could not even tell which call it answered)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


class _Connection:
    """One caller's connection: requests out, answers matched back by id."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.next_id = 0
        self.alive = True
        self.loop = asyncio.get_running_loop()
        self.reader_task = self.loop.create_task(self._answers(reader))

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self.next_id += 1
        data = _frame((self.next_id, method, args, kwargs))  # pickled now, as Ray does
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        self.pending[self.next_id] = fut
        self.writer.write(data)
        return fut

    async def _answers(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                req_id, ok, value = await _read(reader)
                fut = self.pending.pop(req_id, None)
                if fut is None or fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception:
            log.exception("channel: bad answer frame, closing the connection")
        finally:
            self.close()

    def close_soon(self) -> None:
        """:meth:`close` on the connection's loop (a handle may be replaced from a worker
        thread, e.g. the API's ``refresh_handles``; transports are not thread-safe)."""
        self.alive = False
        try:
            on_loop = asyncio.get_running_loop() is self.loop
        except RuntimeError:
            on_loop = False
        if on_loop:
            self.close()
        else:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to close
                self.loop.call_soon_threadsafe(self.close)

    def close(self) -> None:
        self.alive = False
        self.writer.close()
        pending, self.pending = self.pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(
                    ChannelClosed("channel closed before the answer: outcome unknown")
                )


def _consume(fut: asyncio.Future[Any]) -> None:
    """Callers may not await a call (fire and forget, as with Ray): keep its error quiet."""
    if not fut.cancelled():
        fut.exception()


def enabled() -> bool:
    """``JT_CHANNELS=0`` (in the environment of the processes that call) keeps every call on
    Ray: an operator's switch, and the benches' way to measure what the channels change."""
    return os.environ.get("JT_CHANNELS", "1") != "0"


def _own_node() -> str | None:
    try:
        import ray

        if not ray.is_initialized():
            return None
        return str(ray.get_runtime_context().get_node_id())
    except Exception:
        return None


async def channel_info(server: ChannelServer) -> tuple[str | None, str]:
    """What an actor's ``channel()`` answers: its node and its started server's socket."""
    return _own_node(), await server.start()


class Direct:
    """A Ray actor handle whose ``methods`` go over the actor's channel while it is connected.

    ``handle.method.remote(...)`` as with Ray: the result is awaitable either way (a Ray
    ObjectRef, or a future of the channel). The actor must answer ``channel()`` with
    ``(node_id, socket path)`` (:class:`ChannelServer`). Connecting happens in the background,
    from the first call made on a running event loop; until then, and whenever the channel is
    down, calls go through Ray."""

    def __init__(self, handle: Any, methods: Iterable[str]) -> None:
        self._handle = handle
        self._methods = frozenset(methods)
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._next_try = 0.0
        self.sent = {"channel": 0, "ray": 0}

    @property
    def connected(self) -> bool:
        return self._conn is not None and self._conn.alive

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in self._methods:
            return getattr(self._handle, name)
        return _Method(self, name)

    def _call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        conn = self._conn
        if conn is not None and conn.alive:
            self.sent["channel"] += 1
            return conn.call(name, args, kwargs)
        self._conn = None
        self._maybe_connect()
        self.sent["ray"] += 1
        return getattr(self._handle, name).remote(*args, **kwargs)

    def _maybe_connect(self) -> None:
        if self._connecting is not None or time.monotonic() < self._next_try:
            return
        if not enabled():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # not on a loop: Ray only
        self._next_try = time.monotonic() + RETRY_S
        self._connecting = loop.create_task(self._connect())

    async def _connect(self) -> None:
        try:
            node, path = await self._handle.channel.remote()
            if not path or node is None or node != _own_node():
                return  # another node, or no Ray: Ray only (asked again after RETRY_S)
            reader, writer = await asyncio.open_unix_connection(path)
            self._conn = _Connection(reader, writer)
        except Exception as exc:
            log.debug("channel: not connected (%r); calls go through Ray", exc)
        finally:
            self._connecting = None

    def close(self) -> None:
        """Drop the channel (from any thread); a later call goes through Ray and reconnects."""
        conn, task = self._conn, self._connecting
        self._conn = self._connecting = None
        if conn is not None:
            conn.close_soon()
        if task is not None:
            with contextlib.suppress(RuntimeError):
                task.get_loop().call_soon_threadsafe(task.cancel)


def drop(handle: Any) -> None:
    """Close ``handle``'s channel if it has one (a handle being replaced by a fresh lookup)."""
    if isinstance(handle, Direct):
        handle.close()


class _Method:
    __slots__ = ("direct", "name")

    def __init__(self, direct: Direct, name: str) -> None:
        self.direct, self.name = direct, name

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        return self.direct._call(self.name, args, kwargs)
