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


def broker_name(broker: str, account_id: int) -> str:
    """The broker actor serving an account: the one paper actor, or one per Tradovate login."""
    return BROKER if broker == "paper" else f"broker-{broker}-{account_id}"


def host_name(index: int) -> str:
    return f"recorder-host-{index}"


def connect(address: str | None, namespace: str, num_cpus: int | None = None) -> None:
    """Join ``address`` (e.g. ``auto``) or start a local Ray; idempotent. Call it from a
    long-lived thread (the main thread): a local Ray's daemons die with the starting thread."""
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
    else:
        if num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        # Ray keeps an event record of every actor call in the GCS (~3.3 MiB per 1,000 calls,
        # to a ~360 MiB plateau); the feed makes calls continuously and we do not use Ray's
        # task list, so a local Ray we start keeps none (set the variable to override).
        os.environ.setdefault("RAY_task_events_report_interval_ms", "0")
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
