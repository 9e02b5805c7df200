"""Kill switch with a broker that can liquidate a contract in one call (Tradovate's
liquidateposition): one call per open contract; a refusal falls back to cancel + flatten; an
unknown outcome is never followed by another exit; a second kill while a liquidation is in
flight sends nothing (two exits racing one fill would open the opposite position)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from actors.broker.actor import BrokerActor
from actors.broker.base import OrderRequest, Priority
from actors.broker.paper import PaperBroker

SYM = "MNQZ6"


class Refused(Exception):
    executed_unknown = False


class Unknown(Exception):
    executed_unknown = True


class LiquidatingPaper(PaperBroker):
    """A paper broker with a scripted ``liquidate``: 'accept' (the fill is left for later, as on
    a real exchange), 'refuse', or 'unknown' (a network failure after sending)."""

    def __init__(self, mode: str) -> None:
        super().__init__(["A1", "A2"])
        self.mode = mode
        self.calls: list[tuple[str, str]] = []

    async def liquidate(self, account: str, symbol: str) -> dict[str, Any]:
        self.calls.append((account, symbol))
        if self.mode == "refuse":
            raise Refused("no")
        if self.mode == "unknown":
            raise Unknown("connection reset")
        return {"orderId": len(self.calls)}


async def setup(mode: str) -> tuple[BrokerActor, LiquidatingPaper]:
    broker = LiquidatingPaper(mode)
    actor = BrokerActor(name=f"kill-{mode}", broker=broker, limits={"x": (1000, 1.0)})
    await actor.on_ticks({SYM: ([1.0], [21000.0])})
    for acc in ("A1", "A2"):
        await actor.place(OrderRequest(f"{acc}-in", acc, SYM, "buy", 2, pair_key="p"))
    await actor.place(
        OrderRequest("A1-stop", "A1", SYM, "sell", 2, "stop", 20990.0, Priority.PROTECT, "p")
    )
    for _ in range(50):
        if len(await actor.positions()) == 2:
            break
        await asyncio.sleep(0.01)
    return actor, broker


async def test_one_liquidation_per_open_contract_and_no_second_exit_while_in_flight() -> None:
    actor, broker = await setup("accept")
    first = await actor.kill(None)
    assert broker.calls == [("A1", SYM), ("A2", SYM)]
    assert [x["outcome"] for x in first["liquidated"]] == ["accepted", "accepted"]
    assert first["flatten"] == [] and first["cancelled"] == []  # the broker cancels the stop
    again = await actor.kill(None)  # positions still open: the liquidations have not filled
    assert broker.calls == [("A1", SYM), ("A2", SYM)]
    assert again["liquidated"] == [] and again["flatten"] == []


async def test_a_contract_reentered_after_its_liquidation_filled_is_liquidated_again() -> None:
    """The in-flight guard ends when the position is seen flat: a kill, the liquidation's fill,
    a re-arm, a new entry and a second kill within the guard period liquidate again."""
    actor, broker = await setup("accept")
    await actor.kill(None)
    await actor.rearm(None)
    for acc in ("A1", "A2"):  # the liquidations fill (the scripted broker leaves that to us)
        await actor.place(OrderRequest(f"{acc}-liq", acc, SYM, "sell", 2, pair_key="kill"))
    for _ in range(50):
        if not await actor.positions():
            break
        await asyncio.sleep(0.01)
    assert await actor.positions() == []
    await actor.place(OrderRequest("A1-again", "A1", SYM, "buy", 1, pair_key="p"))
    for _ in range(50):
        if len(await actor.positions()) == 1:
            break
        await asyncio.sleep(0.01)
    second = await actor.kill(None)
    assert [x["outcome"] for x in second["liquidated"]] == ["accepted"]
    assert broker.calls == [("A1", SYM), ("A2", SYM), ("A1", SYM)]


async def test_a_refused_liquidation_falls_back_to_cancel_and_flatten() -> None:
    actor, _ = await setup("refuse")
    result = await actor.kill("A1")
    assert [x["outcome"] for x in result["liquidated"]] == ["refused"]
    assert result["cancelled"] == ["A1-stop"]  # the broker did nothing: we cancel it
    assert [s.status for s in result["flatten"]] == ["filled"]
    assert await actor.positions("A1") == [] and len(await actor.positions("A2")) == 1


async def test_an_unknown_outcome_is_never_followed_by_another_exit() -> None:
    actor, broker = await setup("unknown")
    result = await actor.kill("A2")
    assert [x["outcome"] for x in result["liquidated"]] == ["unknown"]
    assert result["flatten"] == []
    again = await actor.kill("A2")
    assert again["liquidated"] == [] and again["flatten"] == [] and len(broker.calls) == 1


@pytest.mark.parametrize("mode", ["accept", "refuse", "unknown"])
async def test_entries_stay_blocked_after_a_kill(mode: str) -> None:
    actor, _ = await setup(mode)
    await actor.kill(None)
    state = await actor.place(OrderRequest("late", "A1", SYM, "buy", 1, pair_key="p"))
    assert (state.status, state.reason) == ("rejected", "kill_switch")


class SlowPlace(LiquidatingPaper):
    """The order reaches the broker only after a network delay: while it travels, nobody can
    cancel it, and it fills on arrival."""

    async def place(self, order: OrderRequest) -> Any:
        if order.cl_ord_id == "late-in":
            await asyncio.sleep(0.08)
        return await super().place(order)


@pytest.mark.parametrize("mode", ["refuse", "accept"])
async def test_an_entry_being_executed_during_the_kill_is_flattened_too(mode: str) -> None:
    """The broker is executing an entry when the kill comes: the kill waits for its answer
    before reading positions, so the account ends flat instead of keeping the late fill."""
    broker = SlowPlace(mode)
    actor = BrokerActor(name="kill-inflight", broker=broker, limits={"x": (1000, 1.0)})
    await actor.on_ticks({SYM: ([1.0], [21000.0])})
    entry = asyncio.ensure_future(
        actor.place(OrderRequest("late-in", "A1", SYM, "buy", 3, pair_key="p"))
    )
    await asyncio.sleep(0.02)  # sent, still travelling
    result = await actor.kill("A1")
    assert (await entry).status == "filled"
    # the late fill is closed by a market flatten: it was not a position yet when the kill
    # chose what to liquidate, and waiting for it is what lets the kill see it at all
    assert await actor.positions("A1") == []
    assert [(s.status, s.filled_qty) for s in result["flatten"]] == [("filled", 3)]
    assert result["liquidated"] == []
