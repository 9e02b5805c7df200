"""Recorders: create, look up (by id, by webhook token, by owner), update, rotate the token,
soft-delete.

Deleting is soft because a recorder's signals and trades stay as history; a deleted recorder is
renamed so its owner can reuse the name, and its token stops resolving.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from sqlmodel import Session, col, select

from actors.store.engine import Store
from actors.store.models import Recorder
from actors.store.repo._base import _run, _update


def new_token() -> str:
    """A webhook token: 24 random bytes (192 bits), URL-safe base64."""
    return secrets.token_urlsafe(24)


def _settings_json(settings: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    if isinstance(settings, BaseModel):
        return settings.model_dump(mode="json")
    return dict(settings)


def create_recorder(
    target: Store | Session,
    owner_id: int,
    name: str,
    symbol: str,
    settings: Mapping[str, Any] | BaseModel,
    enabled: bool = True,
) -> Recorder:
    """Create a recorder with a fresh token. A duplicate (owner, name) raises
    ``sqlalchemy.exc.IntegrityError``."""

    def fn(s: Session) -> Recorder:
        now = time.time()
        rec = Recorder(
            owner_id=owner_id,
            name=name,
            symbol=symbol,
            token=new_token(),
            enabled=enabled,
            settings=_settings_json(settings),
            created_at=now,
            updated_at=now,
        )
        s.add(rec)
        s.flush()
        return rec

    return _run(target, fn)


def get_recorder(
    session: Session, recorder_id: int, *, include_deleted: bool = False
) -> Recorder | None:
    rec = session.get(Recorder, recorder_id)
    if rec is None or (rec.deleted and not include_deleted):
        return None
    return rec


def get_recorder_by_token(session: Session, token: str) -> Recorder | None:
    """Indexed lookup of a live (not deleted) recorder. Comparing the token in constant time
    and keeping it out of logs is the API's job."""
    return session.exec(
        select(Recorder).where(Recorder.token == token, col(Recorder.deleted).is_(False))
    ).first()


def list_recorders(
    session: Session, owner_id: int | None = None, *, include_deleted: bool = False
) -> list[Recorder]:
    """Recorders of ``owner_id`` (all owners when None), by id."""
    stmt = select(Recorder)
    if owner_id is not None:
        stmt = stmt.where(Recorder.owner_id == owner_id)
    if not include_deleted:
        stmt = stmt.where(col(Recorder.deleted).is_(False))
    return list(session.exec(stmt.order_by(col(Recorder.id))))


def update_recorder(
    target: Store | Session,
    recorder_id: int,
    *,
    name: str | None = None,
    symbol: str | None = None,
    settings: Mapping[str, Any] | BaseModel | None = None,
    enabled: bool | None = None,
) -> Recorder | None:
    """Change the given fields of a live recorder; None when it does not exist or is deleted."""
    changes: dict[str, Any] = {
        k: v
        for k, v in {"name": name, "symbol": symbol, "enabled": enabled}.items()
        if v is not None
    }
    if settings is not None:
        changes["settings"] = _settings_json(settings)  # a new object: JSON is not mutation-tracked
    changes["updated_at"] = time.time()
    return _update(target, lambda s: get_recorder(s, recorder_id), changes)


def rotate_recorder_token(target: Store | Session, recorder_id: int) -> Recorder | None:
    """Give a live recorder a new webhook token (the old one stops working at commit)."""

    def fn(s: Session) -> Recorder | None:
        rec = get_recorder(s, recorder_id)
        if rec is None:
            return None
        rec.token = new_token()
        rec.updated_at = time.time()
        s.add(rec)
        s.flush()
        return rec

    return _run(target, fn)


def soft_delete_recorder(target: Store | Session, recorder_id: int) -> bool:
    """Mark a recorder deleted and disabled; its history stays. The name gets a
    ``" [deleted <id>]"`` suffix so the owner can reuse the name (unique per owner), and
    :func:`get_recorder_by_token` stops finding it. False when there was nothing to delete."""

    def fn(s: Session) -> bool:
        rec = get_recorder(s, recorder_id)
        if rec is None:
            return False
        rec.deleted = True
        rec.enabled = False
        rec.name = f"{rec.name} [deleted {rec.id}]"
        rec.updated_at = time.time()
        s.add(rec)
        s.flush()
        return True

    return _run(target, fn)
