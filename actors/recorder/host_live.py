"""The recorder host's live-pair methods: broker events in, trader changes, halts, a user's
resolution of a HALTED pair. The desk (:mod:`.desk`) holds the logic; these run it on the
host's loop and commit what it decided before anything is sent (``RecorderHost._commit``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from actors.recorder.turns import EVENT_SLICE, let_others_run

if TYPE_CHECKING:
    from actors.recorder.host import RecorderHost


class LiveMethods:
    """Mixed into :class:`~actors.recorder.host.RecorderHost`."""

    async def on_broker_events(self: RecorderHost, events: list[dict[str, Any]]) -> int:
        """Order states, fills and positions from a broker actor this host subscribed to,
        applied :data:`~actors.recorder.turns.EVENT_SLICE` at a time with the calls that
        arrived meanwhile run in between (the rows wait in ``_unwritten``)."""
        self._ensure_flusher()
        async with self._event_turn:
            for i in range(0, len(events), EVENT_SLICE):
                if i:
                    await let_others_run()
                write = self.desk.on_events(events[i : i + EVENT_SLICE], time.time())
                if write is not None:
                    self._unwritten.add(write)
            self._commit_unwritten()
        return len(events)

    async def load_traders(self: RecorderHost, recorder_id: int) -> int:
        """Rebuild a recorder's live pairs after its traders changed; returns how many run."""
        self._ensure_flusher()
        async with self._alone():
            h = self.recorders.get(recorder_id)
            if h is None:
                return 0
            with self.store.read() as s:
                self.desk.load(s, recorder_id, h.settings)
            return len(self.desk.by_recorder.get(recorder_id, []))

    async def rewire(self: RecorderHost, broker: str) -> bool:
        """The supervisor saw ``broker`` restart: subscribe again, look up every unsettled
        order and read positions now instead of at the next periodic sweep."""
        self._ensure_flusher()
        return self.desk.rewire(broker, time.time())

    async def halt(self: RecorderHost, reason: str, broker: str | None = None) -> int:
        """HALT the live pairs (all, or those trading through ``broker``): the supervisor
        gave up on a process they need. Returns how many pairs changed state."""
        self._ensure_flusher()
        before = sum(lh.pair.risk == "HALTED" for lh in self.desk.by_key.values())
        write = self.desk.halt_all(reason, time.time(), broker)
        if write is not None:
            self._commit(write)
        return sum(lh.pair.risk == "HALTED" for lh in self.desk.by_key.values()) - before

    async def live_positions(
        self: RecorderHost, recorder_id: int | None = None
    ) -> list[dict[str, Any]]:
        return self.desk.positions(recorder_id)

    async def resolve(
        self: RecorderHost, trader_id: int, symbol: str, action: str
    ) -> dict[str, Any]:
        """A user's decision on a HALTED live pair (adopt | external | resume)."""
        write = self.desk.resolve(trader_id, symbol, action, time.time())
        if write is not None:
            self._commit(write)
        return {"trader_id": trader_id, "symbol": symbol, "action": action}

    async def reconcile_view(self: RecorderHost) -> list[dict[str, Any]]:
        """Every (broker, account, contract) this host's live pairs trade, with the verdict."""
        return self.desk.reconcile_view()

    def _beat(self: RecorderHost) -> None:
        """Timer beat of the live pairs: timeouts, retries, throttled stop moves."""
        write = self.desk.on_timer(time.time())
        if write is not None:
            self._commit(write)
        else:
            self.desk.send()
