"""Shared helpers of the repository modules.

:func:`_run` implements the ``target: Store | Session`` convention (see the package docstring):
given a :class:`~actors.store.engine.Store` the function runs in its own write transaction
(retried whole on a transient lock error); given a write session it joins the caller's
transaction and is flushed, so several calls can be committed atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

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
