"""Logins, sessions and tokens of the simulator (§2).

* ``auth/accesstokenrequest`` starts a new *session* and issues an ``accessToken`` plus an
  ``mdAccessToken`` (§2.1, §2.7). At most ``max_sessions`` sessions live per user: a new one
  closes the oldest, whose tokens stop working (§2.1 "limit of 2 concurrent sessions").
* ``auth/renewaccesstoken`` issues a new token in the *same* session; the old token stays valid
  until its own expiry (§2.3 — whether real renewal changes the string is UNCONFIRMED).
* Wrong credentials answer HTTP 200 with ``errorText`` (§2.1); after
  ``captcha_after_failures`` consecutive failures the login is penalised with ``p-captcha``
  (handled by :mod:`.faults`, which asks :meth:`AuthBook.failures`).
* OAuth: codes come from the simulator's stand-in of the browser consent page and are single
  use (§2.5 step 2); the exchanged token is an ordinary bearer token.

Tokens expire at ``expirationTime``; lifetimes come from the fault switches so a test can make
them short. Nothing here is shared with the real service: tokens are random strings.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from actors.broker.tradovate.sim.config import SimConfig, SimUser, iso

__all__ = ["AuthBook", "Token"]

TokenKind = Literal["access", "md"]

#: §2.1: the exact wording of the real errorText is UNCONFIRMED.
WRONG_CREDENTIALS = "Incorrect username or password. Please try again."
WRONG_APP = "The app is not registered or the API key is invalid."


@dataclass(slots=True)
class Token:
    value: str
    kind: TokenKind
    user_id: int
    session_id: int
    expires_at: float
    revoked: bool = False


@dataclass(slots=True)
class _Session:
    id: int
    user_id: int
    device_id: str | None
    created: float
    tokens: list[str] = field(default_factory=list)


class AuthBook:
    """Users, sessions and tokens; every method takes ``now`` (epoch seconds)."""

    def __init__(self, config: SimConfig, lifetime_s: Callable[[], float]) -> None:
        self.config = config
        self._lifetime_s = lifetime_s
        self.users: dict[int, SimUser] = {u.user_id: u for u in config.users}
        self._by_name = {u.name.lower(): u for u in config.users}
        self._tokens: dict[str, Token] = {}
        self._sessions: dict[int, _Session] = {}
        self._codes: dict[str, tuple[int, str]] = {}  # code -> (user id, redirect_uri)
        self._next_session = 1
        self.failures = 0  # consecutive failed logins (§3.1: leads to p-captcha)
        self.max_sessions = 2

    # ------------------------------------------------------------------ credential login

    def login(self, params: dict[str, Any], now: float) -> tuple[dict[str, Any], list[int]]:
        """``AccessTokenResponse`` and the ids of sessions this login closed (§2.1)."""
        user = self._by_name.get(str(params.get("name", "")).lower())
        if user is None or params.get("password") != user.password:
            self.failures += 1
            return {"errorText": WRONG_CREDENTIALS}, []
        cfg = self.config
        if (cfg.cid is not None and str(params.get("cid")) != cfg.cid) or (
            cfg.sec is not None and params.get("sec") != cfg.sec
        ):
            self.failures += 1
            return {"errorText": WRONG_APP}, []
        self.failures = 0
        session = _Session(self._next_session, user.user_id, params.get("deviceId"), now)
        self._next_session += 1
        self._sessions[session.id] = session
        response = self._token_response(session, user, now)
        return response, self._enforce_quota(user.user_id, now)

    def renew(self, token: Token, now: float) -> dict[str, Any]:
        """§2.3: same session, new token; the old one keeps its own expiry."""
        session = self._sessions[token.session_id]
        return self._token_response(session, self.users[token.user_id], now)

    def _enforce_quota(self, user_id: int, now: float) -> list[int]:
        live = sorted(
            (s for s in self._sessions.values() if s.user_id == user_id and self._alive(s, now)),
            key=lambda s: s.created,
        )
        closed: list[int] = []
        while len(live) > self.max_sessions:
            oldest = live.pop(0)
            self.close_session(oldest.id)
            closed.append(oldest.id)
        return closed

    def _alive(self, session: _Session, now: float) -> bool:
        return any(self._valid(self._tokens[t], now) for t in session.tokens)

    def close_session(self, session_id: int) -> None:
        for value in self._sessions[session_id].tokens:
            self._tokens[value].revoked = True

    def _issue(self, session: _Session, kind: TokenKind, now: float) -> Token:
        token = Token(
            secrets.token_urlsafe(32), kind, session.user_id, session.id, now + self._lifetime_s()
        )
        self._tokens[token.value] = token
        session.tokens.append(token.value)
        return token

    def _token_response(self, session: _Session, user: SimUser, now: float) -> dict[str, Any]:
        access = self._issue(session, "access", now)
        md = self._issue(session, "md", now)
        return {
            "accessToken": access.value,
            "mdAccessToken": md.value,
            "expirationTime": iso(access.expires_at),
            "passwordExpirationTime": iso(now + 365 * 86_400),
            "userStatus": "Active",
            "userId": user.user_id,
            "name": user.name,
            "hasLive": self.config.environment == "live",
        }

    # ------------------------------------------------------------------ OAuth (§2.5)

    def issue_code(self, redirect_uri: str, user_id: int | None = None) -> str:
        """Stand-in for the user approving access on trader.tradovate.com/oauth."""
        code = secrets.token_urlsafe(16)
        self._codes[code] = (user_id or next(iter(self.users)), redirect_uri)
        return code

    def exchange_code(self, params: dict[str, Any], now: float) -> dict[str, Any]:
        """``OAuthTokenResponse``. Errors come back as HTTP 200 with ``error`` fields — the
        real status code for a bad code is UNCONFIRMED (standard OAuth would use 400)."""
        cfg = self.config
        if params.get("grant_type") != "authorization_code":
            return {"error": "unsupported_grant_type", "error_description": "grant_type"}
        if (cfg.oauth_client_id is not None and params.get("client_id") != cfg.oauth_client_id) or (
            cfg.oauth_client_secret is not None
            and params.get("client_secret") != cfg.oauth_client_secret
        ):
            return {"error": "invalid_client", "error_description": "Unknown client"}
        entry = self._codes.pop(str(params.get("code", "")), None)
        if entry is None or entry[1] != params.get("redirect_uri"):
            return {"error": "invalid_grant", "error_description": "Invalid or used code"}
        session = _Session(self._next_session, entry[0], None, now)
        self._next_session += 1
        self._sessions[session.id] = session
        token = self._issue(session, "access", now)
        return {
            "access_token": token.value,
            "token_type": "bearer",
            "expires_in": int(token.expires_at - now),
        }

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _valid(token: Token, now: float) -> bool:
        return not token.revoked and now < token.expires_at

    def check(
        self, value: str | None, now: float, kinds: tuple[str, ...] = ("access",)
    ) -> Token | None:
        """The live token ``value`` of one of ``kinds``, or None (→ HTTP 401, §2.6)."""
        token = self._tokens.get(value or "")
        if token is None or token.kind not in kinds or not self._valid(token, now):
            return None
        return token

    def device_of(self, token: Token) -> str | None:
        return self._sessions[token.session_id].device_id

    def expire_all(self, now: float) -> int:
        """Fault switch: every token issued so far expires now. Returns how many were live."""
        count = 0
        for token in self._tokens.values():
            if self._valid(token, now):
                token.expires_at = now
                count += 1
        return count
