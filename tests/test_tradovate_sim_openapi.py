"""Every REST endpoint the Tradovate simulator implements answers with JSON that validates
against the official OpenAPI spec (reference/tradovate-openapi.yaml, [S1]), and so does every
websocket ``props`` entity.

Validation: the spec's response schema of each path, ``$ref``s resolved, with jsonschema's
Draft 4 validator (OpenAPI 3.0 schemas use Draft 4's boolean ``exclusiveMinimum``) plus format
checks for ``date-time``/``int32``/``int64``. Because the spec never sets
``additionalProperties: false``, a second check rejects any field the schema does not name,
except the documented extras listed in ``EXTRAS`` — so a misspelt field name fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from actors.broker.tradovate.sim import SimConfig, SimServer
from actors.broker.tradovate.sim.routes import ROUTES
from actors.broker.tradovate.sim.testing import Api, user_socket

DAY = date(2026, 11, 2)  # MNQZ6 is the front month
MNQ = "MNQZ6"
USER, PASSWORD = "simuser", "simpass"

yaml = pytest.importorskip("yaml")
jsonschema = pytest.importorskip("jsonschema")

SPEC_CANDIDATES = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "tradovate-openapi.yaml",
    Path("/work/shared/reference/tradovate-openapi.yaml"),
)
#: Fields real responses carry beyond the 2021 spec (reference/tradovate.md section cited).
EXTRAS: dict[str, set[str]] = {
    "AccessTokenResponse": {"mdAccessToken"},  # §2.1
    "Account": {"archived"},  # §4.6
    "Contract": {"status", "providerTickSize"},  # §4.7 ([S9] items page)
    "Product": {"isMicro"},  # §4.7 (EX-07 destructuring)
    "SyncMessage": {"accountRiskStatuses", "userReadStatuses"},  # §5.6
}
GENERIC_OPS = ("list", "item", "items", "find", "deps", "ldeps", "suggest")
ENTITY_SCHEMAS = {
    "order": "Order",
    "command": "Command",
    "commandReport": "CommandReport",
    "orderVersion": "OrderVersion",
    "executionReport": "ExecutionReport",
    "fill": "Fill",
    "position": "Position",
    "cashBalance": "CashBalance",
}


def _load_spec() -> dict[str, Any]:
    for path in SPEC_CANDIDATES:
        if path.is_file():
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    pytest.skip(f"tradovate-openapi.yaml not found at any of {[str(p) for p in SPEC_CANDIDATES]}")


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return _load_spec()


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value))


@_FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = schema.get("$ref")
    if ref is None:
        return None, schema
    name = ref.rsplit("/", 1)[-1]
    return name, spec["components"]["schemas"][name]


def _unknown_fields(spec: dict[str, Any], schema: dict[str, Any], value: Any, at: str) -> list[str]:
    """Fields not named by the (resolved) schema and not in ``EXTRAS``, recursively."""
    name, schema = _resolve(spec, schema)
    if schema.get("type") == "array" and isinstance(value, list):
        return [
            u
            for i, v in enumerate(value)
            for u in _unknown_fields(spec, schema["items"], v, f"{at}[{i}]")
        ]
    if not isinstance(value, dict) or "properties" not in schema:
        return []
    allowed = set(schema["properties"]) | EXTRAS.get(name or "", set())
    found = [f"{at}.{k} ({name})" for k in value if k not in allowed]
    for key, sub in schema["properties"].items():
        if key in value:
            found += _unknown_fields(spec, sub, value[key], f"{at}.{key}")
    return found


def check(spec: dict[str, Any], schema: dict[str, Any], value: Any, what: str) -> None:
    """Fail with every schema violation and unknown field of ``value``."""
    validator = jsonschema.Draft4Validator(
        {**schema, "components": spec["components"]}, format_checker=_FORMATS
    )
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(value)]
    errors += _unknown_fields(spec, schema, value, "$")
    assert not errors, f"{what}: " + "; ".join(errors[:10])


def response_schema(spec: dict[str, Any], endpoint: str) -> dict[str, Any]:
    path = spec["paths"]["/" + endpoint]
    operation = path.get("post") or path.get("get")
    return operation["responses"]["200"]["content"]["application/json"]["schema"]


# ---------------------------------------------------------------------- the scenario


class World:
    """One simulator with every kind of entity in it, plus the props events it emitted."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.api = api = Api(server)
        sock = user_socket(server, api.token)
        api.prices(21000.0)
        self.market = api.order("Buy", 2, clOrdId="w-1")
        self.stop = api.order("Sell", 2, kind="Stop", stopPrice=20950.0)
        self.modify = api.post(
            "order/modifyorder",
            {
                "orderId": self.stop["orderId"],
                "orderQty": 2,
                "orderType": "Stop",
                "stopPrice": 20960.0,
            },
        )
        self.cancel = api.post("order/cancelorder", {"orderId": self.stop["orderId"]})
        self.limit = api.order("Sell", 1, kind="Limit", price=21010.0)
        api.prices(21010.0)  # fills the limit: realised P&L, cashBalance changes
        base = {"accountId": api.account["id"], "accountSpec": api.account["name"], "symbol": MNQ}
        base |= {"orderQty": 1, "isAutomated": True}
        self.oso = api.post("order/placeoso", base | {
            "action": "Buy", "orderType": "Market",
            "bracket1": {"action": "Sell", "orderType": "Limit", "price": 21100.0},
            "bracket2": {"action": "Sell", "orderType": "Stop", "stopPrice": 20900.0},
        })  # fmt: skip
        self.oco = api.post("order/placeoco", base | {
            "action": "Sell", "orderType": "Limit", "price": 21200.0,
            "other": {"action": "Sell", "orderType": "Stop", "stopPrice": 20800.0},
        })  # fmt: skip
        self.failure = api.order("Buy", symbol="NOPEZ6")
        self.contract = api.get("contract/find", name=MNQ)
        self.liquidate = api.post(
            "order/liquidateposition",
            {"accountId": api.account["id"], "contractId": self.contract["id"], "admin": False},
        )
        self.events = sock.props(
            until=lambda d: d["entityType"] == "position" and d["entity"]["netPos"] == 0
        )
        self.sync = api.post("user/syncrequest", {"users": [1]})


