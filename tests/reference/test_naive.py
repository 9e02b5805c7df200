"""The naive reference against hand-computed scenarios (docs/recording-semantics.md).

MNQ: tick 0.25, $0.50 per tick. ES: tick 0.25, $12.50 per tick. In comments prices are also
given in ticks (MNQ 100.00 = 400 ticks).
"""

from __future__ import annotations

from fractions import Fraction as F
from typing import Any

import pytest

from actors.recorder.config import RecorderSettings

from .naive import NaiveRecorder, RefTrade, round_half_up

MNQ = (0.25, 0.50)
ES = (0.25, 12.50)


def make(spec: tuple[float, float] = MNQ, **settings: Any) -> NaiveRecorder:
    return NaiveRecorder(RecorderSettings.model_validate(settings), *spec)


def only_trade(r: NaiveRecorder) -> RefTrade:
    assert len(r.trades) == 1
    return r.trades[0]


def test_round_half_up() -> None:
    assert round_half_up(F(5, 2)) == 3
    assert round_half_up(F(-5, 2)) == -2
    assert round_half_up(F(7, 3)) == 2
    assert round_half_up(F(-7, 3)) == -2
    assert round_half_up(F(8, 3)) == 3


# ---------------------------------------------------------------- signals


def test_open_long_tick_path_close() -> None:
    r = make()
    r.tick(0, 20000.00)
    assert r.position() is None
    assert r.signal(1, "buy", quantity=2) == "applied"  # fills at the last tick
    pos = r.position()
    assert pos is not None
    assert (pos.side, pos.quantity, pos.avg_price) == ("long", 2, F(20000))
    assert pos.stop_price is None and pos.target_prices == [] and pos.dca_levels_fired == 0

    r.tick(2, 20001.00)  # +4 ticks
    r.tick(3, 19998.50)  # -6 ticks
    r.tick(4, 20002.25)  # +9 ticks
    pos = r.position()
    assert pos is not None
    assert pos.worst_unrealised == F(-6)  # -6 × 0.5 × 2
    assert pos.best_unrealised == F(9)  # 9 × 0.5 × 2

    assert r.signal(5, "close", price=20001.50) == "applied"  # +6 ticks
    assert r.position() is None
    t = only_trade(r)
    assert t == RefTrade(
        side="long",
        quantity=2,
        entry_price=F(20000),
        exit_price=F("20001.5"),
        pnl=F(6),  # 6 × 0.5 × 2
        reason="close",
        open_ts=1,
        close_ts=5,
        mfe_points=F("2.25"),
        mae_points=F("-1.5"),
        mfe_usd=F("4.5"),
        mae_usd=F(-3),
    )


def test_short_closed_by_buy_close_only_loses() -> None:
    r = make(ES, sizing={"close_only": True})
    assert r.signal(0, "sell", price=5000.00) == "applied"
    r.tick(1, 4998.00)  # 8 ticks in favour of the short
    assert r.signal(2, "buy", price=5002.50) == "applied"  # 10 ticks against
    assert r.position() is None  # close only: no reversal
    t = only_trade(r)
    assert (t.side, t.quantity, t.reason) == ("short", 1, "signal")
    assert t.pnl == F(-125)  # -1 × 10 × 12.50
    assert (t.mfe_points, t.mae_points) == (F(2), F("-2.5"))
    assert (t.mfe_usd, t.mae_usd) == (F(100), F(-125))
    # a later sell without a price opens at the last *tick*, not the last signal price
    assert r.signal(3, "sell") == "applied"
    pos = r.position()
    assert pos is not None and (pos.side, pos.avg_price) == ("short", F(4998))


def test_short_closed_in_profit_has_positive_pnl() -> None:
    r = make(ES)
    r.signal(0, "sell", price=5000.00, quantity=3)
    assert r.signal(1, "close", price=4990.00) == "applied"  # 40 ticks in favour
    t = only_trade(r)
    assert (t.side, t.reason, t.pnl) == ("short", "close", F(1500))  # 40 × 12.5 × 3


