"""Shared helpers of the repository modules.

:func:`_run` implements the ``target: Store | Session`` convention (see the package docstring):
given a :class:`~actors.store.engine.Store` the function runs in its own write transaction
(retried whole on a transient lock error); given a write session it joins the caller's
transaction and is flushed, so several calls can be committed atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session as SASession
from sqlmodel import Session

from actors.store.engine import Store

T = TypeVar("T")


def _run(target: Store | SASession, fn: Callable[[Session], T]) -> T:
    if isinstance(target, Store):
        return target.run_write(fn)
    result = fn(target)  # type: ignore[arg-type]
    target.flush()
    return result


def _dialect(session: SASession) -> str:
    return session.get_bind().dialect.name


def _update(
    target: Store | SASession,
    load: Callable[[Session], T | None],
    changes: dict[str, Any],
) -> T | None:
    """Load one row with ``load`` and set ``changes`` on it (the shared body of the update_*
    functions); None when ``load`` finds nothing. Callers leave out what was not given."""

    def fn(s: Session) -> T | None:
        row = load(s)
        if row is None:
            return None
        for name, value in changes.items():
            setattr(row, name, value)
        s.add(row)
        s.flush()
        return row

    return _run(target, fn)
