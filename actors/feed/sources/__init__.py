"""Price sources for the feed actor: plain iterators of ``Tick`` (no Ray, no network here).

``SimulatedSource`` is a seeded random walk for demos; ``ReplaySource`` replays tick or OHLC-bar
CSV files, bars expanded to a tick-resolution path.
"""

from actors.feed.sources.base import (
    Bar,
    Tick,
    TickSource,
    price_to_ticks,
    snap_price,
    ticks_to_price,
)
from actors.feed.sources.replay import (
    ReplaySource,
    expand_bar,
    expand_bars,
    load_ticks,
    parse_bar_csv,
    parse_tick_csv,
)
from actors.feed.sources.simulated import SimulatedSource

__all__ = [
    "Bar",
    "ReplaySource",
    "SimulatedSource",
    "Tick",
    "TickSource",
    "expand_bar",
    "expand_bars",
    "load_ticks",
    "parse_bar_csv",
    "parse_tick_csv",
    "price_to_ticks",
    "snap_price",
    "ticks_to_price",
]
