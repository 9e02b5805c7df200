"""Which broker actors the tree runs: the paper one, plus one per Tradovate login (an account
row with credentials), built from the store. One login, one actor: the rate budget and the
websocket sync belong to the login, and several accounts of one login share them.

Credentials are opened here, in the supervisor's process, and handed to the broker actor that
uses them; they are never logged (:class:`~actors.broker.credentials.Redacted` in reprs).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from actors.broker.credentials import CredentialBox, CredentialError, SecretKeyMissing, load_key
from actors.runtime import broker_name

log = logging.getLogger("justtrades.broker.logins")


@dataclass(slots=True)
class _KeySettings:
    secret_key: str | None
    database_url: str

    def resolved_database_url(self) -> str:
        return self.database_url


def broker_account(broker: str, sub: Any) -> str:
    """The account name orders carry for a sub-account: Tradovate's ``accountSpec`` is the
    account *name* (the adapter looks its entity id up); a paper account's is its broker id."""
    return str(sub.name) if broker == "tradovate" else str(sub.broker_account_id)


def tradovate_endpoints(rest: str) -> Any:
    """Endpoints for a configured REST base (the simulator's in tests and ``make run``); the
    user socket follows it."""
    from actors.broker.tradovate.auth import Endpoints

    rest = rest.rstrip("/")
    return Endpoints(rest=rest, ws="ws" + rest.removeprefix("http") + "/websocket")


def tradovate_logins(cfg: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Broker actor name -> ``BrokerActor`` keyword arguments, one per Tradovate account with
    stored credentials. An account whose credentials cannot be opened is skipped with a
    warning (it shows as not connected) rather than stopping the tree."""
    from actors.broker.tradovate.adapter import TradovateConfig
    from actors.broker.tradovate.auth import Credentials
    from actors.store import Store, repo

    store = Store(cfg["database_url"])
    try:
        with store.read() as s:
            rows = [
                (a, [sub.name for sub in repo.list_sub_accounts(s, a.id or 0)])
                for a in repo.list_accounts(s)
                if a.broker == "tradovate" and a.credentials_encrypted is not None
            ]
        if not rows:
            return {}
        try:
            box = CredentialBox(load_key(_KeySettings(cfg.get("secret_key"), cfg["database_url"])))
        except SecretKeyMissing as exc:
            log.error("tradovate accounts not connected: %s", exc)
            return {}
        out: dict[str, dict[str, Any]] = {}
        for acc, names in rows:
            assert acc.id is not None and acc.credentials_encrypted is not None
            try:
                plain = box.open(acc.credentials_encrypted)
            except CredentialError as exc:
                log.warning("account %s: credentials unreadable (%s); not connected", acc.id, exc)
                continue
            creds = Credentials.from_plain(plain)
            url_key = "tradovate_live_url" if acc.environment == "live" else "tradovate_demo_url"
            config = TradovateConfig(
                env="live" if acc.environment == "live" else "demo",
                credentials=creds,
                endpoints=tradovate_endpoints(cfg[url_key]),
                accounts=names or None,
            )
            name = broker_name("tradovate", acc.id)
            out[name] = {"name": name, "kind": "tradovate", "tradovate": config}
        return out
    finally:
        store.dispose()
