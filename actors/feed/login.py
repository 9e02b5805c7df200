"""The feed's TradingView login: stored cookies -> auth token, and noticing when it stops working.

:class:`FeedLogin` runs in the feed actor. :meth:`FeedLogin.login` opens the stored cookies
(:mod:`actors.feed.cookies`) and fetches a token (:mod:`actors.feed.tv_auth`); no cookies means
anonymous (delayed) data. Expiry is detected from the feed's behaviour: when every symbol with a
known ``update_mode`` is delayed although a token was sent, or the server keeps refusing the
connection with a fatal message (how TradingView rejects a token is UNCONFIRMED),
:meth:`FeedLogin.on_delayed` fetches a token again (at most once per ``auth_retry_s``):

- the page has no token any more: the cookies **expired**; the feed goes on anonymously;
- a different token: the feed reconnects with it;
- the same token: the login works but buys no real-time data (**delayed**: a token TradingView
  no longer honours, or no real-time entitlement for these exchanges; which one is UNCONFIRMED),
  or the token is **refused**: the feed reconnects anonymously (delayed data rather than none)
  and tries the cookies again every ``auth_retry_s``.

Every outcome is written to the cookies' row (``status``/``detail``), so ``GET
/api/feed/cookies`` shows it, and to :meth:`status`. Cookies and tokens are never logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from actors.broker.credentials import CredentialError, SecretKeyMissing
from actors.feed.options import FeedOptions
from actors.feed.tv_auth import fetch_auth_token

if TYPE_CHECKING:
    from actors.store import Store

__all__ = ["FeedLogin"]

log = logging.getLogger("justtrades.feed.login")


class FeedLogin:
    def __init__(self, options: FeedOptions, clock: Callable[[], float] = time.time) -> None:
        self.options = options
        self._clock = clock
        self._store: Store | None = None
        self._token: str | None = None
        self.state = "anonymous"  # anonymous | valid | delayed | refused | expired | error
        self.detail: str | None = "no cookies stored"
        self.last_attempt: float | None = None
        self.logins = 0

    @property
    def token(self) -> str | None:
        return self._token

    def _open(self) -> dict[str, str] | None:
        """The stored cookies (runs in a worker thread: store and key file I/O)."""
        from actors.feed import cookies as cookie_store  # the store: only when there is one
        from actors.store import Store

        if self.options.database_url is None:
            return None
        if self._store is None:
            self._store = Store(self.options.database_url)
        if not cookie_store.info(self._store).set:
            return None  # (no key needed: do not create a key file just to find nothing)
        box = cookie_store.box_for(self.options.secret_key, self.options.database_url)
        return cookie_store.load_cookies(self._store, box)

    def _record(self, status: str, detail: str | None) -> None:
        from actors.feed import cookies as cookie_store

        self.state, self.detail = status, detail
        if self._store is not None:
            try:
                cookie_store.set_status(self._store, status, detail)
            except Exception as exc:  # status bookkeeping must never stop the feed
                log.warning("tradingview cookie status not stored: %s", type(exc).__name__)

    async def login(self) -> str | None:
        """A token from the stored cookies, or None (anonymous). Never raises."""
        self.last_attempt = self._clock()
        try:
            found = await asyncio.to_thread(self._open)
        except (CredentialError, SecretKeyMissing) as exc:
            self._token, self.state, self.detail = None, "error", str(exc)
            log.warning("tradingview cookies unusable: %s", type(exc).__name__)
            return None
        except Exception as exc:
            self._token, self.state, self.detail = None, "error", f"store: {type(exc).__name__}"
            log.warning("tradingview cookies not read: %s", type(exc).__name__)
            return None
        if found is None:
            self._token, self.state, self.detail = None, "anonymous", "no cookies stored"
            return None
        result = await fetch_auth_token(found, self.options.tradingview_www_url)
        self.logins += 1
        await asyncio.to_thread(self._record, result.status, result.detail)
        self._token = result.token if result.status == "valid" else None
        log.info("tradingview login: %s", result.status)
        return self._token

    async def on_delayed(self, refused: bool = False) -> tuple[bool, str | None]:
        """TradingView serves delayed data although our token was sent (``refused``: it keeps
        ending our connections instead). Returns ``(reconnect, token)``: whether the feed
        should reconnect, and with which token (None: anonymously, which at least brings the
        delayed stream back when the token is refused)."""
        old = self._token
        if old is None:
            return False, None
        kind = "refused" if refused else "delayed"
        detail = (
            "TradingView refuses this login's token"
            if refused
            else "TradingView serves delayed data with this login"
        )
        now = self._clock()
        if self.last_attempt is not None and now - self.last_attempt < self.options.auth_retry_s:
            if self.state != kind:
                await asyncio.to_thread(self._record, kind, detail)
            if refused:
                self._token = None
            return refused, None
        new = await self.login()
        if new is None:
            return True, None  # expired (or unreadable): go on anonymously, say so in status
        if new == old:
            await asyncio.to_thread(self._record, kind, detail + " (token unchanged)")
            if refused:
                self._token = None
            return refused, None
        return True, new

    def retry_due(self, now: float) -> bool:
        """Anonymous after a failure that may pass (unreachable, refused): time to try again."""
        return (
            self._token is None
            and self.state in ("error", "refused")
            and self.last_attempt is not None
            and now - self.last_attempt >= self.options.auth_retry_s
        )

    async def on_real_time(self) -> None:
        """The data is real time again (e.g. the entitlement came back): say so."""
        if self._token is not None and self.state == "delayed":
            await asyncio.to_thread(self._record, "valid", "real-time data with this login")

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "detail": self.detail,
            "real_time_token": self._token is not None,
            "logins": self.logins,
            "last_attempt": self.last_attempt,
        }