def test_reversal_one_trade_and_new_position() -> None:
    r = make(ES)
    r.signal(0, "buy", price=5000.00)
    assert r.signal(1, "sell", price=5003.00, quantity=2) == "applied"
    t = only_trade(r)
    assert (t.side, t.quantity, t.reason) == ("long", 1, "reverse")
    assert t.exit_price == F(5003) and t.pnl == F(150)  # 12 ticks × 12.5
    assert (t.open_ts, t.close_ts) == (0, 1)
    pos = r.position()
    assert pos is not None
    assert (pos.side, pos.quantity, pos.avg_price) == ("short", 2, F(5003))
    assert (pos.worst_unrealised, pos.best_unrealised) == (0, 0)  # fresh excursions
    r.tick(2, 5004.00)  # 4 ticks against the short
    pos = r.position()
    assert pos is not None and pos.worst_unrealised == F(-100)  # -4 × 12.5 × 2
    r.signal(3, "close")
    assert r.trades[1].open_ts == 1


def test_default_reverse_quantity_is_initial_size() -> None:
    r = make(sizing={"initial_size": 3})
    r.signal(0, "buy", price=100.00)
    r.signal(1, "sell", price=100.00)
    pos = r.position()
    assert pos is not None and (pos.side, pos.quantity) == ("short", 3)
    assert r.trades[0].quantity == 3


def test_same_side_add_weighted_average_and_levels_recomputed() -> None:
    r = make(take_profit={"targets": [{"value": 10}]}, stop_loss={"value": 8})
    r.signal(0, "buy", price=100.00)  # 400
    pos = r.position()
    assert pos is not None
    assert pos.target_prices == [F("102.5")]  # 410
    assert pos.stop_price == F(98)  # 392

    assert r.signal(1, "buy", price=99.00, quantity=2) == "applied"  # 2 @ 396
    pos = r.position()
    assert pos is not None
    assert pos.quantity == 3
    assert pos.avg_price == F(298, 3)  # (400 + 2 × 396) / 3 = 1192/3 ticks
    assert pos.target_prices == [F("101.75")]  # round_half_up(1192/3 + 10) = 407
    assert pos.stop_price == F("97.25")  # round_half_up(1192/3 - 8) = 389
    # the add's fill (396) was observed before the add, with 1 contract at 400
    assert pos.worst_unrealised == F(-2)

    r.tick(2, 101.75)  # 407: TP
    t = only_trade(r)
    assert (t.quantity, t.reason, t.exit_price, t.entry_price) == (3, "tp1", F("101.75"), F(298, 3))
    assert t.pnl == F("14.5")  # (407 - 1192/3) × 0.5 × 3 = 29/3 × 1.5
    assert t.mfe_points == F(29, 12)  # 29/3 ticks
    assert t.mae_points == F(-1)  # -4 ticks, seen at the add's fill price
    assert t.mae_usd == F(-2)


def test_no_add_when_adds_disallowed_but_fill_still_observed() -> None:
    r = make(sizing={"allow_add": False})
    r.signal(0, "buy", price=100.00)
    assert r.signal(1, "buy", price=103.00) == "no_add"
    pos = r.position()
    assert pos is not None and pos.quantity == 1
    assert pos.best_unrealised == F(6)  # 12 ticks × 0.5: the fill price was observed


def test_add_action_uses_add_size() -> None:
    r = make(sizing={"add_size": 2})
    r.signal(0, "buy", price=100.00)
    assert r.signal(1, "add", price=101.00) == "applied"
    pos = r.position()
    assert pos is not None and pos.quantity == 3
    assert pos.avg_price == F(302, 3)  # (400 + 2 × 404) / 3 ticks × 0.25


# ---------------------------------------------------------------- take profits


TWO_HALVES = {"targets": [{"value": 4, "trim": 50}, {"value": 8, "trim": 50}]}


