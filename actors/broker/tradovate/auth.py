"""Tradovate authentication: credential login, OAuth code exchange, renewal, 401 recovery.

Section numbers (§) refer to ``reference/tradovate.md``.

* :class:`Endpoints`: base URLs for live/demo/market data (§1), overridable (tests use loopback).
* :class:`Credentials`: the ``accesstokenrequest`` body (§2.1) with a *stable* ``deviceId``:
  :func:`derive_device_id` makes it from a configured secret and the login name, so it is the
  same on every start (an unstable device id is the #1 cause of 401 on live order placement).
* :class:`TradovateAuth` holds one token per login and shares it between REST and websocket:
  renews with ``GET /auth/renewaccesstoken`` ``renew_margin_s`` before ``expirationTime``
  (§2.2, §2.3; the expiry is read from the response, never hard-coded), logs in again when
  renewal fails or the token already expired, and recovers from a 401 by renewing once and then
  logging in again (§7 "Token expiry"). A non-empty ``errorText`` on HTTP 200 is a failure
  (:class:`~.errors.AuthError`, §2.1). Penalties (``p-ticket``) are waited out and resent with the
  ticket; ``p-captcha`` stops with :class:`~.errors.CaptchaRequired` (§3.1, §3.3).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from actors.broker.tradovate.errors import (
    AuthError,
    HttpError,
    RateLimited,
    Unauthorized,
)
from actors.broker.tradovate.rest import PenaltyLimiter, Throttle, send

__all__ = [
    "Credentials",
    "Endpoints",
    "OAuthApp",
    "Token",
    "TradovateAuth",
    "derive_device_id",
    "parse_time",
]

log = logging.getLogger("justtrades.broker.tradovate.auth")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Base URLs (§1). ``rest`` ends in ``/v1``; ``ws`` is the user/real-time socket."""

    rest: str
    ws: str
    md: str = "wss://md.tradovateapi.com/v1/websocket"
    #: OAuth code exchange, tried in order; the next is tried on 429 (see :meth:`exchange_code`).
    oauth_token_urls: tuple[str, ...] = (
        "https://live.tradovateapi.com/v1/auth/oauthtoken",
        "https://demo.tradovateapi.com/v1/auth/oauthtoken",
    )
    oauth_authorize: str = "https://trader.tradovate.com/oauth"

    @classmethod
    def for_env(cls, env: str) -> Endpoints:
        """``"live"`` or ``"demo"`` hosts from §1 (the demo host runs the simulation engine)."""
        if env not in ("live", "demo"):
            raise ValueError(f"env must be 'live' or 'demo', got {env!r}")
        host = f"{env}.tradovateapi.com/v1"
        return cls(rest=f"https://{host}", ws=f"wss://{host}/websocket")

    @classmethod
    def local(cls, base: str) -> Endpoints:
        """Everything on one base such as ``http://127.0.0.1:8123`` (simulator, tests)."""
        base = base.rstrip("/")
        ws = "ws" + base.removeprefix("http") + "/v1/websocket"
        return cls(f"{base}/v1", ws, ws, (f"{base}/v1/auth/oauthtoken",), f"{base}/oauth")

    def authorize_url(self, client_id: str, redirect_uri: str, state: str = "") -> str:
        """Step 1 of the code flow (§2.5): where to send the user's browser."""
        query = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri}
        if state:
            query["state"] = state
        return f"{self.oauth_authorize}?{urlencode(query)}"


def derive_device_id(secret: str | bytes, login_name: str) -> str:
    """Stable device id: hex HMAC-SHA256 of the login name under a configured secret (64 chars,
    the schema maximum). Official examples also use a SHA-256 hex of stable values (§2.1)."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        raise ValueError("device id secret must not be empty")
    return hmac.new(key, f"tradovate-device:{login_name}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class Credentials:
    """``AccessTokenRequest`` fields (§2.1). ``cid`` is sent as a number when it is one (every
    official example does), ``sec`` is the API secret. ``repr`` hides the secrets."""

    name: str
    password: str = field(repr=False)
    app_id: str
    app_version: str
    cid: int | str
    sec: str = field(repr=False)
    device_id: str

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> Credentials:
        """From the dict an account's sealed credentials open to (see the accounts API)."""
        return cls(
            name=str(plain["username"]),
            password=str(plain["password"]),
            app_id=str(plain["app_id"]),
            app_version=str(plain["app_version"]),
            cid=plain["cid"],
            sec=str(plain["sec"]),
            device_id=str(plain["device_id"]),
        )

    def body(self) -> dict[str, Any]:
        cid: int | str = self.cid
        if isinstance(cid, str) and cid.isdigit():
            cid = int(cid)
        return {
            "name": self.name,
            "password": self.password,
            "appId": self.app_id,
            "appVersion": self.app_version,
            "deviceId": self.device_id,
            "cid": cid,
            "sec": self.sec,
        }


