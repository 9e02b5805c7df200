"""Small synchronous clients for the Tradovate simulator, for tests (SIMULATOR ONLY).

:class:`Api` logs in over REST and drives the admin endpoints; :class:`Socket` speaks the raw
websocket framing of reference/tradovate.md §5 (``o``/``h``/``a[...]``/``c[...]`` frames,
``endpoint\nid\nquery\nbody`` requests) and keeps decoded items until a test consumes them.
They exercise the simulator, not the project's Tradovate client, which has its own tests.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from actors.broker.tradovate.sim.server import SimServer

__all__ = ["Api", "Socket", "user_socket"]


class Api:
    """A logged-in REST client (first user of the default config unless told otherwise) plus
    the simulator's admin endpoints; ``symbol`` is the contract :meth:`order` and
    :meth:`prices` use."""

    def __init__(self, server: SimServer, symbol: str = "MNQZ6", **login: Any) -> None:
        self.server = server
        self.symbol = symbol
        self.http = httpx.Client(base_url=server.base_url, timeout=10, trust_env=False)
        self.admin = httpx.Client(base_url=server.admin_url, timeout=10, trust_env=False)
        self.auth = self.login(**login)
        self.token: str = self.auth["accessToken"]
        self.account = self.get("account/list")[0]

    def login(self, **overrides: Any) -> dict[str, Any]:
        user = self.server.sim.config.users[0]
        body = {"name": user.name, "password": user.password, "appId": "tests", "appVersion": "1"}
        body |= {"cid": 0, "sec": "secret", "deviceId": "device-1"} | overrides
        r = self.http.post("/auth/accesstokenrequest", json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def raw(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return self.http.request(method, "/" + path, headers=headers, **kw)

    def get(self, path: str, **params: Any) -> Any:
        r = self.raw("GET", path, params=params)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = self.raw("POST", path, json=body)
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def order(self, action: str, qty: int = 1, kind: str = "Market", **extra: Any) -> Any:
        body = {
            "accountId": self.account["id"],
            "accountSpec": self.account["name"],
            "action": action,
            "symbol": self.symbol,
            "orderQty": qty,
            "orderType": kind,
            "isAutomated": True,
        }
        return self.post("order/placeorder", body | extra)

    def prices(self, *prices: float) -> None:
        r = self.admin.post("/prices", json=[{"symbol": self.symbol, "price": p} for p in prices])
        assert r.status_code == 200, r.text

    def faults(self, **changes: Any) -> dict[str, Any]:
        r = self.admin.post("/faults", json=changes)
        assert r.status_code == 200, r.text
        return r.json()

    def status(self, order_id: int) -> str:
        return self.get("order/item", id=order_id)["ordStatus"]


class Socket:
    """A websocket client speaking the §5 framing; keeps decoded items it has not consumed."""

    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(url, open_timeout=5, proxy=None)
        self.raw: list[str] = []
        self.backlog: list[dict[str, Any]] = []
        self._id = 0
        self.close_reason: str | None = None
        assert self._frame(5) == "o"

    def _frame(self, timeout: float) -> str:
        frame = self.ws.recv(timeout=timeout)
        assert isinstance(frame, str)
        self.raw.append(frame)
        if frame.startswith("a"):
            self.backlog.extend(json.loads(frame[1:]))
        return frame

    def send(self, endpoint: str, body: Any = None, query: str = "") -> int:
        self._id += 1
        text = body if isinstance(body, str) else ("" if body is None else json.dumps(body))
        self.ws.send(f"{endpoint}\n{self._id}\n{query}\n{text}")
        return self._id

    def take(self, match: Callable[[dict[str, Any]], bool], timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, item in enumerate(self.backlog):
                if match(item):
                    return self.backlog.pop(i)
            self._frame(max(0.01, deadline - time.monotonic()))

    def request(self, endpoint: str, body: Any = None, query: str = "") -> dict[str, Any]:
        rid = self.send(endpoint, body, query)
        return self.take(lambda m: m.get("i") == rid and "e" not in m)

    def props(self, until: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """Props payloads (``d``) in arrival order, up to and including the first ``until``."""
        seen: list[dict[str, Any]] = []
        while not seen or not until(seen[-1]):
            seen.append(self.take(lambda m: m.get("e") == "props")["d"])
        return seen

    def closed(self, timeout: float = 5) -> int | None:
        """Read until the server closes; the close code."""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                self._frame(deadline - time.monotonic())
        except ConnectionClosed as exc:
            self.close_reason = exc.rcvd.reason if exc.rcvd else None
            return exc.rcvd.code if exc.rcvd else None
        raise AssertionError("the server did not close the socket")

    def close(self) -> None:
        self.ws.close()


def user_socket(server: SimServer, token: str, sync: bool = True) -> Socket:
    sock = Socket(server.ws_url)
    assert sock.request("authorize", token) == {"s": 200, "i": 1}
    if sync:
        assert "users" in sock.request("user/syncrequest", {"users": [1]})["d"]
    return sock
