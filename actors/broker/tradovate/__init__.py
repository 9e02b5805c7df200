"""Tradovate broker: client, adapter and (in ``sim/``) an offline simulator of the service.

Client modules (protocol facts and their sources: ``reference/tradovate.md``):

* :mod:`.errors` — typed errors and the ``p-ticket`` parser;
* :mod:`.auth` — endpoints, credentials with a stable device id, token login/renewal/OAuth;
* :mod:`.rest` — REST endpoints with penalty, 429 and 401 handling;
* :mod:`.frames` — websocket framing and message parsing (pure);
* :mod:`.ws` — the reconnecting user websocket;
* :mod:`.sync` — the synced order/fill/position state and its broker events (pure);
* :mod:`.adapter` — :class:`TradovateBroker`, the :class:`~actors.broker.base.Broker` adapter.

This package module imports nothing eagerly, so importing the simulator does not pull in the
client; ``TradovateBroker`` and ``TradovateConfig`` are available as lazy attributes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TradovateBroker", "TradovateConfig"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from actors.broker.tradovate import adapter

        return getattr(adapter, name)
    raise AttributeError(name)
