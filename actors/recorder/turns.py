"""Taking turns on a recorder host's event loop.

The host applies signal and broker-event batches a slice at a time and lets the calls that
arrived meanwhile run between slices. Before, a tick that crossed 20 pairs' take-profits could
wait behind a whole batch of their entries' fills (60 events, 7-9 ms under Ray) and that
batch's commit; that wait set the tick -> exit p99 of ``bench.live_latency``. What keeps a
slice's rows and orders consistent with the calls in between is in
:meth:`~actors.recorder.host.RecorderHost._commit`.
"""

from __future__ import annotations

import asyncio

#: Broker events and signals applied between two chances for other calls to run. A slice of
#: 20 events (one order's state, fill and position for ~7 pairs) or 5 signals is ~2 ms of CPU.
EVENT_SLICE = 20
SIGNAL_SLICE = 5

#: Loop turns a call that reached the host's channel needs before it runs: the socket read
#: wakes the connection's reader, which parses it and creates the call's task, which runs.
_TURNS = 4


async def let_others_run() -> None:
    """Return only after the calls that had arrived run (or at least started and reached
    their first await): a task resumed by ``sleep(0)`` runs before what the loop's next I/O
    poll schedules, so one turn is not enough."""
    for _ in range(_TURNS):
        await asyncio.sleep(0)