def test_two_targets_gap_past_both_fill_at_own_levels() -> None:
    r = make(take_profit=TWO_HALVES)
    r.signal(0, "buy", price=100.00, quantity=2)
    r.tick(1, 100.50)
    assert len(r.trades) == 0
    r.tick(2, 102.50)  # 410: past 404 and 408
    assert r.position() is None
    tp1, tp2 = r.trades
    assert (tp1.reason, tp1.quantity, tp1.exit_price, tp1.pnl) == ("tp1", 1, F(101), F(2))
    assert (tp2.reason, tp2.quantity, tp2.exit_price, tp2.pnl) == ("tp2", 1, F(102), F(4))
    assert tp1.close_ts == tp2.close_ts == 2
    assert tp1.mfe_points == tp2.mfe_points == F("2.5")  # 10 ticks, step a precedes step c


def test_two_targets_one_at_a_time() -> None:
    r = make(take_profit=TWO_HALVES)
    r.signal(0, "buy", price=100.00, quantity=2)
    r.tick(1, 101.00)
    pos = r.position()
    assert pos is not None
    assert pos.quantity == 1 and pos.target_prices == [None, F(102)]
    assert pos.avg_price == F(100)  # a partial close does not move the average
    r.tick(2, 101.75)
    assert len(r.trades) == 1
    r.tick(3, 102.00)
    assert [t.reason for t in r.trades] == ["tp1", "tp2"]
    assert r.position() is None


def test_short_take_profit() -> None:
    r = make(take_profit={"targets": [{"value": 4}]})
    r.signal(0, "sell", price=100.00)
    pos = r.position()
    assert pos is not None and pos.target_prices == [F(99)]
    r.tick(1, 98.75)  # 395, past 396
    t = only_trade(r)
    assert (t.exit_price, t.pnl, t.reason) == (F(99), F(2), "tp1")


def test_trim_rounding_three_contracts_two_halves() -> None:
    r = make(take_profit=TWO_HALVES)
    r.signal(0, "buy", price=100.00, quantity=3)
    r.tick(1, 101.00)
    assert r.trades[-1].quantity == 2  # max(1, round_half_up(3 × 0.5)) = 2
    r.tick(2, 102.00)
    assert r.trades[-1].quantity == 1  # the last target closes the rest
    assert r.position() is None


def test_trim_capped_by_what_is_open() -> None:
    halves = [{"value": 4, "trim": 50}, {"value": 8, "trim": 50}, {"value": 12, "trim": 50}]
    r = make(take_profit={"targets": halves})
    r.signal(0, "buy", price=100.00, quantity=3)
    r.tick(1, 103.00)  # all three reached
    assert [(t.reason, t.quantity) for t in r.trades] == [("tp1", 2), ("tp2", 1)]
    assert r.position() is None


def test_trim_minimum_one() -> None:
    quarters = [{"value": 4, "trim": 25}, {"value": 8, "trim": 25}, {"value": 12, "trim": 25}]
    r = make(take_profit={"targets": quarters})
    r.signal(0, "buy", price=100.00, quantity=3)
    r.tick(1, 103.00)  # round_half_up(0.75) = 1, 1, then the rest
    assert [(t.reason, t.quantity) for t in r.trades] == [("tp1", 1), ("tp2", 1), ("tp3", 1)]


@pytest.mark.parametrize(
    ("spec", "unit", "value", "side", "entry", "level"),
    [
        (MNQ, "percent", 1, "buy", 100.00, F(101)),  # 400 × 1% = 4 ticks
        (MNQ, "percent", 1, "sell", 100.00, F(99)),
        (MNQ, "dollars", 5, "buy", 100.00, F("102.5")),  # 5 / 0.5 = 10 ticks
        (MNQ, "points", 2, "buy", 100.00, F(102)),  # 2 / 0.25 = 8 ticks
        (ES, "dollars", 50, "buy", 5000.00, F(5001)),  # 50 / 12.5 = 4 ticks
        (ES, "percent", 0.01, "buy", 5000.00, F("5000.5")),  # 20000 × 0.01% = 2 ticks
        (ES, "percent", 0.01, "sell", 5000.00, F("4999.5")),
    ],
)
def test_take_profit_units(
    spec: tuple[float, float], unit: str, value: float, side: str, entry: float, level: F
) -> None:
    r = make(spec, take_profit={"unit": unit, "targets": [{"value": value}]}, sizing={})
    r.signal(0, side, price=entry, quantity=2)
    pos = r.position()
    assert pos is not None and pos.target_prices == [level]


