"""A host that dies and restarts records exactly what one that never died records.

Random signals and tick batches for several recorders go through a RecorderHost while the ticks
are also numbered by the feed's own history ring (:mod:`actors.feed.ring`). At random points the
host "dies" (its memory is dropped; what it committed and flushed stays in the store); while it
is down, ticks keep coming (only the feed's history sees them) and signals are stored as
``received``. A new host then starts on the same store, catches up from the feed history
(:mod:`actors.recorder.catchup`), and the batch the feed could not deliver reaches it again.
Trades (prices, P&L, reasons, times, MFE/MAE) and open positions (with their worst/best
unrealised P&L) must equal the naive per-tick reference, which never died.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import select

from actors.feed.ring import TickRing, history
from actors.instruments import spec_for
from actors.recorder.catchup import SignalStep, TickStep, merge, segments
from actors.recorder.config import RecorderSettings
from actors.recorder.host import RecorderHost
from actors.store import Store, create_recorder, ensure_local_user, insert_signal, models
from tests.reference.naive import NaiveRecorder
from tests.test_host_exactness import assert_matches_reference, events, tight_settings
from tests.test_pair_vs_reference import recorder_settings

SYMBOL = "MNQZ6"
EPOCH = 1234.5


class FeedStub:
    """The feed's numbering and history, with the real ring and history function."""

    def __init__(self) -> None:
        self.rings: dict[str, TickRing] = {}

    def publish(self, tss: list[float], prices: list[float]) -> int:
        ring = self.rings.setdefault(SYMBOL, TickRing(1000))
        return ring.extend(tss, prices)

    def history(self, since: dict[str, dict[str, float]]) -> dict[str, Any]:
        return history(self.rings, EPOCH, since)


def host_on(url: str, feed: FeedStub) -> RecorderHost:
    class Host(RecorderHost):
        def _history(self, since: dict[str, dict[str, float]]) -> dict[str, Any] | None:
            return feed.history(since)

    return Host(0, 1, url, flush_s=3600)


async def run(cfgs: list[RecorderSettings], evs: list[tuple], cuts: list[int], url: str) -> None:
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    rids = [
        create_recorder(store, user.id, f"r{i}", SYMBOL, c.model_dump(mode="json")).id
        for i, c in enumerate(cfgs)
    ]
    feed = FeedStub()
    host: RecorderHost | None = host_on(url, feed)
    spec = spec_for(SYMBOL)
    refs = [NaiveRecorder(c, spec.tick_size, spec.tick_value) for c in cfgs]
    px, ts = 84000, 1_800_000_000.0
    undelivered: list[tuple[list[float], list[float], int]] = []
    downs = {c for c in cuts[::2]}
    ups = {c for c in cuts[1::2]}
    for i, ev in enumerate(evs):
        if i in downs and host is not None:
            host.store.dispose()
            host = None  # SIGKILL: memory gone, the store keeps what was committed
        if i in ups and host is None:
            host = host_on(url, feed)
            for tss, prices, first in undelivered:  # the feed sends its kept batch again
                await host.on_ticks({SYMBOL: (tss, prices)}, {SYMBOL: first}, EPOCH)
            undelivered.clear()
        if ev[0] == "batch":
            tss, prices = [], []
            for move in ev[1]:
                px = max(1, px + move)
                ts += 3.0
                tss.append(ts)
                prices.append(round(px * spec.tick_size, 10))
            first = feed.publish(tss, prices)
            if host is None:
                undelivered.append((tss, prices, first))
            else:
                await host.on_ticks({SYMBOL: (tss, prices)}, {SYMBOL: first}, EPOCH)
                if i % 3 == 0:
                    host.flush()  # the once-a-second excursion flush, at arbitrary points
            for ref in refs:
                for t, p in zip(tss, prices, strict=True):
                    ref.tick(t, p)
            continue
        k, action, offset, qty, target = ev[1]
        k %= len(cfgs)
        ts += 0.5
        price = None if offset is None else round(max(1, px + offset) * spec.tick_size, 10)
        tgt = target if action == "target" else None
        intent: dict[str, Any] = {"kind": action, "quantity": qty, "target": tgt, "price": price,
                                  "symbol": SYMBOL, "signal_time": None, "received_at": ts}  # fmt: skip
        row, _ = insert_signal(store, recorder_id=rids[k], raw_body=b"{}", content_type=None,
                               remote_addr=None, dedupe_key=None, window_s=0, now=ts,
                               parsed={"intent": intent})  # fmt: skip
        assert row.id is not None and rids[k] is not None
        refs[k].signal(ts, action, price, qty, tgt)
        if host is not None:
            await host.on_signal(row.id, rids[k], intent)
    if host is None:
        host = host_on(url, feed)
    await check(store, host, rids, refs)
    store.dispose()
    host.store.dispose()


