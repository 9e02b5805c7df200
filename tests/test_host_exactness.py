"""Exactness guard at the host level: a RecorderHost (columnar tick path, store and all) fed
random signals for several recorders and random tick batches (gaps, flat runs, spikes) records
exactly what the naive per-tick reference computes for each recorder: the same trades (prices,
P&L, reasons, order, MFE/MAE as stored), the same signal outcomes, the same open positions with
the same worst/best unrealised P&L."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import col, select

from actors.instruments import spec_for
from actors.recorder.config import RecorderSettings
from actors.recorder.host import RecorderHost
from actors.store import Store, create_recorder, ensure_local_user, insert_signal, models
from tests.reference.naive import NaiveRecorder
from tests.test_pair_vs_reference import recorder_settings

SYMBOL = "MNQZ6"
STATUS_OF = {"no_price": "rejected", "no_add": "ignored", "flat": "ignored", "in_sync": "ignored"}

batch = st.lists(
    st.one_of(
        st.just(0),
        st.sampled_from([-1, 1]),  # single ticks: levels get touched exactly, not just crossed
        st.integers(-3, 3),
        st.integers(-25, 25),
        st.sampled_from([-90, 90]),
    ),
    min_size=1,
    max_size=20,
)
signal = st.tuples(
    st.integers(0, 4),
    st.sampled_from(["buy", "sell", "buy", "sell", "close", "add", "target"]),
    st.one_of(st.none(), st.integers(-10, 10)),
    st.one_of(st.none(), st.integers(1, 3)),
    st.integers(-4, 4),
)
events = st.lists(
    st.one_of(st.tuples(st.just("batch"), batch), st.tuples(st.just("signal"), signal)),
    min_size=25,
    max_size=70,
)


@st.composite
def tight_settings(draw: st.DrawFn) -> RecorderSettings:
    """Levels a few ticks away, so random batches touch them (exactly, not only across) often."""
    near = st.integers(1, 12)
    cfg: dict[str, Any] = {
        "sizing": {
            "initial_size": draw(st.integers(1, 3)),
            "allow_add": draw(st.booleans()),
            "close_only": draw(st.booleans()),
        }
    }
    if draw(st.booleans()):
        first = draw(near)
        cfg["take_profit"] = {
            "targets": [{"value": first, "trim": 50}, {"value": first + draw(near)}]
        }
    if draw(st.booleans()):
        cfg["stop_loss"] = {"value": draw(near)}
    if draw(st.booleans()):
        cfg["trailing_stop"] = {"trigger": draw(near), "distance": draw(near)}
    if draw(st.booleans()):
        cfg["break_even"] = {"trigger": draw(near), "offset": draw(st.integers(0, 2))}
    if draw(st.booleans()):
        cfg["dca"] = {"step": draw(near), "max_quantity": 4, "add_size": 1}
    return RecorderSettings.model_validate(cfg)


def expected_status(ref_status: str) -> str:
    return "applied" if ref_status == "applied" else STATUS_OF[ref_status]


async def run(cfgs: list[RecorderSettings], evs: list[tuple], url: str) -> None:
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    rids = [
        create_recorder(store, user.id, f"r{i}", SYMBOL, c.model_dump(mode="json")).id
        for i, c in enumerate(cfgs)
    ]
    host = RecorderHost(0, 1, url, flush_s=3600)
    spec = spec_for(SYMBOL)
    refs = [NaiveRecorder(c, spec.tick_size, spec.tick_value) for c in cfgs]
    money_tick = spec.tick_size
    px, ts = 84000, 1_800_000_000.0
    for ev in evs:
        if ev[0] == "batch":
            tss, prices = [], []
            for move in ev[1]:
                px = max(1, px + move)
                ts += 3.0
                tss.append(ts)
                prices.append(round(px * money_tick, 10))
            await host.on_ticks({SYMBOL: (tss, prices)})
            for ref in refs:
                for t, p in zip(tss, prices, strict=True):
                    ref.tick(t, p)
            continue
        k, action, offset, qty, target = ev[1]
        k %= len(cfgs)
        ts += 0.5
        price = None if offset is None else round(max(1, px + offset) * money_tick, 10)
        tgt = target if action == "target" else None
        row, _ = insert_signal(store, recorder_id=rids[k], raw_body=b"{}", content_type=None,
                               remote_addr=None, dedupe_key=None, window_s=0, now=ts)  # fmt: skip
        assert row.id is not None and rids[k] is not None
        intent: dict[str, Any] = {"kind": action, "quantity": qty, "target": tgt, "price": price,
                                  "symbol": SYMBOL, "signal_time": None, "received_at": ts}  # fmt: skip
        got = await host.on_signal(row.id, rids[k], intent)
        want = refs[k].signal(ts, action, price, qty, tgt)
        assert got["status"] == expected_status(want), (got, want)

    await assert_matches_reference(store, host, rids, refs)
    store.dispose()
    host.store.dispose()


async def assert_matches_reference(
    store: Store, host: RecorderHost, rids: list[Any], refs: list[NaiveRecorder]
) -> None:
    """Every recorder's stored trades and live open position equal its naive reference's."""
    with store.read() as s:
        for rid, ref in zip(rids, refs, strict=True):
            rows = s.exec(
                select(models.Trade)
                .where(models.Trade.recorder_id == rid)
                .order_by(col(models.Trade.id))
            ).all()
            got_trades = [
                (
                    t.side,
                    t.quantity,
                    t.reason,
                    t.entry_price,
                    t.exit_price,
                    t.pnl,
                    t.opened_at,
                    t.closed_at,
                    t.mfe_usd,
                    t.mae_usd,
                )
                for t in rows
            ]
            want_trades = [
                (
                    t.side,
                    t.quantity,
                    t.reason,
                    float(t.entry_price),
                    float(t.exit_price),
                    float(t.pnl),
                    t.open_ts,
                    t.close_ts,
                    float(t.mfe_usd),
                    float(t.mae_usd),
                )
                for t in ref.trades
            ]
            assert got_trades == want_trades
    for rid, ref in zip(rids, refs, strict=True):
        views = await host.positions(rid)
        rp = ref.position()
        if rp is None:
            assert views == []
            continue
        (v,) = views
        assert (v["side"], v["quantity"]) == (rp.side, rp.quantity)
        assert v["avg_price"] == float(rp.avg_price)
        assert (v["worst_unrealised"], v["best_unrealised"]) == (
            float(rp.worst_unrealised),
            float(rp.best_unrealised),
        )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    cfgs=st.lists(st.one_of(tight_settings(), recorder_settings()), min_size=1, max_size=5),
    evs=events,
)
def test_host_records_exactly_what_the_reference_computes(
    cfgs: list[RecorderSettings], evs: list[tuple]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(cfgs, evs, f"sqlite:///{Path(d) / 'host.db'}"))
