"""Broker accounts, their sub-accounts, and traders (recorder → account links).

Ownership is checked by the API; these functions trust their ids. ``credentials_encrypted`` is
an opaque sealed blob here (see :mod:`actors.broker.credentials`): the store never sees
plaintext credentials.

An account is deleted hard together with its sub-accounts, but only when no trader links it
(:class:`AccountInUse`): a trader may hold positions and orders at the broker, so unlinking is an
explicit step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlmodel import Session, col, select

from actors.store.engine import Store
from actors.store.models import Account, SubAccount, Trader
from actors.store.repo._base import _run, _update

_UNSET: Any = object()
"""Marks a keyword of :func:`update_trader` not given (None is a meaningful value there)."""


class AccountInUse(Exception):
    """The account still has traders; ``trader_ids`` names them."""

    def __init__(self, trader_ids: list[int]) -> None:
        super().__init__(f"account is linked by traders {trader_ids}")
        self.trader_ids = trader_ids


# ---------------------------------------------------------------------- accounts


def create_account(
    target: Store | Session,
    owner_id: int,
    broker: str,
    name: str,
    environment: str,
    credentials_encrypted: bytes | None = None,
    sub_accounts: Iterable[tuple[str, str]] = (),
) -> Account:
    """Create an account and, in the same transaction, its initial ``(broker_account_id,
    name)`` sub-accounts (a paper account gets its one sub-account this way).
    ``{account_id}`` in a ``broker_account_id`` becomes the new account's id."""

    def fn(s: Session) -> Account:
        acc = Account(
            owner_id=owner_id,
            broker=broker,
            name=name,
            environment=environment,
            credentials_encrypted=credentials_encrypted,
        )
        s.add(acc)
        s.flush()
        assert acc.id is not None
        for broker_account_id, sub_name in sub_accounts:
            s.add(
                SubAccount(
                    account_id=acc.id,
                    broker_account_id=broker_account_id.format(account_id=acc.id),
                    name=sub_name,
                )
            )
        s.flush()
        return acc

    return _run(target, fn)


def get_account(session: Session, account_id: int) -> Account | None:
    return session.get(Account, account_id)


def list_accounts(session: Session, owner_id: int | None = None) -> list[Account]:
    """Accounts of ``owner_id`` (all owners when None), by id."""
    stmt = select(Account)
    if owner_id is not None:
        stmt = stmt.where(Account.owner_id == owner_id)
    return list(session.exec(stmt.order_by(col(Account.id))))


def update_account(
    target: Store | Session,
    account_id: int,
    *,
    name: str | None = None,
    credentials_encrypted: bytes | None = None,
) -> Account | None:
    """Rename and/or replace the sealed credentials; None when the account does not exist."""
    changes = {"name": name, "credentials_encrypted": credentials_encrypted}
    return _update(
        target,
        lambda s: s.get(Account, account_id),
        {k: v for k, v in changes.items() if v is not None},
    )


def delete_account(target: Store | Session, account_id: int) -> bool:
    """Delete an account and its sub-accounts; False when it did not exist.
    Raises :class:`AccountInUse` while any trader links it."""

    def fn(s: Session) -> bool:
        acc = s.get(Account, account_id)
        if acc is None:
            return False
        linked = s.exec(
            select(Trader.id).where(Trader.account_id == account_id).order_by(col(Trader.id))
        ).all()
        if linked:
            raise AccountInUse([int(i) for i in linked if i is not None])
        for sub in s.exec(select(SubAccount).where(SubAccount.account_id == account_id)):
            s.delete(sub)
        s.flush()
        s.delete(acc)
        return True

    return _run(target, fn)


# ---------------------------------------------------------------------- sub-accounts


def list_sub_accounts(session: Session, account_id: int) -> list[SubAccount]:
    return list(
        session.exec(
            select(SubAccount)
            .where(SubAccount.account_id == account_id)
            .order_by(col(SubAccount.id))
        )
    )


def get_sub_account(session: Session, sub_account_id: int) -> SubAccount | None:
    return session.get(SubAccount, sub_account_id)


