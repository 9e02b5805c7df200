"""The simulator's contract library: Product, ContractMaturity and Contract entities (§4.7).

Built from our own contract table (:data:`actors.instruments.CONTRACTS`) and roll rule
(:func:`actors.instruments.front_month`), so the simulator and the rest of the project agree on
tick sizes, point values and which contract is the front month. Names follow Tradovate's
convention: root + month code + one-digit year (``MNQZ6``, §4.7).

Ids are assigned in a fixed order at start-up (products, then the first ``listed`` contracts of
each root) so that two simulator runs on the same day agree; any other explicit contract of a
known root that the user asks for (``contract/find?name=MNQH7``) is created on first use, as a
real contract library already knows every listed contract.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from actors.instruments import (
    CONTRACTS,
    MONTH_CODES,
    ContractSpec,
    UnknownSymbol,
    front_month,
    last_trade_date,
    normalize,
    parse_symbol,
)

__all__ = ["Catalog"]

_EXCHANGES = {"CME": 1, "CBOT": 2, "NYMEX": 3, "COMEX": 4}
_PRODUCT_BASE = 100
_MATURITY_BASE = 10_000
_CONTRACT_BASE = 2_000_000


def _exchange(spec: ContractSpec) -> str:
    return spec.exchange.removesuffix("_MINI")


class Catalog:
    """Products, maturities and contracts, by id and by name.

    ``on`` fixes the front month (``ContractMaturity.isFront``) and resolves one-digit years.
    """

    def __init__(self, on: date | None = None, listed: int = 4) -> None:
        self.on = on or datetime.now(UTC).date()
        self.products: dict[int, dict[str, Any]] = {}
        self.maturities: dict[int, dict[str, Any]] = {}
        self.contracts: dict[int, dict[str, Any]] = {}
        self._product_by_name: dict[str, int] = {}
        self._contract_by_name: dict[str, int] = {}
        self._next_maturity = _MATURITY_BASE
        self._next_contract = _CONTRACT_BASE
        for i, spec in enumerate(CONTRACTS.values(), start=1):
            self._add_product(_PRODUCT_BASE + i, spec)
        for root in CONTRACTS:
            for nth in range(1, listed + 1):
                self._add_contract(front_month(root, self.on, nth))

    # ------------------------------------------------------------------ building

    def _add_product(self, pid: int, spec: ContractSpec) -> None:
        """Product fields per [S1] ``Product`` (all required ones) and §4.7.

        ``priceFormat`` as minus the number of decimals and ``priceFormatType: Decimal`` for
        every product (Treasuries are Fractional on Tradovate's screens) are UNCONFIRMED.
        """
        self.products[pid] = {
            "id": pid,
            "name": spec.root,
            "currencyId": 1,
            "productType": "Futures",
            "description": spec.name,
            "exchangeId": _EXCHANGES[_exchange(spec)],
            "contractGroupId": _EXCHANGES[_exchange(spec)],
            "status": "Verified",
            "months": spec.months,
            "isSecured": False,
            "valuePerPoint": spec.point_value,
            "priceFormatType": "Decimal",
            "priceFormat": -spec.decimals,
            "tickSize": spec.tick_size,
            "isMicro": spec.root.startswith("M"),  # MNQ MES M2K MYM MCL MGC
        }
        self._product_by_name[spec.root] = pid

    def _add_contract(self, name: str) -> dict[str, Any]:
        """Contract + its maturity. ``expirationMonth`` as YYYYMM is UNCONFIRMED (§4.7 notes
        the schema's ``minimum: 1401``); ``status``/``providerTickSize`` are from [S9]."""
        parsed = parse_symbol(name, on=self.on)
        assert parsed.month_code is not None and parsed.year is not None
        spec = CONTRACTS[parsed.root]
        month = MONTH_CODES.index(parsed.month_code) + 1
        expiry = last_trade_date(parsed.root, parsed.month_code, parsed.year)
        mid = self._next_maturity
        self._next_maturity += 1
        self.maturities[mid] = {
            "id": mid,
            "productId": self._product_by_name[parsed.root],
            "expirationMonth": parsed.year * 100 + month,
            "expirationDate": f"{expiry.isoformat()}T21:00:00.000Z",
            "isFront": front_month(parsed.root, self.on) == name,
        }
        cid = self._next_contract
        self._next_contract += 1
        contract = {
            "id": cid,
            "name": name,
            "contractMaturityId": mid,
            "status": "DefinitionChecked",
            "providerTickSize": spec.tick_size,
        }
        self.contracts[cid] = contract
        self._contract_by_name[name] = cid
        return contract

    # ------------------------------------------------------------------ lookups

    def find(self, name: str) -> dict[str, Any] | None:
        """``contract/find``: an explicit contract of a known root, in Tradovate's one-digit-year
        spelling; anything else (roots, continuous ``MNQ1!``, unknown roots) is not a contract."""
        try:
            parsed = parse_symbol(name, on=self.on)
        except UnknownSymbol:
            return None
        if parsed.is_continuous:
            return None
        canonical = normalize(name, self.on)
        if canonical != name.strip().upper():
            return None  # Tradovate names have exactly one year digit (§4.7)
        cid = self._contract_by_name.get(canonical)
        return self.contracts[cid] if cid is not None else self._add_contract(canonical)

    def resolve(self, symbol: str | int) -> dict[str, Any] | None:
        """A contract by id, by name, or — simulator convenience for price pushes only — by a
        root or continuous symbol (``MNQ``, ``MNQ1!``) mapped to our front month."""
        if isinstance(symbol, int) or (isinstance(symbol, str) and symbol.strip().isdigit()):
            return self.contracts.get(int(symbol))
        found = self.find(symbol)
        if found is not None:
            return found
        try:
            parsed = parse_symbol(symbol, on=self.on)
        except UnknownSymbol:
            return None
        if parsed.is_continuous:
            nth = parsed.continuous_index or 1
            return self.find(front_month(parsed.root, self.on, nth))
        return None

    def suggest(self, text: str, limit: int) -> list[dict[str, Any]]:
        """``contract/suggest?t=&l=``: contracts whose name contains ``text``, nearest first."""
        needle = text.strip().upper()
        hits = [c for c in self.contracts.values() if needle and needle in c["name"]]
        hits.sort(key=lambda c: self.maturities[c["contractMaturityId"]]["expirationMonth"])
        return hits[: max(limit, 0)]

    def product_by_name(self, name: str) -> dict[str, Any] | None:
        pid = self._product_by_name.get(name.strip().upper())
        return self.products[pid] if pid is not None else None

    def product_of(self, contract: dict[str, Any]) -> dict[str, Any]:
        return self.products[self.maturities[contract["contractMaturityId"]]["productId"]]

    def spec_of(self, contract: dict[str, Any]) -> ContractSpec:
        return CONTRACTS[self.product_of(contract)["name"]]
