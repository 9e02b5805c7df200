"""The hot-path bulk writes (fills, trades, orders, positions, signal outcomes) as plain SQL on
a raw ``sqlite3`` cursor (``Store.run_sqlite_write``).

They store exactly what the Core statements of :mod:`.orders`, :mod:`.positions`,
:mod:`.trades` and :data:`.signals.MARK_SIGNAL` store: the same column defaults on insert, the
same bind processors (JSON to text, ...), the same columns updated on conflict (only those
given). ``tests/test_store_bulk.py`` writes the same rows both ways and compares the tables.

Why a second path: a live exit is durable before it is sent, so its commit is on the order
path. Through the session and statement layers a 20-order, 20-position write cost 0.85-1.4 ms
of CPU, through this path 0.46 ms (``bench`` figures in the commit), and the recorder host's one
event loop does nothing else meanwhile. PostgreSQL keeps the Core path.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import sqlite

from actors.store import jsontext
from actors.store.models import SQLModel

_DIALECT = sqlite.dialect(json_serializer=jsontext.dumps)  # the engine's (see engine.py)


@dataclass(frozen=True, slots=True)
class TableSpec:
    """What a Core insert into one table does to a row's values, for the raw path."""

    name: str
    columns: frozenset[str]
    processors: dict[str, Callable[[Any], Any]]
    defaults: dict[str, Callable[[], Any]]


def _default(column: Any) -> Callable[[], Any] | None:
    d = column.default
    if d is None:
        return None
    if d.is_scalar:
        value = d.arg
        return lambda: value
    fn = d.arg
    # SQLAlchemy wraps a zero-argument default in a function of the execution context
    # (functools.wraps: only the unwrapped signature shows it)
    if inspect.signature(fn, follow_wrapped=False).parameters:
        return lambda: fn(None)
    return fn  # type: ignore[no-any-return]


@functools.cache
def spec(table: str) -> TableSpec:
    t = SQLModel.metadata.tables[table]
    processors = {}
    defaults = {}
    for c in t.c:
        proc = c.type.bind_processor(_DIALECT)
        if proc is not None:
            processors[c.name] = proc
        default = _default(c)
        if default is not None:
            defaults[c.name] = default
    return TableSpec(table, frozenset(c.name for c in t.c), processors, defaults)


@dataclass(frozen=True, slots=True)
class InsertPlan:
    """One ``INSERT`` shape: its SQL (positional parameters) and, per parameter in order, the
    column, its bind processor and its default (when a row may lack it)."""

    sql: str
    columns: tuple[tuple[str, Callable[[Any], Any] | None, Callable[[], Any] | None], ...]

    def params(self, row: Mapping[str, Any]) -> tuple[Any, ...]:
        out = []
        for name, proc, default in self.columns:
            value = row[name] if default is None or name in row else default()
            out.append(value if proc is None or value is None else proc(value))
        return tuple(out)


@functools.cache
def _insert_plan(
    table: str, given: frozenset[str], conflict: tuple[str, ...], keep: frozenset[str]
) -> InsertPlan:
    """``INSERT`` of the given columns plus those with a default; with ``conflict``, an upsert
    that sets only the given columns (minus ``conflict`` and ``keep``) on an existing row.
    Built once per shape: the per-row work is then one pass over its columns."""
    t = spec(table)
    unknown = given - t.columns
    if unknown:
        raise TypeError(f"unknown {table} column(s): {sorted(unknown)}")
    names = tuple(sorted(given | t.defaults.keys()))
    sql = f"INSERT INTO {table} ({','.join(names)}) VALUES ({','.join('?' * len(names))})"
    if conflict:
        update = sorted(given - set(conflict) - keep)
        action = (
            "UPDATE SET " + ",".join(f"{n}=excluded.{n}" for n in update) if update else "NOTHING"
        )
        sql += f" ON CONFLICT ({','.join(conflict)}) DO {action}"
    columns = tuple((n, t.processors.get(n), None if n in given else t.defaults[n]) for n in names)
    return InsertPlan(sql, columns)


Statement = tuple[str, list[Any]]


def insert_statements(
    table: str,
    rows: Iterable[Mapping[str, Any]],
    conflict: tuple[str, ...] = (),
    keep: frozenset[str] = frozenset(),
) -> list[Statement]:
    """The SQL and driver-ready parameters for ``rows``, one statement per distinct set of
    given columns, rows in their given order within a statement. Built before the write
    transaction: every other writer waits while it is open."""
    groups: dict[frozenset[str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    out: list[Statement] = []
    for given, group in groups.items():
        plan = _insert_plan(table, given, conflict, keep)
        out.append((plan.sql, [plan.params(row) for row in group]))
    return out


#: repo.MARK_SIGNAL on the raw path: status always; reason/detail/applied_at only when given.
MARK_SIGNAL_SQL = (
    "UPDATE signals SET status=:status, reason=coalesce(:reason, reason), "
    "detail=coalesce(:detail, detail), applied_at=coalesce(:applied_at, applied_at) "
    "WHERE id=:sid"
)


def mark_statement(marks: list[dict[str, Any]]) -> Statement:
    t = spec("signals")
    proc = t.processors.get("applied_at")
    params = [
        {
            **m,
            "applied_at": m["applied_at"]
            if proc is None or m["applied_at"] is None
            else proc(m["applied_at"]),
        }
        for m in marks
    ]
    return MARK_SIGNAL_SQL, params


def run(cur: Any, statements: Iterable[Statement]) -> None:
    for sql, params in statements:
        if params:
            cur.executemany(sql, params)
