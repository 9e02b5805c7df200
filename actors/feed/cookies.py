"""Stored TradingView cookies: sealed in ``feed_credentials`` with the broker credentials' box.

Used by the API (``/api/feed/cookies``) to store, delete and check them, and by the feed actor
to log in and to record what it finds (a token that stopped buying real-time data). The plain
cookies only ever exist in the process that opens them; the row holds a Fernet token
(:class:`~actors.broker.credentials.CredentialBox`), the status and when it was checked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlmodel import select

from actors.broker.credentials import CredentialBox, CredentialError, load_key
from actors.feed.tv_auth import COOKIE_NAMES
from actors.store import Store
from actors.store.models import FeedCredential

__all__ = [
    "PROVIDER",
    "STATUSES",
    "CookieInfo",
    "KeySettings",
    "box_for",
    "delete_cookies",
    "info",
    "load_cookies",
    "save_cookies",
    "set_status",
]

PROVIDER = "tradingview"
STATUSES = frozenset({"unchecked", "valid", "delayed", "refused", "expired", "error"})


@dataclass(frozen=True, slots=True)
class CookieInfo:
    """What may be shown about the stored cookies (never the cookies)."""

    set: bool
    status: str | None = None
    detail: str | None = None
    checked_at: float | None = None
    updated_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "set": self.set,
            "status": self.status,
            "detail": self.detail,
            "checked_at": self.checked_at,
            "updated_at": self.updated_at,
        }


@dataclass(slots=True)
class KeySettings:
    """What :func:`load_key` reads, for processes without a ``Settings`` (the feed actor)."""

    secret_key: str | None
    database_url: str

    def resolved_database_url(self) -> str:
        return self.database_url


def box_for(secret_key: str | None, database_url: str) -> CredentialBox:
    return CredentialBox(load_key(KeySettings(secret_key, database_url)))


def _row(session: Any) -> FeedCredential | None:
    stmt = select(FeedCredential).where(FeedCredential.provider == PROVIDER)
    return session.exec(stmt).first()


def info(store: Store) -> CookieInfo:
    with store.read() as s:
        row = _row(s)
        if row is None:
            return CookieInfo(False)
        return CookieInfo(True, row.status, row.detail, row.checked_at, row.updated_at)


def save_cookies(store: Store, box: CredentialBox, sessionid: str, sessionid_sign: str) -> None:
    """Seal and store (replacing any previous cookies); the status starts ``unchecked``."""
    sealed = box.seal({"sessionid": sessionid, "sessionid_sign": sessionid_sign})
    now = time.time()
    with store.write() as s:
        row = _row(s)
        if row is None:
            row = FeedCredential(provider=PROVIDER, secret_encrypted=sealed)
        row.secret_encrypted = sealed
        row.status, row.detail, row.checked_at, row.updated_at = "unchecked", None, None, now
        s.add(row)


def delete_cookies(store: Store) -> bool:
    with store.write() as s:
        row = _row(s)
        if row is None:
            return False
        s.delete(row)
        return True


def load_cookies(store: Store, box: CredentialBox) -> dict[str, str] | None:
    """The plain cookies, or None when none are stored. Raises ``CredentialError`` when the
    row cannot be opened with the configured key(s)."""
    with store.read() as s:
        row = _row(s)
        blob = None if row is None else bytes(row.secret_encrypted)
    if blob is None:
        return None
    plain = box.open(blob)
    if not all(isinstance(plain.get(n), str) and plain[n] for n in COOKIE_NAMES):
        raise CredentialError("stored cookies are incomplete")
    return {n: plain[n] for n in COOKIE_NAMES}


def set_status(store: Store, status: str, detail: str | None) -> bool:
    """Record a check's outcome; False when the cookies were deleted meanwhile."""
    if status not in STATUSES:
        raise ValueError(f"unknown cookie status {status!r}")
    with store.write() as s:
        row = _row(s)
        if row is None:
            return False
        row.status, row.detail, row.checked_at = status, detail, time.time()
        s.add(row)
        return True
