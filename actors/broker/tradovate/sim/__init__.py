"""A protocol-faithful Tradovate API SIMULATOR for tests and local runs — not Tradovate.

REST under ``/v1``, the user and market-data websockets, a matching engine fed by pushed
prices (the project's paper matcher), and switchable faults (p-ticket penalties, 429, token
expiry, rejections, delayed fills, socket drops/shutdown, heartbeat timeouts). Behaviour follows
``reference/tradovate.md`` (cited as §n) and the official OpenAPI spec; what the reference
marks UNCONFIRMED is chosen and documented where it is implemented.

Entry points: :class:`SimServer` (thread, for tests), :func:`create_app` (ASGI app),
:class:`TradovateSim` (the state, transport-free), ``python -m actors.broker.tradovate.sim``.
"""

from actors.broker.tradovate.sim.app import create_app
from actors.broker.tradovate.sim.config import SimConfig, SimUser
from actors.broker.tradovate.sim.core import TradovateSim
from actors.broker.tradovate.sim.server import SimServer

__all__ = ["SimConfig", "SimServer", "SimUser", "TradovateSim", "create_app"]
