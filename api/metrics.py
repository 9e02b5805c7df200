"""Prometheus metrics: the API's own, plus gauges read from the actors at scrape time.

Actor figures come from the ``status`` every actor already serves (one call per actor per
scrape, cached briefly), so a scrape never touches a broker and adds no work to the hot paths.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOKS = Counter(
    "jt_webhooks_total", "Webhook deliveries by outcome", ["status", "reason"], registry=REGISTRY
)
WEBHOOK_LATENCY = Histogram(
    "jt_webhook_seconds",
    "Webhook handling time (receipt to answer)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 3.0),
    registry=REGISTRY,
)
CHILD_UP = Gauge(
    "jt_actor_up", "1 when the actor answers its health ping", ["actor"], registry=REGISTRY
)
CHILD_RESTARTS = Gauge(
    "jt_actor_restarts", "Restarts seen by the supervisor", ["actor"], registry=REGISTRY
)
CHILD_FAILED = Gauge(
    "jt_actor_failed",
    "1 when the supervisor gave up on the actor (restart budget spent; restart by hand)",
    ["actor"],
    registry=REGISTRY,
)
CHILD_STALLED = Gauge(
    "jt_actor_stalled",
    "1 when the actor answers pings but its main event loop has not run for a while",
    ["actor"],
    registry=REGISTRY,
)
CHILD_LOOP_LAG = Gauge(
    "jt_actor_loop_lag_seconds",
    "Age of the actor's last main-loop beat at its last health ping",
    ["actor"],
    registry=REGISTRY,
)
HOST_COUNTER = Gauge(
    "jt_host_events", "Events processed by a recorder host", ["host", "kind"], registry=REGISTRY
)
HOST_OPEN = Gauge(
    "jt_open_positions", "Open positions held by a recorder host", ["host"], registry=REGISTRY
)
FEED_TICKS = Gauge("jt_feed_ticks", "Ticks received by the feed", registry=REGISTRY)
FEED_AGE = Gauge(
    "jt_feed_last_tick_age_seconds",
    "Age of the last tick per symbol",
    ["symbol"],
    registry=REGISTRY,
)


def update_from_status(status: dict[str, Any]) -> None:
    for child in status.get("tree", {}).get("children", []):
        CHILD_UP.labels(child["name"]).set(1 if child["state"] == "running" else 0)
        CHILD_RESTARTS.labels(child["name"]).set(child["restarts"])
        CHILD_FAILED.labels(child["name"]).set(1 if child["state"] == "failed" else 0)
        CHILD_STALLED.labels(child["name"]).set(1 if child["state"] == "stalled" else 0)
        if child.get("loop_lag_s") is not None:
            CHILD_LOOP_LAG.labels(child["name"]).set(child["loop_lag_s"])
    for host in status.get("hosts", []):
        if "index" not in host:
            continue
        name = f"recorder-host-{host['index']}"
        for kind, n in host.get("counters", {}).items():
            HOST_COUNTER.labels(name, kind).set(n)
        HOST_OPEN.labels(name).set(host.get("open_positions", 0))
    feed = status.get("feed") or {}
    if "ticks_in" in feed:
        FEED_TICKS.set(feed["ticks_in"])
    for symbol, last in feed.get("last", {}).items():
        FEED_AGE.labels(symbol).set(last["age_s"])


def render() -> bytes:
    return generate_latest(REGISTRY)
