"""Engines, sessions and transactions for SQLite (embedded default) and PostgreSQL (scale-out).

Why the SQLite set-up looks the way it does (the predecessor died of "database is locked"):

* WAL journal: readers never block the writer and the writer never blocks readers.
* ``busy_timeout=30000``: a connection that finds the write lock taken waits for it (up to 30 s)
  instead of failing at once. Our own writers rarely get there: they queue on the write gate
  (:mod:`actors.store.gate`, a ``flock`` woken at the previous commit) before ``BEGIN``; the
  busy handler, which sleeps between tries, is left for writers outside the gate.
* **Write transactions start with ``BEGIN IMMEDIATE``.** A plain (deferred) ``BEGIN`` starts as a
  reader and upgrades to a writer at its first write; in WAL mode, if another connection committed
  in between, that upgrade fails with ``SQLITE_BUSY`` *without* consulting the busy handler, so no
  timeout helps. ``BEGIN IMMEDIATE`` takes the write lock up front, where the busy handler does
  apply, so concurrent writers queue instead of failing. To emit our own ``BEGIN`` the pysqlite
  driver's implicit transaction handling is switched off (``isolation_level = None``) and the
  engine's ``begin`` event issues ``BEGIN IMMEDIATE`` for write sessions and ``BEGIN`` (deferred)
  for reads (the SQLAlchemy recipe "Enabling Non-Legacy SQLite Transactional Modes").
* Read sessions refuse to flush (a write inside a deferred transaction is exactly the failure
  above), so a misplaced write fails loudly in tests instead of intermittently under load.
* ``synchronous=NORMAL``: in WAL mode a commit survives a process crash; only an OS crash or power
  loss can drop the last transactions. ``foreign_keys=ON`` because SQLite defaults to off.
* A bounded retry with jitter around write transactions is a second line of defence for a
  transient "database is locked" (and, on PostgreSQL, deadlock/serialization failures).

PostgreSQL needs none of that: ordinary ``READ COMMITTED`` transactions and ``pool_pre_ping``.
Places that need mutual exclusion (signal dedupe, migrations) take transaction-scoped advisory
locks.
"""

from __future__ import annotations

import logging
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import StaticPool
from sqlmodel import Session

from actors.store import jsontext
from actors.store.checkpoint import BACKSTOP_PAGES, Checkpointer
from actors.store.gate import WriteGate

log = logging.getLogger(__name__)

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
WRITE_RETRIES: Final = 5
"""Attempts after the first for a write transaction that failed with a transient lock error."""

_WRITE_OPTION: Final = "justtrades_write"
"""Execution option marking a connection whose transactions must start as writers."""

_MIGRATE_LOCK_KEY: Final = 0x4A7573745472  # "JustTr": advisory lock key for migrations
_READONLY_KEY: Final = "justtrades_readonly"


def is_sqlite_url(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _is_memory_sqlite(url: str) -> bool:
    u = make_url(url)
    database = u.database or ""
    return u.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or "mode=memory" in database
    )


