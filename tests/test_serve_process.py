"""``justtrades serve`` as a real process: after a burst of requests and a quiet spell, Ray's
own daemons (gcs_server, raylet) are still alive. They are tied to the thread that started
Ray; starting it from a thread-pool worker killed them when the pool retired the thread."""

from __future__ import annotations

import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from bench.memory import kill_tree, pids_with_env
from bench.startup import RUN_ENV, clean_env, free_port, justtrades_script

pytestmark = [pytest.mark.slow, pytest.mark.ray]

IDLE_S = 13  # AnyIO retires idle worker threads after 10 s


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_ray_daemons_survive_a_quiet_spell(tmp_path: Path) -> None:
    tag, port = uuid.uuid4().hex, free_port()
    env = clean_env(
        JT_PORT=str(port), JT_NAMESPACE=f"jt-serve-{tag[:8]}", JT_FEED="none", **{RUN_ENV: tag}
    )
    proc = subprocess.Popen(
        [justtrades_script(), "serve"], cwd=tmp_path, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "serve did not come up"
            time.sleep(0.2)
        with ThreadPoolExecutor(16) as pool:  # many thread-pool workers in the API
            codes = list(
                pool.map(
                    lambda _: httpx.get(f"{base}/api/recorders", timeout=10).status_code, range(40)
                )
            )
        assert set(codes) == {200}
        time.sleep(IDLE_S)
        assert httpx.get(f"{base}/api/recorders", timeout=10).status_code == 200
        time.sleep(1)
        ours = [cmdline(pid) for pid in pids_with_env((RUN_ENV, tag))]
        assert any("gcs_server" in c for c in ours), "gcs_server died"
        assert any("raylet" in c for c in ours), "raylet died"
    finally:
        kill_tree(proc)