@dataclass(frozen=True, slots=True)
class OAuthApp:
    """A registered OAuth application (§2.5)."""

    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class Token:
    """An access token and when it expires (epoch seconds). ``md_access_token`` may be empty."""

    access_token: str = field(repr=False)
    expires_at: float
    user_id: int | None = None
    name: str = ""
    md_access_token: str = field(default="", repr=False)
    issued_at: float = 0.0

    @classmethod
    def from_response(cls, body: dict[str, Any], now: float) -> Token:
        """From an ``AccessTokenResponse`` (§2.1); a missing/unparsable expiry counts as 80 min,
        the shorter documented lifetime (§2.2)."""
        expires = parse_time(body.get("expirationTime")) or now + 80 * 60
        user_id = body.get("userId")
        return cls(
            access_token=str(body["accessToken"]),
            expires_at=expires,
            user_id=int(user_id) if isinstance(user_id, int | float) else None,
            name=str(body.get("name") or ""),
            md_access_token=str(body.get("mdAccessToken") or ""),
            issued_at=now,
        )


def parse_time(value: Any) -> float | None:
    """ISO-8601 (``2016-11-04T00:02:36.626Z``) to epoch seconds; None when absent/invalid."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # Tradovate times are UTC
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


class TradovateAuth:
    """Token owner for one login (module docstring).

    Give ``credentials`` for the credential flow and/or ``oauth`` for the code flow (then call
    :meth:`exchange_code` once, or pass a restored ``token``). ``on_token`` is called with every
    new token so the caller can persist it (encrypted). ``clock`` is wall time (token expiries
    are absolute); ``throttle`` carries the injectable sleep and the penalty/429 policy.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        endpoints: Endpoints,
        credentials: Credentials | None = None,
        *,
        oauth: OAuthApp | None = None,
        token: Token | None = None,
        renew_margin_s: float = 15 * 60,
        throttle: Throttle | None = None,
        clock: Callable[[], float] = time.time,
        on_token: Callable[[Token], None] | None = None,
    ) -> None:
        self.client = client
        self.endpoints = endpoints
        self.credentials = credentials
        self.oauth = oauth
        self.renew_margin_s = renew_margin_s
        self.throttle = throttle or Throttle()
        self._clock = clock
        self._on_token = on_token
        self._token = token
        self._lock = asyncio.Lock()
        self.counts: dict[str, int] = {"login": 0, "renew": 0, "oauth": 0, "recover": 0}

    @property
    def current(self) -> Token | None:
        return self._token

    def seconds_until_renewal(self) -> float | None:
        """Seconds until :meth:`token` would renew (None without a token)."""
        if self._token is None:
            return None
        return max(0.0, self._renew_at(self._token) - self._clock())

    def _renew_at(self, tok: Token) -> float:
        """``expires_at - renew_margin_s``; the margin is capped at half the token's lifetime so
        a short-lived token is not renewed on every call."""
        margin = self.renew_margin_s
        if tok.issued_at > 0:
            margin = min(margin, max(0.0, tok.expires_at - tok.issued_at) / 2)
        return tok.expires_at - margin

    async def token(self, limiter: PenaltyLimiter | None = None) -> str:
        """A valid access token: logs in if there is none, renews within the margin (§2.3)."""
        async with self._lock:
            tok = self._token
            now = self._clock()
            if tok is None or now >= tok.expires_at:
                tok = await self._fresh_login(limiter)
            elif now >= self._renew_at(tok):
                tok = await self._renew_or_login(limiter)
            return tok.access_token

    async def recover(
        self, failed_token: str, attempt: int, limiter: PenaltyLimiter | None = None
    ) -> str:
        """After a 401 with ``failed_token``: attempt 1 renews (or uses a token someone else
        already refreshed), later attempts log in again (§7)."""
        async with self._lock:
            self.counts["recover"] += 1
            tok = self._token
            if tok is not None and tok.access_token != failed_token and attempt <= 1:
                return tok.access_token
            if attempt <= 1 and tok is not None:
                tok = await self._renew_or_login(limiter)
            else:
                tok = await self._fresh_login(limiter)
            return tok.access_token

    async def login(self, limiter: PenaltyLimiter | None = None) -> Token:
        """``POST /auth/accesstokenrequest`` (§2.1); every call starts a new session (max 2)."""
        async with self._lock:
            return await self._fresh_login(limiter)

    async def renew(self, limiter: PenaltyLimiter | None = None) -> Token:
        """``GET /auth/renewaccesstoken`` (§2.3): extends the current session."""
        async with self._lock:
            return await self._renew(limiter)

    async def exchange_code(self, code: str, limiter: PenaltyLimiter | None = None) -> Token:
        """OAuth step 3 (§2.5): exchange a single-use ``code`` for a token, form-encoded as the
        official tutorial does. The token URLs are tried in order and the next one only on 429
        (live first, then demo — a fallback taken from third-party code, UNCONFIRMED)."""
        if self.oauth is None:
            raise AuthError("no OAuth application configured")
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.oauth.redirect_uri,
            "client_id": self.oauth.client_id,
            "client_secret": self.oauth.client_secret,
        }
        last: RateLimited | None = None
        async with self._lock:
            for url in self.endpoints.oauth_token_urls:
                # Own back-off state per host: a 429 from one host must not block the next.
                throttle = Throttle(
                    sleep=self.throttle.sleep,
                    clock=self.throttle.clock,
                    max_penalty_wait_s=self.throttle.max_penalty_wait_s,
                )
                try:
                    status, body = await send(
                        self.client, "POST", url, throttle, form=form, limiter=limiter,
                        endpoint="auth/oauthtoken",
                    )  # fmt: skip
                except RateLimited as exc:
                    last = exc
                    log.warning("oauthtoken 429 at %s, trying the next host", url)
                    continue
                self._expect_ok(status, body, "auth/oauthtoken")
                if body.get("error") or not body.get("access_token"):
                    raise AuthError(str(body.get("error_description") or body.get("error")))
                self.counts["oauth"] += 1
                expires_in = float(body.get("expires_in") or 80 * 60)
                now = self._clock()
                tok = Token(str(body["access_token"]), now + expires_in, issued_at=now)
                self._set(tok)
                return tok
        assert last is not None
        raise last

    async def me(self, limiter: PenaltyLimiter | None = None) -> dict[str, Any]:
        """``GET /auth/me`` (§2.4); fills in ``user_id`` of a token from the OAuth flow."""
        token = await self.token(limiter)
        status, body = await send(
            self.client, "GET", f"{self.endpoints.rest}/auth/me", self.throttle,
            token=token, limiter=limiter, endpoint="auth/me",
        )  # fmt: skip
        self._expect_ok(status, body, "auth/me")
        if body.get("errorText"):
            raise AuthError(str(body["errorText"]))
        tok = self._token
        if tok is not None and tok.user_id is None and isinstance(body.get("userId"), int):
            self._set(replace(tok, user_id=body["userId"], name=str(body.get("name") or tok.name)))
        return body

    # ------------------------------------------------------------------ internals (lock held)

    async def _fresh_login(self, limiter: PenaltyLimiter | None) -> Token:
        if self.credentials is None:
            raise AuthError("token expired and no credentials to log in again (re-authorize)")
        status, body = await send(
            self.client, "POST", f"{self.endpoints.rest}/auth/accesstokenrequest", self.throttle,
            json=self.credentials.body(), limiter=limiter, endpoint="auth/accesstokenrequest",
        )  # fmt: skip
        tok = self._token_from(status, body, "auth/accesstokenrequest")
        self.counts["login"] += 1
        log.info(
            "tradovate login ok for %s (expires %.0fs)", tok.name, tok.expires_at - self._clock()
        )
        return tok

    async def _renew(self, limiter: PenaltyLimiter | None) -> Token:
        old = self._token
        if old is None:
            raise AuthError("nothing to renew")
        status, body = await send(
            self.client, "GET", f"{self.endpoints.rest}/auth/renewaccesstoken", self.throttle,
            token=old.access_token, limiter=limiter, endpoint="auth/renewaccesstoken",
        )  # fmt: skip
        tok = self._token_from(status, body, "auth/renewaccesstoken", keep=old)
        self.counts["renew"] += 1
        return tok

    async def _renew_or_login(self, limiter: PenaltyLimiter | None) -> Token:
        try:
            return await self._renew(limiter)
        except (AuthError, HttpError) as exc:
            log.warning("token renewal failed (%s); logging in again", exc)
            return await self._fresh_login(limiter)

    def _token_from(
        self, status: int, body: Any, endpoint: str, keep: Token | None = None
    ) -> Token:
        self._expect_ok(status, body, endpoint)
        if body.get("errorText") or not body.get("accessToken"):
            raise AuthError(str(body.get("errorText") or "no accessToken in response"))
        tok = Token.from_response(body, self._clock())
        if keep is not None:  # a renewal may omit what the login told us
            tok = replace(
                tok,
                user_id=tok.user_id if tok.user_id is not None else keep.user_id,
                name=tok.name or keep.name,
                md_access_token=tok.md_access_token or keep.md_access_token,
            )
        self._set(tok)
        return tok

    @staticmethod
    def _expect_ok(status: int, body: Any, endpoint: str) -> None:
        if status == 401:
            raise Unauthorized(status, endpoint, str(body))
        if status >= 300 or not isinstance(body, dict):
            raise HttpError(status, endpoint, str(body))

    def _set(self, tok: Token) -> None:
        self._token = tok
        if self._on_token is not None:
            try:
                self._on_token(tok)
            except Exception:
                log.exception("on_token callback failed")