def upsert_sub_accounts(
    target: Store | Session, account_id: int, items: Iterable[tuple[str, str]]
) -> list[SubAccount]:
    """Insert or rename ``(broker_account_id, name)`` sub-accounts of an account; returns all of
    the account's sub-accounts. Ones the broker no longer lists are kept: traders may point at
    them, and a vanished account is for the reconciler to report, not for a sync to erase."""
    wanted: Mapping[str, str] = dict(items)

    def fn(s: Session) -> list[SubAccount]:
        existing = {sub.broker_account_id: sub for sub in list_sub_accounts(s, account_id)}
        for broker_account_id, name in wanted.items():
            sub = existing.get(broker_account_id)
            if sub is None:
                s.add(
                    SubAccount(
                        account_id=account_id, broker_account_id=broker_account_id, name=name
                    )
                )
            elif sub.name != name:
                sub.name = name
                s.add(sub)
        s.flush()
        return list_sub_accounts(s, account_id)

    return _run(target, fn)


# ---------------------------------------------------------------------- traders


def create_trader(
    target: Store | Session,
    owner_id: int,
    recorder_id: int,
    account_id: int,
    sub_account_id: int | None,
    *,
    enabled: bool = True,
    multiplier: float = 1.0,
    max_contracts: int | None = None,
    close_only: bool = False,
    overrides: Mapping[str, Any] | None = None,
) -> Trader:
    def fn(s: Session) -> Trader:
        trader = Trader(
            owner_id=owner_id,
            recorder_id=recorder_id,
            account_id=account_id,
            sub_account_id=sub_account_id,
            enabled=enabled,
            multiplier=multiplier,
            max_contracts=max_contracts,
            close_only=close_only,
            overrides=dict(overrides or {}),
        )
        s.add(trader)
        s.flush()
        return trader

    return _run(target, fn)


def get_trader(session: Session, trader_id: int) -> Trader | None:
    return session.get(Trader, trader_id)


def list_traders(
    session: Session,
    owner_id: int | None = None,
    *,
    recorder_id: int | None = None,
    account_id: int | None = None,
    sub_account_id: int | None = None,
) -> list[Trader]:
    """Traders filtered by any of owner, recorder, account, sub-account; by id."""
    stmt = select(Trader)
    if owner_id is not None:
        stmt = stmt.where(Trader.owner_id == owner_id)
    if recorder_id is not None:
        stmt = stmt.where(Trader.recorder_id == recorder_id)
    if account_id is not None:
        stmt = stmt.where(Trader.account_id == account_id)
    if sub_account_id is not None:
        stmt = stmt.where(Trader.sub_account_id == sub_account_id)
    return list(session.exec(stmt.order_by(col(Trader.id))))


def update_trader(
    target: Store | Session,
    trader_id: int,
    *,
    enabled: bool | None = None,
    multiplier: float | None = None,
    max_contracts: int | None = _UNSET,
    close_only: bool | None = None,
    overrides: Mapping[str, Any] | None = None,
    sub_account_id: int | None = _UNSET,
) -> Trader | None:
    """Change the given fields; ``max_contracts=None`` removes the cap (leave it out to keep
    it). ``overrides`` replaces the whole overrides dict. None when the trader does not exist."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {"enabled": enabled, "multiplier": multiplier, "close_only": close_only}.items()
        if v is not None
    }
    if max_contracts is not _UNSET:
        changes["max_contracts"] = max_contracts
    if overrides is not None:
        changes["overrides"] = dict(overrides)  # a new object: JSON is not mutation-tracked
    if sub_account_id is not _UNSET:
        changes["sub_account_id"] = sub_account_id
    return _update(target, lambda s: s.get(Trader, trader_id), changes)


def delete_trader(target: Store | Session, trader_id: int) -> bool:
    """Delete a trader link; its orders, fills and trades stay as history (they carry plain ids).
    False when it did not exist."""

    def fn(s: Session) -> bool:
        trader = s.get(Trader, trader_id)
        if trader is None:
            return False
        s.delete(trader)
        return True

    return _run(target, fn)
