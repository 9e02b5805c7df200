"""Database fixtures for the store tests (imported explicitly by the test modules).

SQLite always runs (a file under ``tmp_path``). PostgreSQL runs when the local server answers
within 2 s at ``JUSTTRADES_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``); every test gets its own schema, selected
through ``search_path`` in the URL's ``options`` and dropped afterwards, so parallel or
concurrent test runs never see each other's tables.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from actors.store import Store

PG_BASE_URL = os.environ.get(
    "JUSTTRADES_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _libpq_conninfo(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@functools.cache
def pg_unavailable_reason() -> str | None:
    """None when PostgreSQL is reachable, else why not (cached per process)."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg is a dev dependency
        return "psycopg is not installed"
    try:
        with psycopg.connect(_libpq_conninfo(PG_BASE_URL), connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_BASE_URL}: {type(exc).__name__}: {exc}"
    return None


@contextmanager
def pg_schema_url() -> Iterator[str]:
    """Create a private schema; yield a URL whose connections use it; drop it afterwards."""
    import psycopg

    schema = f"jt_test_{uuid.uuid4().hex[:16]}"
    conninfo = _libpq_conninfo(PG_BASE_URL)
    with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = make_url(PG_BASE_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, connect_timeout=2, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def sqlite_url(directory: Path, name: str = "justtrades.db") -> str:
    return f"sqlite:///{directory / name}"


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield sqlite_url(tmp_path / "db")
        return
    reason = pg_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    with pg_schema_url() as url:
        yield url


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database on each backend."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on each backend."""
    s = Store(db_url)
    s.migrate()
    try:
        yield s
    finally:
        s.dispose()
