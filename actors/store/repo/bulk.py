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

from actors.store.models import SQLModel

_DIALECT = sqlite.dialect()


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


@functools.cache
def _insert_sql(
    table: str, given: frozenset[str], conflict: tuple[str, ...], keep: frozenset[str]
) -> tuple[str, tuple[str, ...]]:
    """``INSERT`` of the given columns plus those with a default; with ``conflict``, an upsert
    that sets only the given columns (minus ``conflict`` and ``keep``) on an existing row."""
    t = spec(table)
    unknown = given - t.columns
    if unknown:
        raise TypeError(f"unknown {table} column(s): {sorted(unknown)}")
    names = tuple(sorted(given | t.defaults.keys()))
    sql = f"INSERT INTO {table} ({','.join(names)}) VALUES ({','.join(':' + n for n in names)})"
    if conflict:
        update = sorted(given - set(conflict) - keep)
        action = (
            "UPDATE SET " + ",".join(f"{n}=excluded.{n}" for n in update) if update else "NOTHING"
        )
        sql += f" ON CONFLICT ({','.join(conflict)}) DO {action}"
    return sql, names


def _params(t: TableSpec, row: Mapping[str, Any], names: Iterable[str]) -> dict[str, Any]:
    out = {}
    for n in names:
        value = row[n] if n in row else t.defaults[n]()
        proc = t.processors.get(n)
        out[n] = value if proc is None or value is None else proc(value)
    return out


Statement = tuple[str, list[dict[str, Any]]]


def insert_statements(
    table: str,
    rows: Iterable[Mapping[str, Any]],
    conflict: tuple[str, ...] = (),
    keep: frozenset[str] = frozenset(),
) -> list[Statement]:
    """The SQL and driver-ready parameters for ``rows``, one statement per distinct set of
    given columns, rows in their given order within a statement. Built before the write
    transaction: every other writer waits while it is open."""
    t = spec(table)
    groups: dict[frozenset[str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault(frozenset(row), []).append(row)
    out = []
    for given, group in groups.items():
        sql, names = _insert_sql(table, given, conflict, keep)
        out.append((sql, [_params(t, row, names) for row in group]))
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
