"""Webhook body → :class:`ParsedSignal` → :class:`Intent` (SPEC §3 "Signals in").

Pure: no I/O, no Ray, no database. The webhook handler stores the raw body first and then calls
:func:`parse_body`; a :class:`SignalError` becomes a 4xx whose ``reason`` is machine-readable and
the raw body is kept as a rejected signal.

Why the parser is this lenient about shape yet strict about values:

* TradingView sends the alert text verbatim, with ``Content-Type: application/json`` only when the
  text happens to be valid JSON, else ``text/plain`` — so the header says nothing reliable and the
  body is sniffed here (JSON object first, then CrossTrade-style ``key=value;`` text).
* Placeholders are replaced *textually*, so numbers arrive both as JSON numbers and as strings,
  and a placeholder TradingView does not know (``{{strategy.order.price}}`` in an indicator alert)
  is left in place. Trading on such a value would be worse than rejecting it, hence
  ``unreplaced_placeholder``.
* Users copy templates from TradersPost, PickMyTrade and CrossTrade, so their key aliases are
  accepted (``symbol``, ``data``, ``sentiment``, ``qty``, ``instrument``, ``command`` …).

Key-lookup conventions (case, duplicates, alias priority, blanks, nesting) are documented in
:mod:`actors.recorder.signals.fields`, which implements them.

Modules, in pipeline order:

* :mod:`.errors` — :class:`SignalError` and :data:`REASONS`;
* :mod:`.decode` — raw bytes → key/value mapping (JSON object or ``key=value`` text; size,
  encoding and depth checks);
* :mod:`.fields` — key aliases, placeholder checks, number / quantity / time / action parsing;
* :mod:`.model` — :class:`ParsedSignal`, :class:`Intent` and their literal types;
* :mod:`.intent` — :func:`intent_of` and the position-consistency checks;
* :mod:`.parse` — :func:`parse_body`, which runs the stages in order.

Import from this package, not from the modules: they are an internal layout.
"""

from __future__ import annotations

# ``X as X`` marks a deliberate re-export of a public name that is not in ``__all__`` (the old
# single module exposed it the same way; tests import MAX_QUANTITY).
from actors.recorder.signals.decode import MAX_DEPTH as MAX_DEPTH
from actors.recorder.signals.errors import REASONS, SignalError
from actors.recorder.signals.fields import MAX_QUANTITY as MAX_QUANTITY
from actors.recorder.signals.intent import intent_of
from actors.recorder.signals.model import Action, Intent, MarketPosition, ParsedSignal
from actors.recorder.signals.model import IntentKind as IntentKind
from actors.recorder.signals.parse import parse_body

__all__ = [
    "REASONS",
    "Action",
    "Intent",
    "MarketPosition",
    "ParsedSignal",
    "SignalError",
    "intent_of",
    "parse_body",
]