def test_percent_take_profit_fills_at_level() -> None:
    r = make(take_profit={"unit": "percent", "targets": [{"value": 1}]})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 101.25)
    t = only_trade(r)
    assert (t.exit_price, t.pnl) == (F(101), F(2))


def test_levels_round_half_up_on_a_half_tick_average() -> None:
    settings = {"take_profit": {"targets": [{"value": 2}]}, "stop_loss": {"value": 2}}
    long = make(**settings)
    long.signal(0, "buy", price=100.00)
    long.signal(1, "buy", price=100.25)  # average 400.5 ticks
    pos = long.position()
    assert pos is not None and pos.avg_price == F("100.125")
    assert pos.target_prices == [F("100.75")]  # round_half_up(402.5) = 403
    assert pos.stop_price == F("99.75")  # round_half_up(398.5) = 399
    short = make(**settings)
    short.signal(0, "sell", price=100.00)
    short.signal(1, "sell", price=100.25)
    pos = short.position()
    assert pos is not None
    assert pos.target_prices == [F("99.75")]  # round_half_up(398.5) = 399
    assert pos.stop_price == F("100.75")  # round_half_up(402.5) = 403


# ---------------------------------------------------------------- stops


def test_stop_fills_at_gapping_tick_price() -> None:
    r = make(stop_loss={"value": 8})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 98.25)
    assert r.position() is not None
    r.tick(2, 97.00)  # stop 98.00, gap to 97.00
    t = only_trade(r)
    assert (t.reason, t.exit_price, t.pnl) == ("stop_loss", F(97), F(-6))
    assert (t.mae_points, t.mae_usd) == (F(-3), F(-6))


def test_short_stop_fills_at_gapping_tick_price() -> None:
    r = make(stop_loss={"unit": "points", "value": 2})
    r.signal(0, "sell", price=100.00)
    r.tick(1, 102.50)  # stop 102.00
    t = only_trade(r)
    assert (t.reason, t.exit_price, t.pnl) == ("stop_loss", F("102.5"), F(-5))


def test_stop_wins_over_take_profit_on_the_same_tick() -> None:
    r = make(
        take_profit={"targets": [{"value": 4}]},
        break_even={"trigger": 2, "offset": 6},
    )
    r.signal(0, "buy", price=100.00)
    r.tick(1, 100.75)  # +3: break-even activates at 406, above p: not checked on this tick
    pos = r.position()
    assert pos is not None and pos.stop_price == F("101.5")
    r.tick(2, 101.25)  # 405: stop 406 ≥ 405 and TP 404 ≤ 405 → the stop wins, at p
    t = only_trade(r)
    assert (t.reason, t.exit_price, t.pnl) == ("break_even", F("101.25"), F("2.5"))


def test_trailing_stop_activation_and_exit() -> None:
    r = make(trailing_stop={"trigger": 4, "distance": 3})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 100.75)  # +3 < 4
    pos = r.position()
    assert pos is not None and pos.stop_price is None
    r.tick(2, 101.00)  # +4: active, best 404 - 3 = 401
    pos = r.position()
    assert pos is not None and pos.stop_price == F("100.25")
    r.tick(3, 102.00)  # best 408 → 405
    pos = r.position()
    assert pos is not None and pos.stop_price == F("101.25")
    r.tick(4, 101.50)  # 406 > 405: no exit, level stays
    pos = r.position()
    assert pos is not None and pos.stop_price == F("101.25")
    r.tick(5, 101.25)
    t = only_trade(r)
    assert (t.reason, t.exit_price, t.pnl) == ("trailing_stop", F("101.25"), F("2.5"))


