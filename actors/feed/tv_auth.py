"""TradingView login for real-time quotes: session cookies -> auth token (reference §3.5).

What the reference gives, and what is implemented:

- M2301's ``getUser()`` GETs the tradingview.com home page with the ``sessionid`` (and
  ``sessionid_sign``) cookies and regex-extracts ``"auth_token":"…"`` from it. That is what
  :func:`fetch_auth_token` does (:data:`AUTH_TOKEN_RE`; whitespace around the colon tolerated).
  The token then goes into ``set_auth_token`` instead of ``unauthorized_user_token``.
  UNCONFIRMED beyond the client code cited: the page layout, and that a page *without* the
  string means the session is no longer valid (it is how we read "expired").
- TVSDK's first step, ``GET /quote_token/`` (a JWT cached by its ``exp``), is not implemented:
  the reference does not give its response format.

Outcomes (:class:`TokenResult`): ``valid`` (a token was found), ``expired`` (the page came back
but without a token: the cookies no longer log in), ``error`` (no answer, non-2xx: nothing is
known about the cookies). Cookies and tokens never appear in reprs, logs or results' details.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

__all__ = [
    "AUTH_TOKEN_RE",
    "COOKIE_NAMES",
    "DEFAULT_WWW_URL",
    "TokenResult",
    "cookie_header",
    "extract_auth_token",
    "fetch_auth_token",
]

DEFAULT_WWW_URL = "https://www.tradingview.com"
COOKIE_NAMES = ("sessionid", "sessionid_sign")
AUTH_TOKEN_RE = re.compile(r'"auth_token"\s*:\s*"([^"\\]+)"')
"""§3.5, M2301 ``getUser()``: the token as a JSON string in the home page."""


@dataclass(frozen=True, slots=True)
class TokenResult:
    status: str  # "valid" | "expired" | "error"
    detail: str
    token: str | None = field(default=None, repr=False)


def cookie_header(cookies: Mapping[str, str]) -> str:
    """``sessionid=…; sessionid_sign=…`` (only the two cookies the reference names)."""
    missing = [n for n in COOKIE_NAMES if not cookies.get(n)]
    if missing:
        raise ValueError(f"missing cookie(s): {', '.join(missing)}")
    return "; ".join(f"{n}={cookies[n]}" for n in COOKIE_NAMES)


def extract_auth_token(page: str) -> str | None:
    match = AUTH_TOKEN_RE.search(page)
    return match.group(1) if match else None


async def fetch_auth_token(
    cookies: Mapping[str, str],
    www_url: str = DEFAULT_WWW_URL,
    *,
    client: httpx.AsyncClient | None = None,
    timeout_s: float = 10.0,
) -> TokenResult:
    """One home-page request with the cookies (module docstring). Never raises for network or
    HTTP failures: they are ``error`` results."""
    headers = {"Cookie": cookie_header(cookies), "Accept": "text/html"}
    url = www_url.rstrip("/") + "/"
    try:
        if client is None:
            async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as own:
                resp = await own.get(url, headers=headers)
        else:
            resp = await client.get(url, headers=headers, timeout=timeout_s)
    except httpx.HTTPError as exc:
        return TokenResult("error", f"tradingview unreachable ({type(exc).__name__})")
    if resp.status_code // 100 != 2:
        return TokenResult("error", f"tradingview answered HTTP {resp.status_code}")
    token = extract_auth_token(resp.text)
    if token is None:
        return TokenResult("expired", "the cookies no longer log in (no auth token in the page)")
    return TokenResult("valid", "logged in: auth token obtained", token)
