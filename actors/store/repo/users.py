"""Users: the single-user mode's ``local`` admin, creation and lookup by name."""

from __future__ import annotations

from typing import Final

import sqlalchemy as sa
from sqlmodel import Session, select

from actors.store.engine import Store
from actors.store.models import User
from actors.store.repo._base import _run

LOCAL_USER: Final = "local"


def ensure_local_user(target: Store | Session) -> User:
    """Return the single-user mode's ``local`` admin, creating it if needed (race-free)."""

    def fn(s: Session) -> User:
        existing = s.exec(select(User).where(User.name == LOCAL_USER)).first()
        if existing is not None:
            return existing
        user = User(name=LOCAL_USER, role="admin")
        try:
            with s.begin_nested():
                s.add(user)
        except sa.exc.IntegrityError:
            # PostgreSQL: another process created it between our SELECT and INSERT.
            return s.exec(select(User).where(User.name == LOCAL_USER)).one()
        return user

    return _run(target, fn)


def create_user(target: Store | Session, name: str, role: str = "user") -> User:
    if role not in ("admin", "user"):
        raise ValueError(f"unknown role {role!r}")

    def fn(s: Session) -> User:
        user = User(name=name, role=role)
        s.add(user)
        s.flush()
        return user

    return _run(target, fn)


def get_user_by_name(session: Session, name: str) -> User | None:
    return session.exec(select(User).where(User.name == name)).first()
