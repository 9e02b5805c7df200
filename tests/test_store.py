"""Store: engine/transaction behaviour, migrations, repository round trips (SQLite and, when
reachable, PostgreSQL)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import SQLModel, col, select

from actors.recorder.config import RecorderSettings, StopLoss, TakeProfit, TakeProfitTarget
from actors.store import (
    Account,
    Order,
    Recorder,
    Signal,
    Store,
    SubAccount,
    Trade,
    Trader,
    add_fills,
    add_trades,
    alembic_config,
    create_recorder,
    create_user,
    ensure_local_user,
    get_recorder,
    get_recorder_by_token,
    get_signal,
    get_user_by_name,
    insert_signal,
    is_transient_lock_error,
    list_recorders,
    list_signals,
    list_trades,
    load_positions,
    open_positions,
    pending_signals,
    reset_history,
    rotate_recorder_token,
    set_signal_status,
    soft_delete_recorder,
    update_recorder,
    upsert_position,
    upsert_positions,
)
from actors.store.repo.signals import RECEIVED

#: the newest migration (new revisions must not require editing these tests)
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()

try:  # tests/ is not a package today; keep working if it becomes one
    from store_fixtures import db_url, sqlite_url, store  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    from tests.store_fixtures import db_url, sqlite_url, store

__all__ = ["db_url", "store"]  # fixtures used by name

# -- helpers -----------------------------------------------------------------------------------


def _recorder(store: Store, name: str = "scalper", owner_id: int | None = None) -> Recorder:
    if owner_id is None:
        owner_id = ensure_local_user(store).id
    assert owner_id is not None
    return create_recorder(store, owner_id, name, "MNQ1!", {})


def _signal(
    store: Store,
    recorder_id: int | None,
    key: str | None,
    now: float,
    *,
    window_s: float = 10.0,
    status: str = "received",
    body: bytes = b'{"action":"buy"}',
) -> tuple[Signal, bool]:
    return insert_signal(
        store,
        recorder_id=recorder_id,
        raw_body=body,
        content_type="application/json",
        remote_addr="52.89.214.238",
        dedupe_key=key,
        window_s=window_s,
        now=now,
        status=status,
    )


def _trade(recorder_id: int, closed_at: float, pnl: float = 10.0, **kw: object) -> dict:
    row: dict = {
        "recorder_id": recorder_id,
        "pair_key": f"r{recorder_id}:virtual",
        "symbol": "MNQZ5",
        "side": "long",
        "quantity": 1,
        "entry_price": 21000.0,
        "exit_price": 21005.0,
        "pnl": pnl,
        "reason": "tp1",
        "opened_at": closed_at - 60,
        "closed_at": closed_at,
    }
    row.update(kw)
    return row


# -- migrations --------------------------------------------------------------------------------


def test_migrations_match_models(store: Store) -> None:
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    assert ScriptDirectory.from_config(alembic_config()).get_heads() == [HEAD]  # one line
    assert store.current_revision() == HEAD


def test_migrate_is_idempotent_and_independent_of_cwd(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    s = Store(db_url)
    try:
        assert s.current_revision() is None
        s.migrate()
        s.migrate()
        assert s.current_revision() == HEAD
        assert list(elsewhere.iterdir()) == []
    finally:
        s.dispose()


def test_for_tests_in_memory() -> None:
    s = Store.for_tests()
    user = ensure_local_user(s)
    rec = create_recorder(s, user.id or 0, "mem", "MES1!", {})
    with s.read() as session:
        assert get_recorder(session, rec.id or 0) is not None


# -- engine and transactions -------------------------------------------------------------------


def test_sqlite_pragmas_and_parent_directory(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "a" / "b")
    s = Store(url)
    try:
        assert (tmp_path / "a" / "b").is_dir()
        with s.engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")
            }
        assert pragma == {
            "journal_mode": "wal",
            "synchronous": 1,  # NORMAL
            "busy_timeout": 30000,
            "foreign_keys": 1,
        }
    finally:
        s.dispose()


def test_sqlite_write_begins_immediate_read_begins_deferred(tmp_path: Path) -> None:
    s = Store.for_tests(sqlite_url(tmp_path))
    statements: list[str] = []

    @sa.event.listens_for(s.engine, "before_cursor_execute")
    def _capture(conn, cursor, statement, params, context, executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    try:
        with s.write() as session:
            session.exec(select(Recorder)).all()
        assert statements[0] == "BEGIN IMMEDIATE"
        statements.clear()
        with s.read() as session:
            session.exec(select(Recorder)).all()
        assert statements[0] == "BEGIN"
    finally:
        s.dispose()


def test_why_writes_begin_immediate(tmp_path: Path) -> None:
    """The failure BEGIN IMMEDIATE avoids, shown with the bare driver: in WAL mode a deferred
    transaction that read before another connection committed cannot become a writer; SQLite
    answers "database is locked" at once, ignoring the busy timeout."""
    path = tmp_path / "demo.db"
    a = sqlite3.connect(path, timeout=5, isolation_level=None)
    b = sqlite3.connect(path, timeout=5, isolation_level=None)
    try:
        a.execute("PRAGMA journal_mode=WAL")
        a.execute("CREATE TABLE t (x)")
        a.execute("BEGIN")
        a.execute("SELECT count(*) FROM t").fetchone()  # a reader now, with a snapshot
        b.execute("BEGIN IMMEDIATE")
        b.execute("INSERT INTO t VALUES (1)")
        b.execute("COMMIT")
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            a.execute("INSERT INTO t VALUES (2)")
        assert time.monotonic() - started < 1.0  # the 5 s busy timeout never applied
    finally:
        a.close()
        b.close()


def test_sqlite_writers_queue_instead_of_failing(tmp_path: Path) -> None:
    """A writer that finds the write lock taken waits (busy_timeout) rather than erroring,
    and a reader is not blocked by a writer (WAL)."""
    url = sqlite_url(tmp_path)
    a = Store.for_tests(url)
    b = Store(url)
    user = ensure_local_user(a)
    holding = threading.Event()
    errors: list[BaseException] = []

    def hold_lock() -> None:
        try:
            with a.write() as session:
                session.add(Recorder(owner_id=user.id or 0, name="x", symbol="ES1!", token="t1"))
                session.flush()
                holding.set()
                time.sleep(0.5)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=hold_lock)
    t.start()
    try:
        assert holding.wait(5)
        with b.read() as session:  # not blocked by the writer, sees only committed data
            assert session.exec(select(Recorder)).all() == []
        started = time.monotonic()
        rec = create_recorder(b, user.id or 0, "y", "ES1!", {})
        waited = time.monotonic() - started
        t.join()
        assert errors == []
        assert rec.id is not None
        assert waited > 0.2  # it queued behind the holder
        with b.read() as session:
            assert {r.name for r in list_recorders(session)} == {"x", "y"}
    finally:
        t.join()
        a.dispose()
        b.dispose()


def test_read_session_refuses_writes(store: Store) -> None:
    user = ensure_local_user(store)
    with pytest.raises(RuntimeError, match=r"Store\.write"), store.read() as session:
        session.add(Recorder(owner_id=user.id or 0, name="n", symbol="ES1!", token="t"))
        session.flush()


def test_write_commits_or_rolls_back(store: Store) -> None:
    user = ensure_local_user(store)
    with pytest.raises(ZeroDivisionError), store.write() as session:
        create_recorder(session, user.id or 0, "gone", "ES1!", {})
        _ = 1 / 0
    with store.read() as session:
        assert list_recorders(session) == []
    with store.write() as session:  # two repo calls, one transaction
        rec = create_recorder(session, user.id or 0, "kept", "ES1!", {})
        row, dup = insert_signal(
            session,
            recorder_id=rec.id,
            raw_body=b"buy",
            content_type="text/plain",
            remote_addr=None,
            dedupe_key="k",
            window_s=5,
            now=1.0,
        )
        assert not dup
    with store.read() as session:
        assert [r.name for r in list_recorders(session)] == ["kept"]
        assert get_signal(session, row.id or 0) is not None


def test_run_write_retries_transient_lock_errors(store: Store) -> None:
    calls = 0

    def flaky(_session: object) -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked"))
        return "ok"

    assert store.run_write(flaky) == "ok"
    assert calls == 3

    def broken(_session: object) -> None:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("no such table: x"))

    with pytest.raises(OperationalError):
        store.run_write(broken)

    calls = 0
    with pytest.raises(OperationalError):
        store.run_write(flaky, retries=1)
    assert calls == 2


def test_is_transient_lock_error() -> None:
    locked = OperationalError("x", {}, sqlite3.OperationalError("database is locked"))
    other = OperationalError("x", {}, sqlite3.OperationalError("disk I/O error"))
    assert is_transient_lock_error(locked)
    assert not is_transient_lock_error(other)
    assert not is_transient_lock_error(ValueError("database is locked"))


# -- users and recorders -----------------------------------------------------------------------


def test_local_user(store: Store) -> None:
    first = ensure_local_user(store)
    again = ensure_local_user(store)
    assert first.id == again.id
    assert (first.name, first.role) == ("local", "admin")
    other = create_user(store, "alice")
    with store.read() as session:
        found = get_user_by_name(session, "alice")
    assert found is not None and found.id == other.id and found.role == "user"
    with pytest.raises(ValueError):
        create_user(store, "bob", role="root")


def test_recorder_crud(store: Store) -> None:
    user = ensure_local_user(store)
    assert user.id is not None
    settings = RecorderSettings(
        take_profit=TakeProfit(targets=[TakeProfitTarget(value=8, trim=50)]),
        stop_loss=StopLoss(value=20),
    )
    rec = create_recorder(store, user.id, "scalper", "MNQ1!", settings)
    other = create_recorder(store, user.id, "swing", "MES1!", {"sizing": {"initial_size": 2}})
    assert rec.id is not None and other.id is not None
    assert len(rec.token) >= 32 and rec.token != other.token  # ≥ 192 bits, url-safe
    assert rec.enabled and not rec.deleted

    with store.read() as session:
        found = get_recorder_by_token(session, rec.token)
        assert found is not None and found.id == rec.id
        assert RecorderSettings.model_validate(found.settings) == settings
        assert get_recorder_by_token(session, "nope") is None
        assert [r.name for r in list_recorders(session, user.id)] == ["scalper", "swing"]
        assert list_recorders(session, user.id + 1) == []

    with pytest.raises(IntegrityError):
        create_recorder(store, user.id, "scalper", "MNQ1!", {})

    updated = update_recorder(store, rec.id, symbol="NQ1!", enabled=False, settings={})
    assert updated is not None
    assert (updated.symbol, updated.enabled, updated.settings) == ("NQ1!", False, {})
    assert updated.updated_at >= updated.created_at
    assert update_recorder(store, 9999, name="x") is None

    old_token = rec.token
    rotated = rotate_recorder_token(store, rec.id)
    assert rotated is not None and rotated.token != old_token
    with store.read() as session:
        assert get_recorder_by_token(session, old_token) is None
        assert get_recorder_by_token(session, rotated.token) is not None

    assert soft_delete_recorder(store, rec.id)
    assert not soft_delete_recorder(store, rec.id)
    with store.read() as session:
        assert get_recorder_by_token(session, rotated.token) is None
        assert get_recorder(session, rec.id) is None
        deleted = get_recorder(session, rec.id, include_deleted=True)
        assert deleted is not None and deleted.deleted and not deleted.enabled
        assert [r.name for r in list_recorders(session, user.id)] == ["swing"]
        assert len(list_recorders(session, user.id, include_deleted=True)) == 2
    assert update_recorder(store, rec.id, name="back") is None
    # the name is free again
    assert create_recorder(store, user.id, "scalper", "MNQ1!", {}).id != rec.id


# -- signals -----------------------------------------------------------------------------------


def test_signal_round_trip_exact_bytes(store: Store) -> None:
    rec = _recorder(store)
    body = b'{"action": "buy", "price": "21000.25"}\xff\x00 not utf-8'
    row, dup = insert_signal(
        store,
        recorder_id=rec.id,
        raw_body=body,
        content_type="text/plain; charset=utf-8",
        remote_addr="52.89.214.238",
        dedupe_key=None,
        window_s=30,
        now=1_700_000_000.123456,
        parsed={"action": "buy", "price": 21000.25, "nested": {"a": [1, 2]}},
        action="buy",
        ticker="MNQ1!",
        symbol="MNQZ5",
        price=21000.25,
        quantity=2,
    )
    assert not dup
    with store.read() as session:
        got = get_signal(session, row.id or 0)
    assert got is not None
    assert got.raw_body == body
    assert got.received_at == 1_700_000_000.123456
    assert got.parsed == {"action": "buy", "price": 21000.25, "nested": {"a": [1, 2]}}
    assert (got.action, got.ticker, got.symbol, got.price, got.quantity) == (
        "buy",
        "MNQ1!",
        "MNQZ5",
        21000.25,
        2,
    )
    assert got.status == "received" and got.reason is None


def test_unknown_token_signal_stored_with_null_recorder(store: Store) -> None:
    row, dup = _signal(store, None, None, 5.0, status="rejected")
    assert not dup and row.recorder_id is None and row.status == "rejected"
    with pytest.raises(ValueError):
        _signal(store, None, None, 5.0, status="bogus")


def test_dedupe_window(store: Store) -> None:
    a = _recorder(store, "a")
    b = _recorder(store, "b")
    first, dup = _signal(store, a.id, "k1", now=1000.0)
    assert not dup and first.status == "received"

    inside, dup = _signal(store, a.id, "k1", now=1009.5)
    assert dup and inside.status == "duplicate" and inside.reason == f"duplicate_of:{first.id}"

    edge, dup = _signal(store, a.id, "k1", now=1010.0)  # received_at >= now - window
    assert dup and edge.reason == f"duplicate_of:{first.id}"

    # The original is now outside the window; the duplicates inside it do not count.
    later, dup = _signal(store, a.id, "k1", now=1010.5)
    assert not dup and later.status == "received"

    _, dup = _signal(store, b.id, "k1", now=1010.6)
    assert not dup

    _, dup = _signal(store, a.id, "k2", now=1010.7)
    assert not dup

    _, dup1 = _signal(store, a.id, None, now=1010.8)
    _, dup2 = _signal(store, a.id, None, now=1010.8)
    assert not dup1 and not dup2

    _, dup = _signal(store, a.id, "k2", now=1010.9, window_s=0)
    assert not dup


def test_dedupe_ignores_rejected_but_counts_filtered(store: Store) -> None:
    rec = _recorder(store)
    rejected, _ = _signal(store, rec.id, "k", now=100.0, status="rejected")
    retry, dup = _signal(store, rec.id, "k", now=101.0)
    assert not dup and retry.status == "received"
    again, dup = _signal(store, rec.id, "k", now=102.0)
    assert dup and again.reason == f"duplicate_of:{retry.id}"

    filtered, _ = _signal(store, rec.id, "f", now=100.0, status="filtered")
    resend, dup = _signal(store, rec.id, "f", now=101.0)
    assert dup and resend.reason == f"duplicate_of:{filtered.id}"

    # Original rejected later (e.g. by the host): a resend is accepted again.
    set_signal_status(store, retry.id or 0, "rejected", reason="no_price")
    third, dup = _signal(store, rec.id, "k", now=103.0)
    assert not dup and third.id != rejected.id


def test_signal_status_and_pending(store: Store) -> None:
    rec = _recorder(store)
    assert rec.id is not None
    rows = [_signal(store, rec.id, None, now=float(i))[0] for i in range(5)]
    _signal(store, rec.id, None, now=9.0, status="rejected")
    with store.read() as session:
        assert [s.id for s in pending_signals(session, [rec.id])] == [r.id for r in rows]

    updated = set_signal_status(store, rows[1].id or 0, "applied", applied_at=123.5)
    assert updated is not None and updated.applied_at == 123.5
    with store.write() as session:
        set_signal_status(session, rows[3].id or 0, "filtered", "cooldown", "cooldown 30 s")
    assert set_signal_status(store, 999_999, "applied") is None
    with pytest.raises(ValueError):
        set_signal_status(store, rows[0].id or 0, "done")

    with store.read() as session:
        pending = pending_signals(session, [rec.id])
        assert [s.id for s in pending] == [rows[0].id, rows[2].id, rows[4].id]
        filtered = get_signal(session, rows[3].id or 0)
        assert filtered is not None
        assert (filtered.status, filtered.reason, filtered.detail) == (
            "filtered",
            "cooldown",
            "cooldown 30 s",
        )
        newest = list_signals(session, rec.id, limit=2)
        assert [s.received_at for s in newest] == [9.0, 4.0]
        assert [s.received_at for s in list_signals(session, rec.id, limit=2, offset=2)] == [
            3.0,
            2.0,
        ]
        assert len(list_signals(session, rec.id, limit=None)) == 6


def test_pending_signals_of_several_recorders_in_one_indexed_query(store: Store) -> None:
    """A host asks for the pending signals of all its recorders at once; the query runs over
    the partial index, whatever the history (a bound status parameter would make SQLite
    scan the table instead)."""
    a, b, c = _recorder(store, "a"), _recorder(store, "b"), _recorder(store, "c")
    assert a.id is not None and b.id is not None and c.id is not None
    ids = {}
    for i, rid in enumerate([a.id, b.id, c.id, a.id, c.id]):
        ids[i] = _signal(store, rid, None, now=float(i))[0].id
    _signal(store, b.id, None, now=9.0, status="applied")
    with store.read() as session:
        assert [s.id for s in pending_signals(session, [a.id, c.id])] == [
            ids[0],
            ids[2],
            ids[3],
            ids[4],
        ]
        assert [s.id for s in pending_signals(session)] == [ids[i] for i in range(5)]
        assert pending_signals(session, []) == []
        if store.is_sqlite:
            stmt = select(Signal).where(RECEIVED).order_by(col(Signal.id))
            sql = str(stmt.compile(session.get_bind()))
            plan = session.connection().exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
            assert "ix_signals_received" in " ".join(str(row[-1]) for row in plan)


# -- positions ---------------------------------------------------------------------------------


def test_positions(store: Store) -> None:
    a = _recorder(store, "a")
    b = _recorder(store, "b")
    assert a.id is not None and b.id is not None
    state = {"targets_hit": [True, False], "dca_fired": [1], "stop": 20990.25}
    with store.write() as session:
        pos = upsert_position(
            session,
            f"r{a.id}:virtual",
            "MNQZ5",
            recorder_id=a.id,
            side="long",
            quantity=2,
            avg_price=21000.5,
            opened_at=50.0,
            state=state,
        )
        assert pos.id is not None
        upsert_position(session, f"r{a.id}:t7", "MNQZ5", recorder_id=a.id, trader_id=7)
        upsert_position(
            session, f"r{b.id}:virtual", "MESZ5", recorder_id=b.id, side="short", quantity=1
        )
        with pytest.raises(ValueError, match="recorder_id"):
            upsert_position(session, "r0:virtual", "MNQZ5", side="long")
        with pytest.raises(TypeError, match="colour"):
            upsert_position(session, f"r{a.id}:virtual", "MNQZ5", colour="red")

    with store.write() as session:
        upd = upsert_position(
            session,
            f"r{a.id}:virtual",
            "MNQZ5",
            last_price=20990.0,
            unrealised=-21.0,
            worst_unrealised=-30.0,
            best_unrealised=4.0,
        )
        assert upd.id == pos.id and upd.quantity == 2 and upd.state == state

    with store.read() as session:
        assert {p.pair_key for p in open_positions(session)} == {
            f"r{a.id}:virtual",
            f"r{b.id}:virtual",
        }
        assert [p.symbol for p in open_positions(session, a.id)] == ["MNQZ5"]
        got = load_positions(session, [a.id])
        assert [p.pair_key for p in got] == [f"r{a.id}:t7", f"r{a.id}:virtual"]
        assert got[1].worst_unrealised == -30.0 and got[1].state == state
        assert load_positions(session, []) == []

    # Closing keeps the row, flat with quantity 0.
    with store.write() as session:
        upsert_position(session, f"r{a.id}:virtual", "MNQZ5", side="flat", quantity=0, state={})
    with store.read() as session:
        assert open_positions(session, a.id) == []
        assert len(load_positions(session, [a.id, b.id])) == 3


def test_upsert_positions_bulk(store: Store) -> None:
    rec = _recorder(store)
    assert rec.id is not None
    key = f"r{rec.id}:virtual"
    with store.write() as session:
        n = upsert_positions(
            session,
            [
                {"pair_key": key, "symbol": "MNQZ5", "recorder_id": rec.id, "side": "long",
                 "quantity": 1, "avg_price": 100.0, "state": {"a": 1}},
                {"pair_key": key, "symbol": "MESZ5", "recorder_id": rec.id},
            ],
        )  # fmt: skip
        assert n == 2
    with store.write() as session:
        upsert_positions(
            session,
            [
                {"pair_key": key, "symbol": "MNQZ5", "recorder_id": rec.id,
                 "last_price": 99.0, "worst_unrealised": -2.0},
                {"pair_key": key, "symbol": "MESZ5", "recorder_id": rec.id,
                 "last_price": 50.0, "worst_unrealised": -1.0},
            ],
        )  # fmt: skip
        with pytest.raises(ValueError, match="recorder_id"):
            upsert_positions(session, [{"pair_key": key, "symbol": "X"}])
        assert upsert_positions(session, []) == 0
    with store.read() as session:
        rows = {p.symbol: p for p in load_positions(session, [rec.id])}
    assert rows["MNQZ5"].quantity == 1 and rows["MNQZ5"].state == {"a": 1}
    assert rows["MNQZ5"].last_price == 99.0 and rows["MNQZ5"].worst_unrealised == -2.0
    assert rows["MESZ5"].side == "flat" and rows["MESZ5"].state == {}
    assert rows["MESZ5"].last_price == 50.0


# -- trades, fills, reset ----------------------------------------------------------------------


def test_trades_and_fills(store: Store) -> None:
    rec = _recorder(store)
    assert rec.id is not None
    with store.write() as session:
        trades = add_trades(
            session,
            [_trade(rec.id, 300.0), _trade(rec.id, 100.0), Trade(**_trade(rec.id, 200.0))],
        )
        assert all(t.id is not None for t in trades)
        fills = add_fills(
            session,
            [
                {"pair_key": f"r{rec.id}:virtual", "recorder_id": rec.id, "symbol": "MNQZ5",
                 "side": "buy", "quantity": 1, "price": 21000.0, "ts": 10.0, "kind": "entry"},
                {"pair_key": f"r{rec.id}:virtual", "recorder_id": rec.id, "symbol": "MNQZ5",
                 "side": "sell", "quantity": 1, "price": 21005.0, "ts": 20.0, "kind": "exit",
                 "signal_id": 3},
            ],
        )  # fmt: skip
        assert [f.kind for f in fills] == ["entry", "exit"]
    with store.read() as session:
        assert [t.closed_at for t in list_trades(session, rec.id)] == [300.0, 200.0, 100.0]
        assert [t.closed_at for t in list_trades(session, rec.id, limit=1, offset=1)] == [200.0]
        assert list_trades(session, rec.id + 1) == []
        t = list_trades(session, rec.id, limit=1)[0]
    assert (t.mfe_points, t.mae_usd, t.trader_id, t.signal_id) == (0.0, 0.0, None, None)


def test_reset_history(store: Store) -> None:
    a = _recorder(store, "a")
    b = _recorder(store, "b")
    assert a.id is not None and b.id is not None
    for rec_id in (a.id, b.id):
        _signal(store, rec_id, None, 1.0)
        _signal(store, rec_id, None, 2.0)
        with store.write() as session:
            add_trades(session, [_trade(rec_id, 10.0)])
            add_fills(
                session,
                [{"pair_key": f"r{rec_id}:virtual", "recorder_id": rec_id, "symbol": "MNQZ5",
                  "side": "buy", "quantity": 1, "price": 1.0, "kind": "entry"}],
            )  # fmt: skip
            upsert_position(session, f"r{rec_id}:virtual", "MNQZ5", recorder_id=rec_id)
            session.add(
                Order(pair_key=f"r{rec_id}:virtual", recorder_id=rec_id, account_id=1,
                      cl_ord_id=f"jt-{rec_id}", symbol="MNQZ5", side="buy", quantity=1)
            )  # fmt: skip

    counts = reset_history(store, a.id)
    assert counts == {"trades": 1, "fills": 1, "signals": 2, "positions": 1}
    with store.read() as session:
        assert list_trades(session, a.id) == list_signals(session, a.id) == []
        assert load_positions(session, [a.id]) == []
        assert len(list_trades(session, b.id)) == 1
        assert len(list_signals(session, b.id)) == 2
        assert len(load_positions(session, [b.id])) == 1
        assert len(session.exec(select(Order)).all()) == 2  # broker records are kept
        assert get_recorder_by_token(session, a.token) is not None  # the recorder stays


# -- accounts, traders, orders -----------------------------------------------------------------


def test_accounts_traders_orders(store: Store) -> None:
    user = ensure_local_user(store)
    rec = _recorder(store)
    assert user.id is not None and rec.id is not None
    with store.write() as session:
        acct = Account(
            owner_id=user.id,
            broker="tradovate",
            name="demo 1",
            environment="demo",
            credentials_encrypted=b"\x00\x01secret-ciphertext",
        )
        session.add(acct)
        session.flush()
        assert acct.id is not None
        sub = SubAccount(account_id=acct.id, broker_account_id="123456", name="DEMO123456")
        session.add(sub)
        session.flush()
        trader = Trader(
            owner_id=user.id,
            recorder_id=rec.id,
            account_id=acct.id,
            sub_account_id=sub.id,
            multiplier=2.0,
            max_contracts=4,
            overrides={"stop_loss": {"unit": "ticks", "value": 40}},
        )
        session.add(trader)
        session.add(
            Order(pair_key=f"r{rec.id}:t1", recorder_id=rec.id, trader_id=1,
                  account_id=acct.id, cl_ord_id="jt-1", symbol="MNQZ5", side="sell",
                  quantity=2, order_type="stop", stop_price=20990.25, status="working")
        )  # fmt: skip
    with store.read() as session:
        got = session.exec(select(Trader)).one()
        assert got.enabled and not got.close_only and got.multiplier == 2.0
        assert got.overrides == {"stop_loss": {"unit": "ticks", "value": 40}}
        assert session.exec(select(Account)).one().credentials_encrypted == (
            b"\x00\x01secret-ciphertext"
        )
        order = session.exec(select(Order)).one()
        assert (order.status, order.order_type, order.stop_price) == ("working", "stop", 20990.25)

    with pytest.raises(IntegrityError), store.write() as session:  # cl_ord_id is unique
        session.add(Order(pair_key="p", account_id=1, cl_ord_id="jt-1", symbol="MNQZ5",
                          side="buy", quantity=1))  # fmt: skip
    with pytest.raises(IntegrityError), store.write() as session:  # FKs are enforced
        session.add(Trader(owner_id=user.id, recorder_id=999, account_id=999))


# -- threads -----------------------------------------------------------------------------------


def test_threads_share_one_store(store: Store) -> None:
    """8 threads × 25 signal inserts through one Store: no errors, dedupe exact."""
    rec = _recorder(store)
    errors: list[BaseException] = []
    originals: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        try:
            for j in range(25):
                key = f"shared-{j % 5}" if j % 2 else f"t{n}-{j}"
                row, dup = _signal(store, rec.id, key, now=1000.0 + j, window_s=1e6)
                if not dup and key.startswith("shared"):
                    with lock:
                        originals.append(row.id or 0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(originals) == 5
    with store.read() as session:
        rows = list_signals(session, rec.id or 0, limit=None)
    assert len(rows) == 200
    assert sum(r.status == "duplicate" for r in rows) == 8 * 12 - 5
