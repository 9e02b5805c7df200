"""Configuration from environment variables (prefix ``JT_``) or a ``.env`` file.

Every setting has an embedded default, so ``justtrades serve`` runs with none set: local Ray
started by the command, SQLite under ``./var/``, the simulated feed and the paper broker.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_recorder_hosts() -> int:
    """One recorder host per CPU beyond the one the API process needs, at least one. On a
    2-core machine one host carries more signals than two (bench.ingest back to back: 953/s,
    p99 79 ms with one host; 651/s, p99 138 ms with two): its batches are twice as big, so
    half the Ray calls, and one writer fewer queues for the SQLite write lock. More hosts pay
    off only with cores for them to run on."""
    return max(1, (os.cpu_count() or 2) - 1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="JT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///./var/justtrades.db",
        description="SQLAlchemy URL; postgresql+psycopg://user@host/db for the scale-out store",
    )
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str = Field(
        default="",
        description="base URL TradingView posts to (shown in webhook URLs); default http://host:port",
    )
    ray_address: str | None = Field(
        default=None, description="existing Ray cluster (e.g. 'auto'); unset starts a local one"
    )
    namespace: str = "justtrades"
    num_cpus: int | None = Field(default=None, description="CPUs for a locally started Ray")
    recorder_hosts: int = Field(
        default_factory=lambda: default_recorder_hosts(),
        ge=1,
        description="RecorderActor processes (default: one per CPU beyond the API's, at least 1)",
    )
    feed: str = Field(
        default="simulated",
        description="'simulated', 'replay:<csv path>', 'none' (ticks pushed through the API), "
        "or live sources with failover: 'tradingview' (websocket -> scanner), 'tradovate' "
        "(md -> tradingview -> scanner) or an explicit chain such as 'tradovate>scanner'",
    )
    feed_symbols: str = Field(
        default="MNQ1!,MES1!,NQ1!,ES1!,M2K1!,MYM1!,CL1!,GC1!",
        description="symbols the feed quotes (comma separated; continuous symbols are quoted "
        "as today's front-month contract)",
    )
    feed_rate_hz: float = Field(default=4.0, description="simulated ticks per second per symbol")
    feed_speed: float = Field(default=1.0, description="replay speed multiplier (0 = max)")
    feed_batch_ms: float = Field(default=5.0, description="tick coalescing window per batch")
    feed_tradingview_url: str = Field(
        default="wss://data.tradingview.com/socket.io/websocket?from=chart&type=chart",
        description="TradingView quote websocket (point at `justtrades sim-tradingview`)",
    )
    feed_tradingview_www_url: str = Field(
        default="https://www.tradingview.com",
        description="page that turns the stored session cookies into an auth token",
    )
    feed_scanner_url: str = Field(
        default="https://scanner.tradingview.com", description="TradingView scanner base"
    )
    feed_scanner_interval_s: float = Field(default=5.0, description="scanner poll interval")
    feed_stale_s: float = Field(
        default=15.0,
        description="a live source silent this long (not even a heartbeat; TradingView's come "
        "every ~10 s, UNCONFIRMED) is failed over from; its client reconnects after twice that",
    )
    feed_symbol_stale_s: float = Field(
        default=120.0,
        description="market open and no tick of a symbol this long: its source is stale (0: off)",
    )
    feed_recover_s: float = Field(
        default=10.0, description="a better source must be healthy this long to switch back"
    )
    feed_check_s: float = Field(default=0.5, description="live-source health check interval")
    feed_auth_retry_s: float = Field(
        default=300.0, description="at most one TradingView re-login per this many seconds"
    )
    feed_tradovate_md_url: str = Field(
        default="wss://md.tradovateapi.com/v1/websocket",
        description="Tradovate market-data websocket",
    )
    feed_tradovate_account_id: int | None = Field(
        default=None,
        description="account whose Tradovate login streams md (unset: the first with one)",
    )
    dedupe_window_s: float = Field(default=60.0, description="repeat signals inside are duplicates")
    max_body_bytes: int = 64 * 1024
    rate_limit_per_minute: int = Field(default=120, description="webhooks per token per minute")
    tradingview_allowlist: bool = Field(
        default=False, description="accept webhooks only from TradingView's published addresses"
    )
    paper_slippage_ticks: int = 0
    paper_latency_ms: float = 0.0
    excursion_flush_s: float = Field(default=1.0, description="max lag of stored excursions")
    health_interval_s: float = 1.0
    restart_budget: int = Field(
        default=10, ge=1, description="restarts of one actor in restart_window_s before FAILED"
    )
    restart_window_s: float = Field(default=300.0, description="window of the restart budget")
    backoff_start_s: float = Field(
        default=0.5, description="wait before the 2nd restart of a burst (doubles after)"
    )
    backoff_max_s: float = Field(default=30.0, description="longest restart back-off")
    backoff_quiet_s: float = Field(
        default=60.0, description="a restart this long after the previous start goes at once"
    )
    stall_after_s: float = Field(
        default=10.0, description="main loop silent this long: the actor shows as stalled"
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) encrypting broker credentials, comma separated (first "
        "encrypts, all decrypt); unset with SQLite: generated once into secret.key next to the "
        "database; required with PostgreSQL",
    )
    tradovate_demo_url: str = Field(
        default="https://demo.tradovateapi.com/v1", description="Tradovate demo REST base"
    )
    tradovate_live_url: str = Field(
        default="https://live.tradovateapi.com/v1", description="Tradovate live REST base"
    )

    @field_validator("feed")
    @classmethod
    def _known_feed(cls, value: str) -> str:
        """A typo in ``JT_FEED`` fails at start-up with the accepted forms, not in the actor."""
        from actors.feed.options import parse_chain

        parse_chain(value)
        return value

    def resolved_database_url(self) -> str:
        """SQLite paths made absolute: actor processes do not share the driver's working dir."""
        prefix = "sqlite:///"
        url = self.database_url
        if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite://":
            return prefix + str(Path(url[len(prefix) :]).resolve())
        return url

    def tree_config(self) -> dict[str, Any]:
        """What the supervisor needs to build the tree (plain data, crosses processes)."""
        return {
            "namespace": self.namespace,
            "recorder_hosts": self.recorder_hosts,
            "feed": self.feed_config(),
            "symbols": self.symbols(),
            "feed_rate_hz": self.feed_rate_hz,
            "feed_speed": self.feed_speed,
            "feed_batch_ms": self.feed_batch_ms,
            "paper_slippage_ticks": self.paper_slippage_ticks,
            "paper_latency_ms": self.paper_latency_ms,
            "database_url": self.resolved_database_url(),
            "excursion_flush_s": self.excursion_flush_s,
            "health_interval_s": self.health_interval_s,
            "restart_budget": self.restart_budget,
            "restart_window_s": self.restart_window_s,
            "backoff_start_s": self.backoff_start_s,
            "backoff_max_s": self.backoff_max_s,
            "backoff_quiet_s": self.backoff_quiet_s,
            "stall_after_s": self.stall_after_s,
            # for the broker actors of Tradovate logins (credentials are opened by the supervisor)
            "secret_key": self.secret_key.get_secret_value() if self.secret_key else None,
            "tradovate_demo_url": self.tradovate_demo_url,
            "tradovate_live_url": self.tradovate_live_url,
        }

    def feed_config(self) -> dict[str, Any]:
        """The feed actor's ``source`` (:class:`actors.feed.options.FeedOptions` fields): the
        spec plus what live sources need. Plain data; the key and database URL let the feed
        open the stored TradingView cookies and the Tradovate md login itself."""
        return {
            "spec": self.feed,
            "tradingview_url": self.feed_tradingview_url,
            "tradingview_www_url": self.feed_tradingview_www_url,
            "scanner_url": self.feed_scanner_url,
            "scanner_interval_s": self.feed_scanner_interval_s,
            "stale_s": self.feed_stale_s,
            "symbol_stale_s": self.feed_symbol_stale_s,
            "recover_s": self.feed_recover_s,
            "check_s": self.feed_check_s,
            "auth_retry_s": self.feed_auth_retry_s,
            "tradovate_md_url": self.feed_tradovate_md_url,
            "tradovate_demo_url": self.tradovate_demo_url,
            "tradovate_live_url": self.tradovate_live_url,
            "tradovate_account_id": self.feed_tradovate_account_id,
            "database_url": self.resolved_database_url(),
            "secret_key": self.secret_key.get_secret_value() if self.secret_key else None,
        }

    @property
    def base_url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"

    def symbols(self) -> list[str]:
        return [s.strip() for s in self.feed_symbols.split(",") if s.strip()]


@cache
def get_settings() -> Settings:
    return Settings()
