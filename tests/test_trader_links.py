"""The database refuses a second trader for the same (recorder, sub-account) (migration 0002),
so two concurrent API requests can never link one strategy to one account twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from actors.store import Store, create_recorder, ensure_local_user, repo
from tests.store_fixtures import BACKENDS, database_url


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url:
        s = Store(url)
        s.migrate()
        yield s
        s.dispose()


def test_one_trader_per_recorder_and_sub_account(store: Store) -> None:
    user = ensure_local_user(store)
    assert user.id is not None
    rec = create_recorder(store, user.id, "r", "MNQ1!", {})
    acc = repo.create_account(
        store, user.id, "tradovate", "a", "demo", sub_accounts=[("1", "DEMO1"), ("2", "DEMO2")]
    )
    assert rec.id is not None and acc.id is not None
    with store.read() as s:
        sub1, sub2 = (x.id for x in repo.list_sub_accounts(s, acc.id))
    assert sub1 is not None and sub2 is not None
    repo.create_trader(store, user.id, rec.id, acc.id, sub1)
    second = repo.create_trader(store, user.id, rec.id, acc.id, sub2)  # another account: fine
    with pytest.raises(IntegrityError):
        repo.create_trader(store, user.id, rec.id, acc.id, sub1)
    assert second.id is not None
    with pytest.raises(IntegrityError):  # moving the second link onto the first's sub-account
        repo.update_trader(store, second.id, sub_account_id=sub1)