def test_trailing_stop_only_tightens() -> None:
    r = make(trailing_stop={"unit": "percent", "trigger": 0, "distance": 5})
    r.signal(0, "buy", price=100.00)  # 400
    r.tick(1, 105.00)  # 420: active; distance 5% of 400 = 20 → 400
    pos = r.position()
    assert pos is not None and pos.stop_price == F(100)
    r.signal(2, "buy", price=104.00, quantity=3)  # average (400 + 3 × 416) / 4 = 412
    pos = r.position()
    assert pos is not None and pos.avg_price == F(103)
    assert pos.stop_price == F(100)  # an activated trailing stop keeps its level
    r.tick(3, 104.50)  # distance 5% of 412 = 20.6 → round_half_up(399.4) = 399 would loosen
    pos = r.position()
    assert pos is not None and pos.stop_price == F(100)


def test_trailing_stop_moved_on_a_tick_is_not_checked_on_that_tick() -> None:
    r = make(trailing_stop={"trigger": 4, "distance": 1})
    r.signal(0, "buy", price=100.00)  # 400
    r.tick(1, 100.75)  # 403, +3: not active; best price 403
    r.signal(2, "add", price=99.00)  # average (400 + 396) / 2 = 398: trigger now at 402
    r.tick(3, 100.50)  # 402: activates at 403 - 1 = 402 ≥ p, but only checked from next tick
    pos = r.position()
    assert pos is not None and pos.quantity == 2 and pos.stop_price == F("100.5")
    assert r.trades == []
    r.tick(4, 100.50)  # now 402 ≥ 402 → exit at p
    t = only_trade(r)
    assert (t.reason, t.quantity, t.exit_price, t.pnl) == ("trailing_stop", 2, F("100.5"), F(4))


def test_break_even_with_offset_long() -> None:
    r = make(break_even={"trigger": 4, "offset": 2})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 100.75)
    pos = r.position()
    assert pos is not None and pos.stop_price is None
    r.tick(2, 101.00)  # +4: stop at 400 + 2
    pos = r.position()
    assert pos is not None and pos.stop_price == F("100.5")
    r.tick(3, 100.50)
    t = only_trade(r)
    assert (t.reason, t.exit_price, t.pnl) == ("break_even", F("100.5"), F(1))


def test_break_even_with_offset_short() -> None:
    r = make(break_even={"trigger": 4, "offset": 2})
    r.signal(0, "sell", price=100.00)
    r.tick(1, 99.00)  # 396: +4 in favour → stop at 400 - 2 = 398
    pos = r.position()
    assert pos is not None and pos.stop_price == F("99.5")
    r.tick(2, 99.75)  # 398 ≤ 399 → exit at p
    t = only_trade(r)
    assert (t.reason, t.exit_price, t.pnl) == ("break_even", F("99.75"), F("0.5"))


def test_break_even_moved_on_a_tick_is_not_checked_on_that_tick() -> None:
    r = make(break_even={"trigger": 2, "offset": 4})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 100.50)  # 402: activates at 404 ≥ p
    assert r.position() is not None
    r.tick(2, 100.75)  # 404 ≥ 403
    t = only_trade(r)
    assert (t.reason, t.exit_price) == ("break_even", F("100.75"))


def test_stop_tie_order_trailing_then_break_even_then_fixed() -> None:
    both = {"stop_loss": {"value": 2}, "break_even": {"trigger": 4, "offset": -2}}
    r = make(**both)
    r.signal(0, "buy", price=100.00)
    r.tick(1, 101.00)  # break-even 398 == fixed 398
    pos = r.position()
    assert pos is not None and pos.stop_price == F("99.5")
    r.tick(2, 99.00)
    assert only_trade(r).reason == "break_even"

    r = make(**both, trailing_stop={"trigger": 4, "distance": 6})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 101.00)  # trailing 404 - 6 = 398 too
    r.tick(2, 99.00)
    t = only_trade(r)
    assert (t.reason, t.exit_price) == ("trailing_stop", F(99))


def test_tighter_component_names_the_exit() -> None:
    r = make(stop_loss={"value": 8}, break_even={"trigger": 4, "offset": 0})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 101.00)  # break-even at 400 is tighter than 392
    r.tick(2, 97.00)
    t = only_trade(r)
    assert (t.reason, t.exit_price) == ("break_even", F(97))


# ---------------------------------------------------------------- DCA


