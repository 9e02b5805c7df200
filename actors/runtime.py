"""Connecting to Ray, the namespace and the names of the actors in the tree.

Every trading actor is detached and named in one namespace, so a crash of the process that
created it (the API driver, the supervisor) does not take it down, and any driver finds it by
name. Calls are at-most-once (``max_task_retries=0``): a call that may have run is resolved by
asking, never by re-sending (reference/ray.md §1).
"""

from __future__ import annotations

import os
from typing import Any

import ray

SUPERVISOR = "supervisor"
FEED = "feed"
BROKER = "broker-paper"


def host_name(index: int) -> str:
    return f"recorder-host-{index}"


def connect(address: str | None, namespace: str, num_cpus: int | None = None) -> None:
    """Join ``address`` (e.g. ``auto``) or start a local Ray; idempotent."""
    if ray.is_initialized():
        return
    kwargs: dict[str, Any] = {
        "namespace": namespace,
        "include_dashboard": False,
        "log_to_driver": os.environ.get("JT_RAY_LOG_TO_DRIVER", "0") == "1",
        "ignore_reinit_error": True,
    }
    if address:
        kwargs["address"] = address
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)


def actor_options(name: str, namespace: str, **extra: Any) -> dict[str, Any]:
    """Options shared by every actor in the tree."""
    return {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "max_restarts": -1,
        "max_task_retries": 0,
        "num_cpus": 0,
        "get_if_exists": True,
        **extra,
    }


def get(name: str, namespace: str) -> Any:
    return ray.get_actor(name, namespace=namespace)