def make_engine(url: str, *, echo: bool = False, **kwargs: Any) -> Engine:
    """Create an engine configured for how Just.Trades uses the database (see module docs).

    For a file-based SQLite URL the parent directory is created. ``kwargs`` go to
    :func:`sqlalchemy.create_engine` (e.g. ``connect_args``, ``pool_size``).
    """
    u = make_url(url)
    kwargs.setdefault("json_serializer", jsontext.dumps)
    if u.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(u, echo=echo, **kwargs)

    connect_args: dict[str, Any] = dict(kwargs.pop("connect_args", {}) or {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    if _is_memory_sqlite(url):
        # One shared connection, or every checkout would see a new empty database. For
        # single-threaded tests only: all sessions share one transaction.
        connect_args.setdefault("check_same_thread", False)
        kwargs.setdefault("poolclass", StaticPool)
    elif u.database:
        Path(u.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(u, echo=echo, connect_args=connect_args, **kwargs)
    _install_sqlite_hooks(engine)
    return engine


def _install_sqlite_hooks(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module: we emit BEGIN ourselves.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            # Switching to WAL needs a brief exclusive lock; when several processes open a
            # fresh file at once it can report "locked" without the busy handler. Once the
            # file is in WAL mode (persistent) the pragma is a no-op.
            _retry_pragma(cur, "PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # Checkpoints run in a thread (actors.store.checkpoint), not inside our commits.
            cur.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def _retry_pragma(cur: Any, sql: str, attempts: int = 50) -> None:
    import sqlite3

    for attempt in range(attempts):
        try:
            cur.execute(sql)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if attempt == attempts - 1:
                raise
            time.sleep(0.02 + random.random() * 0.05)


def is_transient_lock_error(exc: BaseException) -> bool:
    """True for errors where retrying the whole transaction is the right answer:
    SQLite "database is locked"/"busy", PostgreSQL deadlock or serialization failure."""
    if not isinstance(exc, OperationalError):
        return False
    orig = exc.orig
    pgcode = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if pgcode in ("40001", "40P01"):
        return True
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text


def _refuse_flush_in_read(session: Session, _ctx: Any, _instances: Any) -> None:
    if session.info.get(_READONLY_KEY) and (session.new or session.dirty or session.deleted):
        raise RuntimeError(
            "write attempted in a Store.read() session; use Store.write() "
            "(on SQLite a write inside a deferred read transaction can fail with "
            "'database is locked' regardless of busy_timeout)"
        )


class Store:
    """The database of one process: an engine plus read/write transaction helpers.

    Create one per process (Ray actor, API worker) and share it between threads; do not pass it
    across processes (each process builds its own from the URL).

    * ``with store.read() as s:`` — a read snapshot; never commits, refuses to flush writes.
    * ``with store.write() as s:`` — one write transaction (``BEGIN IMMEDIATE`` on SQLite),
      committed on normal exit, rolled back on exception. Acquiring the write lock is retried on
      a transient lock error; the body is not (a context manager cannot re-run it).
    * ``store.run_write(fn)`` — runs ``fn(session)`` in a write transaction and retries the whole
      function on a transient lock error. Prefer it when ``fn`` only touches the database.

    Objects loaded or created in a session stay usable after it closes (``expire_on_commit`` is
    off) as detached snapshots.
    """

    def __init__(self, url: str, *, echo: bool = False, **engine_kwargs: Any) -> None:
        self.url: str = url
        self.engine: Engine = make_engine(url, echo=echo, **engine_kwargs)
        self.is_sqlite: bool = self.engine.dialect.name == "sqlite"
        self.is_postgresql: bool = self.engine.dialect.name == "postgresql"
        # Same pool; connections checked out through it begin with BEGIN IMMEDIATE.
        self.write_engine: Engine = self.engine.execution_options(**{_WRITE_OPTION: True})
        database = self.engine.url.database
        self.path: Path | None = (
            Path(database).expanduser()
            if self.is_sqlite and database and not _is_memory_sqlite(url)
            else None
        )  # the SQLite file
        self.gate: WriteGate | None = WriteGate(self.path) if self.path is not None else None
        self.checkpointer: Checkpointer | None = None  # started by the first write

    @classmethod
    def for_tests(cls, url: str = "sqlite://", **engine_kwargs: Any) -> Store:
        """A migrated store; the default is a private in-memory SQLite database."""
        store = cls(url, **engine_kwargs)
        store.migrate()
        return store

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    # -- sessions -----------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[Session]:
        session = Session(self.engine, expire_on_commit=False, info={_READONLY_KEY: True})
        event.listen(session, "before_flush", _refuse_flush_in_read)
        try:
            yield session
        finally:
            # close() (not rollback()) ends the read transaction without expiring the loaded
            # objects, so they stay usable as detached snapshots.
            session.close()

    def write(self) -> AbstractContextManager[Session]:
        return self._write(begin_retries=WRITE_RETRIES)

    def _checkpoints(self) -> None:
        """Start this process's checkpoint thread of the file (see :mod:`.checkpoint`)."""
        cp = self.checkpointer
        if self.path is not None and (cp is None or not cp.alive):
            if cp is not None:
                cp.release()
            self.checkpointer = Checkpointer.acquire(self.path)

    @contextmanager
    def _write(self, begin_retries: int) -> Iterator[Session]:
        self._checkpoints()
        gate = self.gate
        if gate is not None:
            gate.acquire()  # see actors/store/gate.py: queue here, not in SQLite's busy handler
        try:
            session = self._begin_write(begin_retries)
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
            finally:
                session.close()
        finally:
            if gate is not None:
                gate.release()

    def run_write(self, fn: Callable[[Session], T], *, retries: int = WRITE_RETRIES) -> T:
        """Run ``fn`` in one write transaction; retry it whole on a transient lock error."""
        attempt = 0
        while True:
            try:
                # This loop is the retry; don't multiply it with _begin_write's own.
                with self._write(begin_retries=0) as session:
                    return fn(session)
            except OperationalError as exc:
                if attempt >= retries or not is_transient_lock_error(exc):
                    raise
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "write transaction failed with a transient lock error, retry %d/%d in %.3fs: %s",
                    attempt,
                    retries,
                    delay,
                    exc.orig,
                )
                time.sleep(delay)

    def run_sqlite_write(
        self, fn: Callable[[sqlite3.Cursor], T], *, retries: int = WRITE_RETRIES
    ) -> T:
        """``fn(cursor)`` in one write transaction on the raw ``sqlite3`` connection (SQLite
        only): ``BEGIN IMMEDIATE`` … ``COMMIT`` behind the write gate, retried whole on a
        transient lock error like :meth:`run_write`. For a hot path that speaks plain SQL: the
        session and statement layers cost ~40 µs per statement, more than SQLite spends
        executing them, on a process whose one GIL also serves HTTP (the webhook's group
        commit)."""
        if not self.is_sqlite:
            raise RuntimeError("run_sqlite_write needs SQLite")
        self._checkpoints()
        attempt = 0
        while True:
            gate = self.gate
            if gate is not None:
                gate.acquire()
            try:
                raw = self.engine.raw_connection()
                try:
                    dbapi: sqlite3.Connection = raw.driver_connection  # type: ignore[assignment]
                    cur = dbapi.cursor()
                    cur.execute("BEGIN IMMEDIATE")
                    try:
                        out = fn(cur)
                        cur.execute("COMMIT")
                        return out
                    finally:
                        if dbapi.in_transaction:  # fn or COMMIT raised
                            dbapi.rollback()
                finally:
                    raw.close()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                transient = "database is locked" in text or "database is busy" in text
                if attempt >= retries or not transient:
                    raise
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "raw write failed with a transient lock error, retry %d: %s", attempt, exc
                )
            finally:
                if gate is not None:
                    gate.release()
            time.sleep(delay)

    def _begin_write(self, retries: int) -> Session:
        """A session whose write transaction has already begun (lock taken on SQLite)."""
        attempt = 0
        while True:
            session = Session(self.write_engine, expire_on_commit=False)
            try:
                session.connection()  # autobegin → BEGIN IMMEDIATE
                return session
            except OperationalError as exc:
                session.close()
                if attempt >= retries or not is_transient_lock_error(exc):
                    raise
                attempt += 1
                delay = _backoff(attempt)
                log.warning(
                    "could not begin a write transaction, retry %d/%d in %.3fs: %s",
                    attempt,
                    retries,
                    delay,
                    exc.orig,
                )
                time.sleep(delay)
            except BaseException:
                session.close()
                raise

    # -- schema -------------------------------------------------------------------------------

    def migrate(self, revision: str = "head") -> None:
        """Upgrade the schema to ``revision`` with alembic, from any working directory.

        Runs inside one write transaction: on SQLite ``BEGIN IMMEDIATE`` serialises concurrent
        start-ups, on PostgreSQL a transaction-scoped advisory lock does; the loser then finds
        the schema current and does nothing.
        """
        cfg = alembic_config()
        with self.write_engine.begin() as conn:
            if self.is_postgresql:
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATE_LOCK_KEY})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def dispose(self) -> None:
        self.engine.dispose()
        if self.gate is not None:
            self.gate.close()
        if self.checkpointer is not None:
            self.checkpointer.release()
            self.checkpointer = None


def _backoff(attempt: int) -> float:
    """Exponential backoff with full jitter: ~50 ms, 100 ms, 200 ms, … capped at 1 s."""
    return random.uniform(0.5, 1.0) * min(1.0, 0.05 * 2 ** (attempt - 1))


def alembic_config() -> Config:
    """An alembic ``Config`` pointing at the migrations packaged in ``actors.store``."""
    base = resources.files("actors.store")
    ini = Path(str(base.joinpath("alembic.ini")))
    cfg = Config(str(ini)) if ini.is_file() else Config()
    # ConfigParser interpolates "%": escape it in paths.
    cfg.set_main_option(
        "script_location", str(Path(str(base.joinpath("migrations")))).replace("%", "%%")
    )
    return cfg
