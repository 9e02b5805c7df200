"""The raw SQLite write path (actors/store/repo/bulk.py, records.Rows.sqlite) stores exactly
what the Core path (records.Rows called with a session) stores: the same rows with the same
values, defaults on insert, only the given columns on conflict, an order's first created_at
kept, signal outcomes that keep a stored reason when none is given."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from actors.recorder.records import Rows
from actors.store import Store, create_recorder, ensure_local_user, insert_signal
from actors.store.models import Position
from actors.store.repo import bulk

TABLES = ("signals", "fills", "trades", "orders", "positions")
PAIRS = [("r1:virtual", "MNQZ6"), ("r1:t1", "MNQZ6"), ("r1:t1", "MESZ6")]
CLS = ["a-1", "a-2", "b-1"]


def fresh(path: Path) -> Store:
    store = Store(f"sqlite:///{path}")
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    assert create_recorder(store, user.id, "r", "MNQZ6", {}).id == 1
    return reset(store)


def reset(store: Store) -> Store:
    """Empty history tables and three received signals (ids 1-3 again: no AUTOINCREMENT)."""
    store.run_sqlite_write(lambda cur: [cur.execute(f"DELETE FROM {t}") for t in TABLES])
    for _ in range(3):
        insert_signal(
            store,
            recorder_id=1,
            raw_body=b"{}",
            content_type=None,
            remote_addr=None,
            dedupe_key=None,
            window_s=0,
            now=1.0,
        )
    return store


_STORES: list[Store] = []


def two_stores() -> tuple[Store, Store]:
    """The Core and the raw path's databases, migrated once per test session (a migration
    costs more than an example)."""
    if not _STORES:
        tmp = Path(tempfile.mkdtemp(prefix="jt-bulk-"))
        _STORES.extend([fresh(tmp / "core.db"), fresh(tmp / "raw.db")])
    return reset(_STORES[0]), reset(_STORES[1])


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    raw = store.engine.raw_connection()
    try:
        cur = raw.driver_connection.cursor()  # type: ignore[union-attr]
        return {t: cur.execute(f"SELECT * FROM {t} ORDER BY id").fetchall() for t in TABLES}
    finally:
        raw.close()


money = st.floats(-1e6, 1e6, allow_nan=False).map(lambda x: round(x, 2))
maybe_text = st.none() | st.sampled_from(["late", "rejected: margin", "tp"])


@st.composite
def order_row(draw: st.DrawFn) -> dict[str, Any]:
    full = {
        "pair_key": "r1:t1",
        "recorder_id": 1,
        "trader_id": 1,
        "account_id": 1,
        "sub_account_id": draw(st.none() | st.just(1)),
        "cl_ord_id": draw(st.sampled_from(CLS)),
        "symbol": "MNQZ6",
        "side": draw(st.sampled_from(["buy", "sell"])),
        "quantity": draw(st.integers(1, 5)),
        "order_type": draw(st.sampled_from(["market", "stop"])),
        "stop_price": draw(st.none() | money),
        "status": draw(st.sampled_from(["pending", "working", "filled", "cancelled"])),
        "broker_order_id": draw(st.none() | st.sampled_from(["9", "10"])),
        "reason": draw(maybe_text),
        "created_at": draw(st.floats(1, 100)),
    }
    # an update may carry fewer columns (but inserts need the required ones: keep them)
    optional = ["sub_account_id", "stop_price", "broker_order_id", "reason", "order_type"]
    drop = draw(st.sets(st.sampled_from(optional)))
    return {k: v for k, v in full.items() if k not in drop}


@st.composite
def position_row(draw: st.DrawFn) -> dict[str, Any]:
    key, symbol = draw(st.sampled_from(PAIRS))
    row: dict[str, Any] = {"pair_key": key, "symbol": symbol, "recorder_id": 1}
    if draw(st.booleans()):
        row.update(side="flat", quantity=0, avg_price=0.0, unrealised=0.0)
    else:
        row.update(
            side=draw(st.sampled_from(["long", "short"])),
            quantity=draw(st.integers(1, 9)),
            avg_price=draw(money),
            opened_at=draw(st.floats(1, 100)),
            last_price=draw(money),
            unrealised=draw(money),
            worst_unrealised=draw(money),
            best_unrealised=draw(money),
        )
    if draw(st.booleans()):
        row["state"] = {"pos": {"avg": "80001/2", "qty": row["quantity"]}, "ids": [1, 2]}
    if draw(st.booleans()):
        row["trader_id"] = 1
    return row


@st.composite
def batch(draw: st.DrawFn) -> Rows:
    rows = Rows()
    for sid in draw(st.lists(st.integers(1, 3), max_size=3)):
        rows.marks.append(
            {
                "sid": sid,
                "status": draw(st.sampled_from(["applied", "rejected", "filtered"])),
                "reason": draw(maybe_text),
                "detail": draw(maybe_text),
                "applied_at": draw(st.none() | st.floats(1, 100)),
            }
        )
    for _ in range(draw(st.integers(0, 3))):
        fill: dict[str, Any] = {
            "pair_key": "r1:t1",
            "recorder_id": 1,
            "trader_id": draw(st.none() | st.just(1)),
            "symbol": "MNQZ6",
            "side": "buy",
            "quantity": draw(st.integers(1, 3)),
            "price": draw(money),
            "kind": "entry",
            "signal_id": draw(st.none() | st.integers(1, 3)),
            "order_id": None,
            "ts": draw(st.floats(1, 100)),
        }
        rows.fills.append(fill)
    excursions = draw(st.booleans())  # else the columns' defaults (one key set per batch)
    for _ in range(draw(st.integers(0, 2))):
        trade: dict[str, Any] = {
            "recorder_id": 1,
            "trader_id": None,
            "pair_key": "r1:virtual",
            "symbol": "MNQZ6",
            "side": "long",
            "quantity": 1,
            "entry_price": draw(money),
            "exit_price": draw(money),
            "pnl": draw(money),
            "reason": "tp",
            "opened_at": 1.0,
            "closed_at": 2.0,
            "signal_id": None,
        }
        if excursions:
            trade.update(mfe_points=1.5, mae_points=-0.5, mfe_usd=3.0, mae_usd=-1.0)
        rows.trades.append(trade)
    for o in draw(st.lists(order_row(), max_size=4)):
        rows.add(Rows(orders={o["cl_ord_id"]: o}))
    for p in draw(st.lists(position_row(), max_size=4)):
        rows.add(Rows(positions={(p["pair_key"], p["symbol"]): p}))
    return rows


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(batch(), min_size=1, max_size=4))
def test_raw_sqlite_rows_equal_core_rows(batches: list[Rows]) -> None:
    core, raw = two_stores()
    for i, rows in enumerate(batches):
        with mock.patch("time.time", return_value=1000.0 + i):
            core.run_write(rows)
            raw.run_sqlite_write(rows.sqlite())
        assert dump(raw) == dump(core)


def test_merged_rows_leave_what_writing_each_in_turn_leaves(tmp_path: Path) -> None:
    """Rows.add: an order or position met twice is one row with the newer value of each
    column; a flat update after an open row keeps the columns it does not carry."""
    opened = {
        "pair_key": "r1:t1",
        "symbol": "MNQZ6",
        "recorder_id": 1,
        "side": "long",
        "quantity": 2,
        "avg_price": 20000.0,
        "opened_at": 5.0,
        "last_price": 20001.0,
        "unrealised": 1.0,
        "worst_unrealised": -2.0,
        "best_unrealised": 3.0,
        "state": {"x": 1},
    }
    flat = {
        "pair_key": "r1:t1",
        "symbol": "MNQZ6",
        "recorder_id": 1,
        "side": "flat",
        "quantity": 0,
        "avg_price": 0.0,
        "unrealised": 0.0,
        "state": {"x": 2},
    }
    one_by_one, merged = fresh(tmp_path / "a.db"), fresh(tmp_path / "b.db")
    with mock.patch("time.time", return_value=1000.0):
        for row in (opened, flat):
            one_by_one.run_write(Rows(positions={("r1:t1", "MNQZ6"): row}))
        both = Rows(positions={("r1:t1", "MNQZ6"): opened}).add(
            Rows(positions={("r1:t1", "MNQZ6"): flat})
        )
        merged.run_sqlite_write(both.sqlite())
    assert dump(merged) == dump(one_by_one)
    with merged.read() as s:
        (row,) = s.exec(select(Position)).all()
    assert (row.side, row.worst_unrealised, row.opened_at, row.state) == (
        "flat",
        -2.0,
        5.0,
        {"x": 2},
    )


def test_unknown_columns_are_refused() -> None:
    with pytest.raises(TypeError, match="unknown positions column"):
        bulk.insert_statements("positions", [{"pair_key": "k", "symbol": "s", "bogus": 1}])
