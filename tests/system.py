"""The whole system under test: real Ray, real uvicorn on loopback, a real database.

One Ray runtime per test session (starting one costs ~5 s); each system gets its own Ray
namespace, database and port, so systems never see each other's actors or rows.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import ray
import uvicorn

from actors.broker.tradovate.sim.server import listen_socket
from actors.runtime import SUPERVISOR, get
from actors.settings import Settings
from api.app import create_app


@dataclass
class System:
    settings: Settings
    base_url: str
    client: httpx.Client

    def create_recorder(self, name: str, settings: dict[str, Any], symbol: str = "MNQ1!") -> dict:
        r = self.client.post(
            "/api/recorders", json={"name": name, "symbol": symbol, "settings": settings}
        )
        assert r.status_code == 201, r.text
        return r.json()

    def post_alert(
        self, token: str, body: str | bytes, content_type: str = "application/json"
    ) -> httpx.Response:
        return self.client.post(
            f"/webhook/{token}", content=body, headers={"Content-Type": content_type}
        )

    def push_ticks(self, ticks: list[dict[str, Any]]) -> dict[str, Any]:
        r = self.client.post("/api/feed/ticks", json={"ticks": ticks, "wait": True})
        assert r.status_code == 200, r.text
        assert r.json()["drained"] is True
        return r.json()


def ensure_ray() -> None:
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace="jt-tests")


@contextmanager
def running_system(database_url: str, **overrides: Any) -> Iterator[System]:
    ensure_ray()
    sock = listen_socket()  # bound until the server serves on it: no other socket takes the port
    port = int(sock.getsockname()[1])
    defaults: dict[str, Any] = {
        "namespace": f"jt-test-{uuid.uuid4().hex[:10]}",
        "host": "127.0.0.1",
        "port": port,
        "feed": "none",
        "recorder_hosts": 2,
        "excursion_flush_s": 0.2,
        "health_interval_s": 0.5,
    }
    settings = Settings(database_url=database_url, **(defaults | overrides))
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start")
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            yield System(settings, base, client)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        sup = get(SUPERVISOR, settings.namespace)
        ray.get(sup.shutdown.remote())
        ray.kill(sup, no_restart=True)