@pytest.fixture(scope="module")
def world(spec: dict[str, Any]) -> Iterator[World]:
    with SimServer(SimConfig(on=DAY)) as server:
        yield World(server)


def _sample_params(world: World) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """entity → (an existing id/name for item/find, master ids for deps/ldeps)."""
    sync, api = world.sync, world.api
    first = {k: sync[k][0] for k in ("positions", "orders", "commands", "fills", "cashBalances")}
    maturity_id = world.contract["contractMaturityId"]
    product_id = api.get("contractMaturity/item", id=maturity_id)["productId"]
    er = sync["executionReports"][0]
    return {
        "account": ({"id": api.account["id"], "name": api.account["name"]}, {"id": 1}),
        "position": ({"id": first["positions"]["id"], "name": "x"}, {"id": api.account["id"]}),
        "order": ({"id": first["orders"]["id"]}, {"id": api.account["id"]}),
        "orderVersion": ({"id": first["commands"]["id"]}, {"id": first["orders"]["id"]}),
        "command": ({"id": first["commands"]["id"]}, {"id": first["orders"]["id"]}),
        "commandReport": ({"id": sync["commandReports"][0]["id"]}, {"id": first["commands"]["id"]}),
        "executionReport": ({"id": er["id"], "name": er["name"]}, {"id": er["commandId"]}),
        "fill": ({"id": first["fills"]["id"]}, {"id": first["fills"]["orderId"]}),
        "fillPair": ({"id": 1}, {"id": first["positions"]["id"]}),
        "cashBalance": ({"id": first["cashBalances"]["id"]}, {"id": api.account["id"]}),
        "contract": ({"id": world.contract["id"], "name": MNQ}, {"id": maturity_id}),
        "contractMaturity": ({"id": maturity_id}, {"id": product_id}),
        "product": ({"id": product_id, "name": "MNQ"}, {"id": 1}),
        "user": ({"id": 1, "name": USER}, {"id": 1}),
        "currency": ({"id": 1, "name": "USD"}, {"id": 1}),
    }


def _generic_calls(world: World) -> list[tuple[str, dict[str, Any]]]:
    samples = _sample_params(world)
    calls = []
    for key in ROUTES:
        entity_lc, op = key.split("/")
        entity = next((e for e in samples if e.lower() == entity_lc), None)
        if entity is None or op not in GENERIC_OPS:
            continue
        one, master = samples[entity]
        params = {
            "list": {},
            "item": {"id": one["id"]},
            "items": {"ids": f"{one['id']},999999999"},
            "find": {"name": one.get("name", "")},
            "deps": {"masterid": master["id"]},
            "ldeps": {"masterids": f"{master['id']},999999999"},
            "suggest": {"t": str(one.get("name", ""))[:3], "l": 5},
        }[op]
        calls.append((f"{entity}/{op}", params))
    return calls


def test_every_implemented_endpoint_exists_in_the_spec(spec: dict[str, Any]) -> None:
    spec_paths = {p.strip("/").lower() for p in spec["paths"]}
    invented = sorted(set(ROUTES) - spec_paths)
    assert not invented, f"endpoints not in the official spec: {invented}"


