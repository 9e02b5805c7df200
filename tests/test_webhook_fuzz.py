"""Fuzz the real webhook over loopback: thousands of random and mutated bodies, never a 5xx,
and every single request stored with a status."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from actors.store import Signal, Store
from tests.system import System, running_system

pytestmark = [pytest.mark.ray, pytest.mark.slow]

VALID = [
    {"action": "buy", "ticker": "MNQ1!", "price": "21000.25", "quantity": "1"},
    {"action": "sell", "ticker": "CME_MINI:MES1!", "contracts": 2, "time": "2026-01-05T15:00:00Z"},
    {
        "action": "buy",
        "ticker": "MNQ1!",
        "position_size": "2",
        "market_position": "long",
        "prev_market_position": "flat",
    },
    {"data": "close", "symbol": "MNQ1!", "date": "2026-01-05T15:00:00Z"},
    {"ticker": "ES1!", "action": "sell", "sentiment": "flat", "quantity": 1},
]
KEYS = ["action", "ticker", "symbol", "price", "quantity", "qty", "contracts", "sentiment",
        "market_position", "position_size", "time", "timenow", "id", "data", "command"]  # fmt: skip

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
    max_leaves=8,
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "mutated", "json", "text", "placeholder"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        obj = draw(
            st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), json_values, max_size=6)
        )
        return json.dumps(obj).encode()
    base = dict(draw(st.sampled_from(VALID)))
    if kind == "placeholder":
        base[draw(st.sampled_from(list(base)))] = "{{close}}"
        return json.dumps(base).encode()
    if kind == "text":
        return ";".join(f"{k}={v}" for k, v in base.items()).encode() + b";"
    raw = bytearray(json.dumps(base).encode())
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(raw) - 1))
        raw[pos] = draw(st.integers(0, 255))
    return bytes(raw)


@pytest.fixture(scope="module")
def fuzz_system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[System, str, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'jt.db'}"
    with running_system(url, rate_limit_per_minute=1_000_000) as sut:
        rec = sut.create_recorder("fuzz", {})
        sut.push_ticks(
            [
                {"symbol": s, "price": p}
                for s, p in [("MNQ1!", 21000.0), ("MES1!", 6000.0), ("ES1!", 6000.0)]
            ]
        )
        yield sut, rec["webhook_url"].rsplit("/", 1)[1], url


SENT: list[int] = []


@settings(
    max_examples=2500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    body=bodies(),
    ctype=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
def test_no_5xx_and_everything_stored(
    fuzz_system: tuple[System, str, str], body: bytes, ctype: str
) -> None:
    sut, token, _ = fuzz_system
    r = sut.client.post(
        f"/webhook/{token}", content=body, headers={"Content-Type": ctype} if ctype else {}
    )
    assert r.status_code < 500, (body, r.status_code, r.text)
    answer = r.json()
    assert answer["status"] in {
        "applied",
        "filtered",
        "ignored",
        "duplicate",
        "rejected",
        "received",
    }
    assert isinstance(answer["signal_id"], int)
    SENT.append(answer["signal_id"])


def test_every_request_was_stored(fuzz_system: tuple[System, str, str], tmp_path: Path) -> None:
    _, _, url = fuzz_system
    assert len(SENT) >= 2000, "the fuzz test must run first and send thousands of bodies"
    store = Store(url)
    with store.read() as s:
        n = s.exec(select(func.count()).select_from(Signal).where(Signal.id.in_(SENT))).one()  # type: ignore[union-attr]
        statuses = set(s.exec(select(Signal.status).where(Signal.id.in_(SENT))).all())  # type: ignore[union-attr]
    assert n == len(set(SENT)) == len(SENT)
    assert "received" not in statuses  # every stored signal reached a final status
    assert {"rejected", "applied"} <= statuses


def _stored(url: str, signal_id: int) -> Signal:
    with Store(url).read() as s:
        row = s.get(Signal, signal_id)
        assert row is not None
        return row


def test_bodies_over_the_limit_are_413_and_stored_bounded(
    fuzz_system: tuple[System, str, str],
) -> None:
    """The limit holds whether the size is declared or the body is streamed (chunked): never
    more than the limit is buffered or stored, and the rejection is stored with its reason."""
    sut, token, url = fuzz_system
    limit = sut.settings.max_body_bytes
    declared = sut.client.post(f"/webhook/{token}", content=b"x" * (limit + 1))
    assert declared.status_code == 413 and declared.json()["reason"] == "body_too_large"
    assert _stored(url, declared.json()["signal_id"]).raw_body == b""  # not even read

    def chunks() -> Iterator[bytes]:
        for _ in range(limit // 1000 + 2):
            yield b"y" * 1000

    streamed = sut.client.post(f"/webhook/{token}", content=chunks())
    assert streamed.status_code == 413 and streamed.json()["reason"] == "body_too_large"
    row = _stored(url, streamed.json()["signal_id"])
    assert (row.status, row.raw_body) == ("rejected", b"y" * limit)

    at_limit = sut.client.post(f"/webhook/{token}", content=b"z" * limit)
    assert at_limit.status_code == 400 and at_limit.json()["reason"] != "body_too_large"


def test_answers_keep_their_shape_and_other_methods_and_paths_go_to_the_router(
    fuzz_system: tuple[System, str, str],
) -> None:
    sut, token, _ = fuzz_system
    ok = sut.post_alert(token, '{"action":"close","ticker":"MNQ1!"}')
    assert ok.status_code in (200, 422) and ok.headers["content-type"] == "application/json"
    assert set(ok.json()) == {"status", "reason", "detail", "signal_id", "symbol", "fills"}
    bad = sut.post_alert(token, "nonsense")
    assert bad.status_code == 400
    assert set(bad.json()) == {"status", "reason", "detail", "signal_id"}
    unknown = sut.post_alert("no-such-token", '{"action":"buy"}')
    assert unknown.status_code == 404 and unknown.json()["reason"] == "unknown_token"
    assert sut.client.get(f"/webhook/{token}").status_code == 405
    assert sut.client.post(f"/webhook/{token}/extra", content=b"{}").status_code == 404
    assert "/webhook/{token}" in sut.client.get("/openapi.json").json()["paths"]
