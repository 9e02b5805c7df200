"""Endpoint table of the simulator: ``entity/operation`` → handler (§1, §4.4).

Handlers take ``(sim, caller, params)`` and return a :class:`~.core.Reply`; params are the
merged query string and JSON body, so every endpoint accepts GET or POST and either form (§1:
"GET/POST are recommended per endpoint but not enforced").

Generic entity operations (§4.4) — ``list``, ``item?id=``, ``items?ids=1,2``, ``find?name=``,
``deps?masterid=``, ``ldeps?masterids=``, ``suggest?t=&l=`` — are offered exactly where the
official spec [S1] has them for the modelled entity types, scoped to the caller's accounts.
``item``/``find`` of something that does not exist answer 404 ([S6] Conventions.md: 404 when
data is unavailable; the exact body is UNCONFIRMED).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from actors.broker.tradovate.sim import orders
from actors.broker.tradovate.sim.core import Caller, Reply, TradovateSim

__all__ = ["ROUTES", "Route", "query_params", "sync_snapshot"]

Handler = Callable[[TradovateSim, Caller | None, dict[str, Any]], Reply]


@dataclass(frozen=True, slots=True)
class Route:
    fn: Handler
    public: bool = False


# entity -> (operations offered by [S1], master field of deps/ldeps)
_GENERIC: dict[str, tuple[tuple[str, ...], str | None]] = {
    "account": (("list", "item", "items", "find", "deps", "ldeps", "suggest"), "userId"),
    "position": (("list", "item", "items", "find", "deps", "ldeps"), "accountId"),
    "order": (("list", "item", "items", "deps", "ldeps"), "accountId"),
    "orderVersion": (("list", "item", "items", "deps", "ldeps"), "orderId"),
    "command": (("list", "item", "items", "deps", "ldeps"), "orderId"),
    "commandReport": (("list", "item", "items", "deps", "ldeps"), "commandId"),
    "executionReport": (("list", "item", "items", "find", "deps", "ldeps", "suggest"), "commandId"),
    "fill": (("list", "item", "items", "deps", "ldeps"), "orderId"),
    "fillPair": (("list", "item", "items", "deps", "ldeps"), "positionId"),
    "cashBalance": (("list", "item", "items", "deps", "ldeps"), "accountId"),
    "contract": (("item", "items", "find", "deps", "ldeps", "suggest"), "contractMaturityId"),
    "contractMaturity": (("item", "items", "deps", "ldeps"), "productId"),
    "product": (("list", "item", "items", "find", "deps", "ldeps", "suggest"), "exchangeId"),
    "user": (("list", "item", "items", "find", "suggest"), None),
    "currency": (("list", "item", "items", "find", "suggest"), None),
}
_CURRENCIES = [{"id": 1, "name": "USD", "symbol": "$"}]
_NOT_FOUND = Reply(404, "Not found")


_INT_KEYS = frozenset({"id", "accountId", "contractId", "orderId", "orderQty", "maxShow", "l"})
_FLOAT_KEYS = frozenset({"price", "stopPrice", "pegDifference"})
_BOOL_KEYS = frozenset({"isAutomated", "admin", "splitResponses"})


def query_params(query: str) -> dict[str, Any]:
    """Query-string parameters, typed like their JSON-body equivalents for the numeric and
    boolean fields the handlers check, so ``?accountId=7`` and ``{"accountId": 7}`` agree."""
    params: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    for key, value in params.items():
        try:
            if key in _INT_KEYS:
                params[key] = int(value)
            elif key in _FLOAT_KEYS:
                params[key] = float(value)
            elif key in _BOOL_KEYS and value.lower() in ("true", "false"):
                params[key] = value.lower() == "true"
        except ValueError:
            pass  # left as a string; the handler rejects it
    return params


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return None


def _ids(value: Any) -> list[int]:
    parts = value if isinstance(value, list) else str(value or "").split(",")
    return [i for i in (_int(p) for p in parts) if i is not None]


def _user_entity(sim: TradovateSim, user_id: int) -> dict[str, Any]:
    user = sim.auth.users[user_id]
    return {
        "id": user.user_id,
        "name": user.name,
        "timestamp": "2020-01-01T00:00:00.000Z",
        "email": user.email,
        "status": "Active",
        "professional": False,
    }


def _own_accounts(sim: TradovateSim, user_id: int) -> set[int]:
    return {a for a, e in sim.engine.accounts.items() if e["userId"] == user_id}


def _table(sim: TradovateSim, entity: str, user_id: int) -> list[dict[str, Any]]:
    """All entities of one type visible to ``user_id``, in id order."""
    if entity == "account":
        return [a for a in sim.engine.accounts.values() if a["userId"] == user_id]
    if entity == "user":
        return [_user_entity(sim, user_id)]
    if entity == "currency":
        return list(_CURRENCIES)
    catalog = {
        "contract": sim.catalog.contracts,
        "contractMaturity": sim.catalog.maturities,
        "product": sim.catalog.products,
    }
    if entity in catalog:
        return list(catalog[entity].values())
    own = _own_accounts(sim, user_id)
    rows = sim.engine.entities.get(entity, {}).values()
    return [dict(r) for r in rows if sim.engine.account_of(entity, r) in own]


def _generic(entity: str, op: str, master: str | None) -> Handler:
    def handle(sim: TradovateSim, caller: Caller | None, params: dict[str, Any]) -> Reply:
        assert caller is not None
        if entity == "contract" and op == "find":  # the library knows every listed contract
            found = sim.catalog.find(str(params.get("name", "")))
            return Reply(200, found) if found else _NOT_FOUND
        if entity == "contract" and op == "suggest":
            return Reply(200, sim.catalog.suggest(str(params.get("t", "")), _limit(params)))
        rows = _table(sim, entity, caller.user_id)
        if op == "list":
            return Reply(200, rows)
        if op == "item":
            wanted = _int(params.get("id"))
            hit = next((r for r in rows if r["id"] == wanted), None)
            return Reply(200, hit) if hit else _NOT_FOUND
        if op == "items":
            wanted_ids = set(_ids(params.get("ids")))
            return Reply(200, [r for r in rows if r["id"] in wanted_ids])
        if op == "find":
            name = str(params.get("name", ""))
            hit = next((r for r in rows if str(r.get("name", "")).upper() == name.upper()), None)
            return Reply(200, hit) if hit else _NOT_FOUND
        if op == "suggest":
            text = str(params.get("t", "")).upper()
            hits = [r for r in rows if text and text in str(r.get("name", "")).upper()]
            return Reply(200, hits[: _limit(params)])
        key = "masterid" if op == "deps" else "masterids"
        masters = set(_ids(params.get(key)))
        return Reply(200, [r for r in rows if r.get(master or "") in masters])

    return handle


def _limit(params: dict[str, Any]) -> int:
    value = _int(params.get("l"))
    return value if value is not None and value > 0 else 10


# ---------------------------------------------------------------------- auth (§2)


def _access_token_request(sim: TradovateSim, _: Caller | None, params: dict[str, Any]) -> Reply:
    body, closed = sim.auth.login(params, sim.clock())
    if closed and sim.sockets is not None:  # §2.1: the oldest session is closed
        sim.sockets.shutdown("ConnectionQuotaReached", sessions=closed)
    return Reply(200, body)


def _renew(sim: TradovateSim, caller: Caller | None, _: dict[str, Any]) -> Reply:
    assert caller is not None and caller.token is not None
    return Reply(200, sim.auth.renew(caller.token, sim.clock()))


def _me(sim: TradovateSim, caller: Caller | None, _: dict[str, Any]) -> Reply:
    """``OAuthMeResponse`` ([S1]); ``tradingViewTradingEnabled`` only when configured (§6)."""
    assert caller is not None
    user = sim.auth.users[caller.user_id]
    body: dict[str, Any] = {
        "userId": user.user_id,
        "name": user.name,
        "fullName": user.full_name,
        "email": user.email,
        "emailVerified": True,
        "isTrial": False,
    }
    if sim.config.tradingview_flag is not None:
        body["tradingViewTradingEnabled"] = sim.config.tradingview_flag
    return Reply(200, body)


def _oauth_token(sim: TradovateSim, _: Caller | None, params: dict[str, Any]) -> Reply:
    return Reply(200, sim.auth.exchange_code(params, sim.clock()))


# ---------------------------------------------------------------------- orders (§4.1–4.3)


def _order_command(fn: Callable[..., dict[str, Any]], places: bool) -> Handler:
    def handle(sim: TradovateSim, caller: Caller | None, params: dict[str, Any]) -> Reply:
        assert caller is not None
        approved = sim.config.approved_devices
        if places and sim.config.environment == "live" and approved is not None:
            device = sim.auth.device_of(caller.token) if caller.token else None
            if device not in approved:
                return Reply(401)  # §2.1/[S3]: unapproved device on a live account
        return Reply(200, fn(sim.engine, caller.user_id, params))

    return handle


def _cash_snapshot(sim: TradovateSim, caller: Caller | None, params: dict[str, Any]) -> Reply:
    assert caller is not None
    account_id = _int(params.get("accountId"))
    if account_id not in _own_accounts(sim, caller.user_id):
        return Reply(200, {"errorText": "Access is denied"})
    assert account_id is not None
    return Reply(200, sim.engine.cash_snapshot(account_id))


# ---------------------------------------------------------------------- sync (§5.6)


def sync_snapshot(
    sim: TradovateSim, user_id: int, params: dict[str, Any]
) -> tuple[dict[str, Any], set[int]]:
    """``SyncMessage`` for the requested users/accounts (only the caller's own) and the account
    ids whose later changes the subscription covers. No filter means all the caller's accounts.
    ``splitResponses`` and the partner-only ``entityTypes``/sharding are ignored (§5.6)."""
    own = _own_accounts(sim, user_id)
    users, accounts = _ids(params.get("users")), _ids(params.get("accounts"))
    wanted = own if (user_id in users or not (users or accounts)) else own & set(accounts)
    rows = {
        kind: [r for r in _table(sim, kind, user_id) if sim.engine.account_of(kind, r) in wanted]
        for kind in (
            "cashBalance", "position", "order", "command", "commandReport",
            "executionReport", "orderVersion", "fill",
        )
    }  # fmt: skip
    used = {r["contractId"] for kind in ("position", "order") for r in rows[kind]}
    contracts = [sim.catalog.contracts[c] for c in sorted(used)]
    maturities = {
        c["contractMaturityId"]: sim.catalog.maturities[c["contractMaturityId"]] for c in contracts
    }
    products = {m["productId"]: sim.catalog.products[m["productId"]] for m in maturities.values()}
    body: dict[str, Any] = {
        "users": [_user_entity(sim, user_id)],
        "accounts": [sim.engine.accounts[a] for a in sorted(wanted)],
        "cashBalances": rows["cashBalance"],
        "positions": rows["position"],
        "orders": rows["order"],
        "commands": rows["command"],
        "commandReports": rows["commandReport"],
        "executionReports": rows["executionReport"],
        "orderVersions": rows["orderVersion"],
        "fills": rows["fill"],
        "contracts": contracts,
        "contractMaturities": list(maturities.values()),
        "products": list(products.values()),
        "currencies": list(_CURRENCIES),
        "contractGroups": [],
        "exchanges": [],
        "fillPairs": [],
        "marginSnapshots": [],
        "userAccountAutoLiqs": [],
        "spreadDefinitions": [],
        "orderStrategies": [],
        "orderStrategyLinks": [],
        "orderStrategyTypes": [],
        "userProperties": [],
        "properties": [],
        "userPlugins": [],
        "accountRiskStatuses": [],
        "userReadStatuses": [],
    }
    return body, wanted


def _sync(sim: TradovateSim, caller: Caller | None, params: dict[str, Any]) -> Reply:
    assert caller is not None
    return Reply(200, sync_snapshot(sim, caller.user_id, params)[0])


def _build() -> dict[str, Route]:
    routes: dict[str, Route] = {
        "auth/accesstokenrequest": Route(_access_token_request, public=True),
        "auth/oauthtoken": Route(_oauth_token, public=True),
        "auth/renewaccesstoken": Route(_renew),
        "auth/me": Route(_me),
        "order/placeorder": Route(_order_command(orders.place_order, True)),
        "order/placeoso": Route(_order_command(orders.place_oso, True)),
        "order/placeoco": Route(_order_command(orders.place_oco, True)),
        "order/modifyorder": Route(_order_command(orders.modify_order, True)),
        "order/cancelorder": Route(_order_command(orders.cancel_order, False)),
        "order/liquidateposition": Route(_order_command(orders.liquidate, False)),
        "cashbalance/getcashbalancesnapshot": Route(_cash_snapshot),
        "user/syncrequest": Route(_sync),
    }
    for entity, (ops, master) in _GENERIC.items():
        for op in ops:
            routes[f"{entity.lower()}/{op}"] = Route(_generic(entity, op, master))
    return routes


#: lower-case ``entity/operation`` → route.
ROUTES: dict[str, Route] = _build()
