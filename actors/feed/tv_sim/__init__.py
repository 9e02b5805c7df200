"""Protocol-faithful TradingView SIMULATOR (not TradingView): quote websocket + scanner endpoint.

Follows ``/work/shared/reference/tradingview.md`` §3 (framing, hello, heartbeats, quote sessions,
``qsd`` deltas, ``no_such_symbol``, ``update_mode``; scanner §3.6), with switchable faults. Run it
with ``justtrades sim-tradingview`` or use :class:`TvSim` in-process (tests).
"""

from actors.feed.tv_sim.server import MALFORMED_FRAME, TvSim
from actors.feed.tv_sim.state import DELAYED_MODE, Faults, SimConfig, SimMarket, SimStats

__all__ = [
    "DELAYED_MODE",
    "MALFORMED_FRAME",
    "Faults",
    "SimConfig",
    "SimMarket",
    "SimStats",
    "TvSim",
]