def test_dca_ticks_fires_twice_on_a_gap_and_is_capped() -> None:
    r = make(dca={"step": 4, "add_size": 1, "max_quantity": 2})
    r.signal(0, "buy", price=100.00)  # levels 396, 392, 388, …
    r.tick(1, 99.25)  # 397
    pos = r.position()
    assert pos is not None and pos.dca_levels_fired == 0
    r.tick(2, 98.00)  # 392: levels 1 and 2; level 1 adds 1 at p, level 2 adds 0
    pos = r.position()
    assert pos is not None
    assert (pos.quantity, pos.avg_price, pos.dca_levels_fired) == (2, F(99), 2)
    assert pos.worst_unrealised == F(-4)  # step a before the adds: -8 × 0.5 × 1
    r.tick(3, 97.00)  # 388: level 3 fires, adds 0
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.dca_levels_fired) == (2, 3)
    assert pos.worst_unrealised == F(-8)  # -8 × 0.5 × 2 against 396


def test_dca_gap_adds_for_each_level_under_the_cap() -> None:
    r = make(dca={"unit": "points", "step": 1, "add_size": 1, "max_quantity": 5})
    r.signal(0, "buy", price=100.00)
    r.tick(1, 98.00)  # levels 99 and 98 both add 1 at 98
    pos = r.position()
    assert pos is not None
    assert (pos.quantity, pos.avg_price, pos.dca_levels_fired) == (3, F(296, 3), 2)


def test_dca_short_and_levels_anchored_at_first_entry() -> None:
    r = make(dca={"step": 4, "add_size": 1, "max_quantity": 5})
    r.signal(0, "sell", price=100.00)  # levels 404, 408, …
    r.signal(1, "add", price=102.00)  # average 404 but DCA stays anchored at 400
    r.tick(2, 101.00)  # 404 → level 1
    pos = r.position()
    assert pos is not None
    assert (pos.quantity, pos.dca_levels_fired) == (3, 1)
    assert pos.avg_price == F(101)  # (400 + 408 + 404) / 3 = 404


def test_dca_add_recomputes_levels_and_base_quantity() -> None:
    r = make(take_profit=TWO_HALVES, dca={"step": 4, "add_size": 2, "max_quantity": 4})
    r.signal(0, "buy", price=100.00, quantity=2)
    r.tick(1, 99.00)  # 396: level 1 adds 2 at 396 → 4 @ 398
    pos = r.position()
    assert pos is not None
    assert (pos.quantity, pos.avg_price) == (4, F("99.5"))
    assert pos.target_prices == [F("100.5"), F("101.5")]
    r.tick(2, 100.50)  # tp1: round_half_up(4 × 50%) = 2 (base is now 4)
    assert [(t.reason, t.quantity, t.pnl) for t in r.trades] == [("tp1", 2, F(4))]
    r.tick(3, 101.50)
    assert [(t.reason, t.quantity, t.pnl) for t in r.trades][1] == ("tp2", 2, F(8))


def _atr_history(r: NaiveRecorder) -> None:
    for ts, price in [(0, 100.00), (10, 101.00), (20, 99.50), (30, 100.50)]:
        r.tick(ts, price)  # bar 0: H 404 L 398 C 402 → TR 6
    for ts, price in [(60, 100.00), (70, 102.00), (80, 101.00)]:
        r.tick(ts, price)  # bar 1: H 408 L 400 C 404 → TR max(408, 402) - min(400, 402) = 8
    for ts, price in [(120, 105.00), (130, 104.00)]:
        r.tick(ts, price)  # bar 2: H 420 L 416 C 416 → TR max(420, 404) - min(416, 404) = 16
    r.tick(180, 100.00)  # completes bar 2