def test_generic_entity_endpoints_validate(spec: dict[str, Any], world: World) -> None:
    calls = _generic_calls(world)
    assert len(calls) == len([k for k in ROUTES if k.split("/")[1] in GENERIC_OPS])
    for endpoint, params in calls:
        r = world.api.raw("GET", endpoint, params=params)
        empty_ok = endpoint.startswith("fillPair/")
        if endpoint in ("position/find", "fillPair/item"):
            assert r.status_code == 404, endpoint  # positions have no name; no fill pairs
            continue
        assert r.status_code == 200, (endpoint, r.text)
        body = r.json()
        assert empty_ok or body not in ([], None), f"{endpoint} returned nothing to validate"
        check(spec, response_schema(spec, endpoint), body, endpoint)


def test_auth_endpoints_validate(spec: dict[str, Any], world: World) -> None:
    api, server = world.api, world.server
    bad = api.http.post("/auth/accesstokenrequest", json={"name": USER, "password": "x"}).json()
    good = api.login()
    for endpoint, body in (
        ("auth/accesstokenrequest", bad),
        ("auth/accesstokenrequest", good),
        ("auth/renewaccesstoken", api.get("auth/renewaccesstoken")),
        ("auth/me", api.get("auth/me")),
    ):
        check(spec, response_schema(spec, endpoint), body, endpoint)
    redirect = httpx.get(
        f"http://{server.host}:{server.port}/oauth",
        params={"response_type": "code", "redirect_uri": "http://cb"},
        trust_env=False,
    )
    code = httpx.URL(redirect.headers["location"]).params["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://cb"}
    exchanged = api.http.post("/auth/oauthtoken", json=form).json()
    assert "access_token" in exchanged
    check(spec, response_schema(spec, "auth/oauthtoken"), exchanged, "auth/oauthtoken")
    reused = api.http.post("/auth/oauthtoken", json=form).json()
    assert "error" in reused
    check(spec, response_schema(spec, "auth/oauthtoken"), reused, "auth/oauthtoken (error)")
    assert {"accessToken", "expirationTime", "userId", "name"} <= set(good)
    assert PASSWORD not in json.dumps(good)


def test_order_command_endpoints_validate(spec: dict[str, Any], world: World) -> None:
    rejected = world.api.post("order/cancelorder", {"orderId": world.stop["orderId"]})
    snapshot = world.api.post(
        "cashBalance/getcashbalancesnapshot", {"accountId": world.api.account["id"]}
    )
    cases = {
        "order/placeorder": [world.market, world.stop, world.limit, world.failure],
        "order/placeoso": [world.oso],
        "order/placeoco": [world.oco],
        "order/modifyorder": [world.modify],
        "order/cancelorder": [world.cancel, rejected],
        "order/liquidateposition": [world.liquidate],
        "cashBalance/getcashbalancesnapshot": [snapshot],
        "user/syncrequest": [world.sync],
    }
    assert "orderId" in world.market and "failureReason" in world.failure
    assert {"orderId", "oso1Id", "oso2Id"} <= set(world.oso) and "ocoId" in world.oco
    assert rejected["failureReason"] == "TooLate" and snapshot["realizedPnL"] != 0
    for endpoint, bodies in cases.items():
        for body in bodies:
            check(spec, response_schema(spec, endpoint), body, endpoint)
    covered = {e.lower() for e in cases} | {"auth/accesstokenrequest", "auth/renewaccesstoken"}
    covered |= {"auth/me", "auth/oauthtoken"} | {c.lower() for c, _ in _generic_calls(world)}
    assert covered == set(ROUTES), f"not validated: {sorted(set(ROUTES) - covered)}"


def test_sync_snapshot_has_every_entity_kind(world: World) -> None:
    for key in ("accounts", "positions", "orders", "commands", "commandReports", "fills",
                "executionReports", "orderVersions", "cashBalances", "contracts", "products",
                "contractMaturities"):  # fmt: skip
        assert world.sync[key], f"syncrequest returned no {key}"


def test_props_event_entities_validate(spec: dict[str, Any], world: World) -> None:
    seen = {e["entityType"] for e in world.events}
    assert seen == set(ENTITY_SCHEMAS), seen
    schemas = spec["components"]["schemas"]
    for event in world.events:
        assert event["eventType"] in ("Created", "Updated", "Deleted")
        name = ENTITY_SCHEMAS[event["entityType"]]
        check(spec, {"$ref": f"#/components/schemas/{name}"}, event["entity"], name)
        assert name in schemas