async def check(
    store: Store, host: RecorderHost, rids: list[int | None], refs: list[NaiveRecorder]
) -> None:
    with store.read() as s:
        pending = s.exec(select(models.Signal).where(models.Signal.status == "received")).all()
    assert not pending, "a signal stored while the host was down was never applied"
    await assert_matches_reference(store, host, rids, refs)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    cfgs=st.lists(st.one_of(tight_settings(), recorder_settings()), min_size=1, max_size=4),
    evs=events,
    cuts=st.lists(st.integers(1, 70), min_size=2, max_size=6, unique=True).map(sorted),
)
def test_a_restarted_host_records_what_one_that_never_died_records(
    cfgs: list[RecorderSettings], evs: list[tuple], cuts: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as d:
        asyncio.run(run(cfgs, evs, cuts, f"sqlite:///{Path(d) / 'host.db'}"))


ATR_DCA = {
    "sizing": {"initial_size": 1},
    "dca": {"unit": "atr", "step": 1.0, "atr_period": 3, "max_quantity": 2, "add_size": 1},
}


async def atr_dca_fills(
    url: str, down: tuple[int, int] | None, buy_while_down: bool
) -> list[tuple[str, float]]:
    """Six minutes of three ticks each (true ranges 40, 20, 20, 9, 24, 0 ticks; those of
    minutes 1 and 2 are not their high - low: they need the close before), a buy, then the
    price falls one tick at a time; returns the (kind, price) of the fills. ``down``: the host
    dies before tick ``down[0]`` and restarts before tick ``down[1]`` (mid-minute both)."""
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    rid = create_recorder(store, user.id, "atr", SYMBOL, ATR_DCA).id
    assert rid is not None
    feed = FeedStub()
    host: RecorderHost | None = host_on(url, feed)
    t0, base = 1_800_000_000.0, 84000  # t0 starts a minute
    minutes = [(0, 40, 0), (5, 12, 20), (0, 3, 0), (0, 9, 0), (0, 24, 0), (0, 0, 0)]
    ticks = [
        (t0 + 60 * m + 20 * k, base + d) for m, ds in enumerate(minutes) for k, d in enumerate(ds)
    ]
    ticks += [(t0 + 5 * 60 + 41 + n, base - n) for n in range(1, 21)]
    buy_at = t0 + 5 * 60 + 30 if not buy_while_down else t0 + 4 * 60 + 50
    bought = False
    for i, (ts, px) in enumerate(ticks):
        if down is not None and i == down[0]:
            assert host is not None
            host.store.dispose()  # SIGKILL: memory gone, the store keeps what was committed
            host = None
        if down is not None and i == down[1]:
            host = host_on(url, feed)
        if not bought and ts > buy_at:
            bought = True
            intent = {"kind": "buy", "quantity": None, "target": None, "price": None,
                      "symbol": SYMBOL, "signal_time": None, "received_at": buy_at}  # fmt: skip
            row, _ = insert_signal(store, recorder_id=rid, raw_body=b"{}", content_type=None,
                                   remote_addr=None, dedupe_key=None, window_s=0, now=buy_at,
                                   parsed={"intent": intent})  # fmt: skip
            assert row.id is not None
            if host is not None:
                await host.on_signal(row.id, rid, intent)
        price = round(px * spec_for(SYMBOL).tick_size, 10)
        first = feed.publish([ts], [price])
        if host is not None:
            await host.on_ticks({SYMBOL: ([ts], [price])}, {SYMBOL: first}, EPOCH)
    assert host is not None
    with store.read() as s:
        fills = s.exec(select(models.Fill).where(models.Fill.recorder_id == rid)).all()
    store.dispose()
    host.store.dispose()
    return [(f.kind, f.price) for f in sorted(fills, key=lambda f: f.id or 0)]


@pytest.mark.parametrize("buy_while_down", [False, True])
def test_a_restarted_host_places_an_atr_dca_add_where_one_that_never_died_does(
    tmp_path: Path, buy_while_down: bool
) -> None:
    """The shared minute bars are not persisted: the restarted host rebuilds them from the
    feed's ticks before what it replays. It dies mid-minute 3 and restarts mid-minute 5; the
    buy comes after the restart (the bars must hold the minutes it missed) or while it is down
    (a pending signal, replayed after the look-back). The ATR over the last 3 completed minutes
    must be the same as without the restart, so the DCA add fills at the same price."""
    want = asyncio.run(atr_dca_fills(f"sqlite:///{tmp_path / 'u.db'}", None, buy_while_down))
    # ATR: minutes 2-4 (20 + 9 + 24) / 3 for the buy at 5:30, minutes 1-3 (20 + 20 + 9) / 3
    # for the buy at 4:50; the add at round_half_up(84000 - ATR).
    level = 84000 - (18 if not buy_while_down else 16)
    tick = spec_for(SYMBOL).tick_size
    assert want == [("entry", 84000 * tick), ("dca", level * tick)]
    got = asyncio.run(atr_dca_fills(f"sqlite:///{tmp_path / 'r.db'}", (10, 16), buy_while_down))
    assert got == want


# -- the pure parts ------------------------------------------------------------------------------


def test_merge_puts_each_signal_after_the_ticks_stamped_before_it() -> None:
    ticks = {"A": ([1.0, 2.0, 5.0], [10.0, 11.0, 12.0], 7), "B": ([3.0], [1.0], 1)}
    steps = merge(ticks, [(1, 9, {"received_at": 2.5}), (2, 9, {"received_at": 2.5})])
    shape = [
        (s.symbol, s.first, len(s.ts)) if isinstance(s, TickStep) else s.signal_id for s in steps
    ]
    assert shape == [("A", 7, 2), 1, 2, ("A", 9, 1), ("B", 1, 1)]
    assert all(isinstance(s, (TickStep, SignalStep)) for s in steps)


@pytest.mark.parametrize(
    ("first", "count", "marks", "want"),
    [
        (10, 5, [], [(0, 5)]),
        (10, 5, [9, 14, 20], [(0, 5)]),  # before, at the end, after: no cut
        (10, 5, [11], [(0, 2), (2, 5)]),
        (10, 5, [10, 12, 12], [(0, 1), (1, 3), (3, 5)]),
    ],
)
def test_segments_cut_at_marks_inside_the_range(
    first: int, count: int, marks: list[int], want: list[tuple[int, int]]
) -> None:
    assert segments(first, count, marks) == want


def test_ring_numbers_trims_and_answers_history() -> None:
    ring = TickRing(capacity=3)
    assert ring.extend([1.0, 2.0], [10.0, 20.0]) == 1
    assert ring.append(3.0, 30.0) == 3
    for t in range(4, 10):
        ring.append(float(t), t * 10.0)
    assert ring.last_seq == 9 and ring.base > 1  # trimmed in halves, numbering kept
    tss, pxs, first = ring.since(7)
    assert (tss, pxs, first) == ([8.0, 9.0], [80.0, 90.0], 8)
    assert ring.since(0)[2] == ring.base  # older than the history: the gap shows
    got = history({"X": ring}, 5.0, {"X": {"epoch": 5.0, "seq": 8}})
    assert got["ticks"]["X"] == ([9.0], [90.0], 9) and got["before"]["X"] == (8.0, 80.0)
    other = history({"X": ring}, 5.0, {"X": {"epoch": 4.0, "seq": 8}})  # restarted feed
    assert other["ticks"]["X"][2] == ring.base
    by_time = history({"X": ring}, 5.0, {"X": {"ts": 8.5}})
    assert by_time["ticks"]["X"] == ([9.0], [90.0], 9)


def test_history_looks_back_whole_minutes_with_ticks_for_the_bars() -> None:
    t0 = 1_800_000_000.0  # starts a minute; no tick in minute 3
    stamps = [10, 50, 65, 120, 150, 179, 250, 260, 300]  # seconds after t0; numbers 1..9
    ring = TickRing(capacity=100)
    ring.extend([t0 + s for s in stamps], [float(n) for n in range(1, 10)])
    assert [ring.minutes_back(8, m) for m in (0, 1, 2, 3, 9)] == [7, 4, 3, 1, 1]
    got = history({"X": ring}, 5.0, {"X": {"epoch": 5.0, "seq": 8, "minutes": 2}})
    assert got["ticks"]["X"][2] == 9 and got["lookback"]["X"] == ring.between(3, 8)
    assert got["lookback"]["X"][2] == 3 and len(got["lookback"]["X"][0]) == 6
    bars_only = history({"X": ring}, 5.0, {"X": {"minutes": 1}})  # nothing to replay
    assert bars_only["ticks"]["X"][0] == [] and bars_only["lookback"]["X"][2] == 7
    by_time = history({"X": ring}, 5.0, {"X": {"ts": t0 + 255, "minutes": 1}})
    assert by_time["ticks"]["X"][2] == 8 and by_time["lookback"]["X"] == ring.between(4, 7)
    other = history({"X": ring}, 5.0, {"X": {"epoch": 4.0, "seq": 8, "minutes": 2}})
    assert other["lookback"]["X"][0] == []  # a restarted feed: everything is replayed anyway
    assert "X" not in history({"X": ring}, 5.0, {"X": {"epoch": 5.0, "seq": 8}})["lookback"]
    trimmed = TickRing(capacity=3)
    trimmed.extend([t0 + s for s in stamps[:6]], [1.0] * 6)
    for s in stamps[6:]:
        trimmed.append(t0 + s, 1.0)
    assert trimmed.base == 5  # minute 2 is cut: the look-back gives what is kept
    short = history({"X": trimmed}, 5.0, {"X": {"epoch": 5.0, "seq": 8, "minutes": 3}})
    assert short["lookback"]["X"][2] == 5 and len(short["lookback"]["X"][0]) == 4
    gone = history({"X": trimmed}, 5.0, {"X": {"epoch": 5.0, "seq": 3, "minutes": 3}})
    assert gone["lookback"]["X"][0] == []  # the mark itself is no longer kept


def test_orphaned_signals_are_applied_and_late_ones_rejected_in_order(tmp_path: Path) -> None:
    """A signal stored while the host restarted, whose delivery failed after the host had read
    the store, is applied by the host's sweep; one older than a signal already applied for its
    recorder is rejected as out_of_order instead of being applied late."""
    url = f"sqlite:///{tmp_path / 'orphans.db'}"
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    rid = create_recorder(store, user.id, "r", SYMBOL, {}).id
    assert rid is not None
    host = RecorderHost(0, 1, url, flush_s=3600)
    t0 = 1_800_000_000.0

    def stored(kind: str, at: float) -> tuple[int, dict[str, Any]]:
        intent = {"kind": kind, "quantity": None, "target": None, "price": 21000.0,
                  "symbol": SYMBOL, "signal_time": None, "received_at": at}  # fmt: skip
        row, _ = insert_signal(store, recorder_id=rid, raw_body=b"{}", content_type=None,
                               remote_addr=None, dedupe_key=None, window_s=0, now=at,
                               parsed={"intent": intent})  # fmt: skip
        assert row.id is not None
        return row.id, intent

    orphan, _ = stored("buy", t0)
    assert host._sweep_orphans(t0 + 1) == 0  # too fresh: its delivery may be under way
    host.orphans_at = 0.0
    assert host._sweep_orphans(t0 + 60) == 1
    late, _ = stored("sell", t0 + 61)
    newer, intent = stored("close", t0 + 62)
    asyncio.run(host.on_signal(newer, rid, intent))  # applied before the late one was seen
    host.orphans_at = 0.0
    assert host._sweep_orphans(t0 + 120) == 1
    with store.read() as s:
        status = {
            sig.id: (sig.status, sig.reason)
            for sig in s.exec(select(models.Signal).where(models.Signal.recorder_id == rid))
        }
    assert status[orphan][0] == "applied"
    assert status[late] == ("rejected", "out_of_order")
    assert status[newer][0] == "applied"
    with store.read() as s:
        trades = s.exec(select(models.Trade).where(models.Trade.recorder_id == rid)).all()
    assert len(trades) == 1  # the orphan's buy, closed by the close; the late sell did nothing
    store.dispose()
    host.store.dispose()


def test_a_batch_delivered_again_is_not_applied_twice(tmp_path: Path) -> None:
    """The API sends a batch again after a call that failed; the host that failed had applied
    and committed it before dying: the new host answers from the store instead."""
    url = f"sqlite:///{tmp_path / 'again.db'}"
    store = Store(url)
    store.migrate()
    user = ensure_local_user(store)
    assert user.id is not None
    rid = create_recorder(store, user.id, "r", SYMBOL, {}).id
    assert rid is not None
    items = []
    for n, kind in enumerate(["buy", "add"]):
        at = 1_800_000_000.0 + n
        intent = {"kind": kind, "quantity": None, "target": None, "price": 21000.0 + n,
                  "symbol": SYMBOL, "signal_time": None, "received_at": at}  # fmt: skip
        row, _ = insert_signal(store, recorder_id=rid, raw_body=b"{}", content_type=None,
                               remote_addr=None, dedupe_key=None, window_s=0, now=at,
                               parsed={"intent": intent})  # fmt: skip
        assert row.id is not None
        items.append((row.id, rid, intent))
    first = RecorderHost(0, 1, url, flush_s=3600)
    asyncio.run(first.on_signals(items[:1]))  # applied, committed; the answer is lost
    first.store.dispose()
    second = RecorderHost(0, 1, url, flush_s=3600)
    got = asyncio.run(second.on_signals(items, redelivered=True))
    assert [g["status"] for g in got] == ["applied", "applied"]
    with store.read() as s:
        fills = s.exec(select(models.Fill).where(models.Fill.recorder_id == rid)).all()
    assert sorted(f.kind for f in fills) == ["add", "entry"]  # each signal's fill once
    store.dispose()
    second.store.dispose()


def test_receive_times_stay_with_their_ticks_when_a_resent_batch_is_trimmed(
    tmp_path: Path,
) -> None:
    """A batch sent again overlaps what the host applied: the ticks applied already are
    dropped, and so are their receive times (what a new live position is judged by). Receive
    times that do not match the ticks one for one are not used."""
    url = f"sqlite:///{tmp_path / 'recv.db'}"
    Store(url).migrate()
    host = RecorderHost(0, 1, url, flush_s=3600)
    seen: list[dict[str, list[float]] | None] = []
    host._apply_ticks = lambda batch, skip=frozenset(), recv=None: seen.append(recv) or 0  # type: ignore[method-assign]

    async def send(first: int, n: int, recv: list[float] | None) -> None:
        tss = [1000.0 + first + i for i in range(n)]
        pxs = [21000.0] * n
        await host.on_ticks(
            {SYMBOL: (tss, pxs)}, {SYMBOL: first}, 1.0, {SYMBOL: recv} if recv is not None else None
        )

    asyncio.run(send(1, 3, [10.0, 11.0, 12.0]))  # ticks 1..3
    asyncio.run(send(2, 4, [11.0, 12.0, 13.0, 14.0]))  # 2..5 again: 2 and 3 applied already
    asyncio.run(send(6, 2, [15.0]))  # one receive time for two ticks: not used
    asyncio.run(send(8, 1, None))
    assert seen == [{SYMBOL: [10.0, 11.0, 12.0]}, {SYMBOL: [13.0, 14.0]}, {}, None]
    host.store.dispose()