def test_dca_atr_frozen_at_open() -> None:
    r = make(dca={"unit": "atr", "step": 2, "atr_period": 2, "add_size": 1, "max_quantity": 3})
    _atr_history(r)
    r.signal(185, "buy", price=100.00)  # ATR (8 + 16) / 2 = 12 → step 24: levels 376, 352
    r.tick(190, 94.25)  # 377
    pos = r.position()
    assert pos is not None and pos.dca_levels_fired == 0
    r.tick(200, 94.00)  # 376 → level 1
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.avg_price, pos.dca_levels_fired) == (2, F(97), 1)
    # bar 3 (H 400 L 376, TR 40) completes now; a live ATR would be 28, but it is frozen
    r.tick(250, 88.25)  # 353
    pos = r.position()
    assert pos is not None and pos.dca_levels_fired == 1
    r.tick(260, 88.00)  # 352 → level 2
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.avg_price, pos.dca_levels_fired) == (3, F(94), 2)


def test_dca_atr_with_fewer_bars_than_the_period() -> None:
    r = make(dca={"unit": "atr", "step": 2, "atr_period": 14, "add_size": 1, "max_quantity": 3})
    _atr_history(r)
    r.signal(185, "buy", price=100.00)  # ATR (6 + 8 + 16) / 3 = 10 → step 20: level 380
    r.tick(190, 95.25)
    pos = r.position()
    assert pos is not None and pos.dca_levels_fired == 0
    r.tick(200, 95.00)
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.dca_levels_fired) == (2, 1)


def test_dca_atr_without_a_completed_bar_is_off() -> None:
    r = make(dca={"unit": "atr", "step": 1, "add_size": 1, "max_quantity": 3})
    r.tick(0, 100.00)
    r.tick(30, 101.00)
    r.signal(100, "buy", price=100.00)  # a signal does not complete a bar
    r.tick(130, 50.00)  # completes bar 0 now, but the ATR was frozen (none) at open
    r.tick(200, 40.00)
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.dca_levels_fired) == (1, 0)


# ---------------------------------------------------------------- targets and rejects


def test_target_signals() -> None:
    r = make(sizing={"close_only": True})  # close_only does not apply to targets
    r.tick(0, 100.00)
    assert r.signal(1, "target", target=2) == "applied"  # flat → long 2 @ 400
    assert r.signal(2, "target", price=101.00, target=3) == "applied"  # add 1 @ 404
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.avg_price) == (3, F(301, 3))  # 1204/3 ticks

    assert r.signal(3, "target", price=102.00, target=1) == "applied"  # close 2 @ 408
    t = r.trades[-1]
    assert (t.side, t.quantity, t.reason, t.entry_price) == ("long", 2, "strategy", F(301, 3))
    assert t.pnl == F(20, 3)  # (408 - 1204/3) × 0.5 × 2
    pos = r.position()
    assert pos is not None and (pos.quantity, pos.avg_price) == (1, F(301, 3))

    assert r.signal(4, "target", target=1) == "in_sync"

    assert r.signal(5, "target", price=101.00, target=-2) == "applied"  # flip at 404
    t = r.trades[-1]
    assert (t.side, t.quantity, t.reason, t.pnl) == ("long", 1, "strategy", F(4, 3))
    pos = r.position()
    assert pos is not None and (pos.side, pos.quantity, pos.avg_price) == ("short", 2, F(101))

    assert r.signal(6, "target", price=100.00, target=0) == "applied"
    t = r.trades[-1]
    assert (t.side, t.quantity, t.reason, t.pnl) == ("short", 2, "strategy", F(4))
    assert r.position() is None
    assert r.signal(7, "target", target=0) == "in_sync"
    assert len(r.trades) == 3


def test_no_price_and_flat() -> None:
    r = make()
    assert r.signal(0, "buy") == "no_price"
    assert r.signal(0, "close") == "no_price"
    assert r.signal(0, "target", target=1) == "no_price"
    assert r.position() is None and r.trades == []
    assert r.signal(1, "close", price=100.00) == "flat"
    assert r.signal(1, "add", price=100.00) == "flat"
    r.tick(2, 100.00)
    assert r.signal(3, "close") == "flat"
    assert r.signal(4, "buy") == "applied"
    assert r.trades == []


def test_signal_price_is_rounded_to_the_grid() -> None:
    r = make()
    r.signal(0, "buy", price=100.13)  # 400.52 ticks → 401
    pos = r.position()
    assert pos is not None and pos.avg_price == F("100.25")
