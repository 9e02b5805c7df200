"""The parser's entry point: webhook body → validated :class:`ParsedSignal`.

Composes the stages in order — decode the body (:mod:`.decode`), reject unreplaced placeholders
and parse each field (:mod:`.fields`), then check that an intent can be derived (:mod:`.intent`)
— so a body accepted here is always actionable.
"""

from __future__ import annotations

from actors.recorder.signals.decode import _decode
from actors.recorder.signals.fields import (
    _COMMENT_KEYS,
    _ID_KEYS,
    _POSITION_SIZE_KEYS,
    _PREV_MP_KEYS,
    _PRICE_KEYS,
    _RECORDER_KEYS,
    _SECRET_KEYS,
    _SL_KEYS,
    _TP_KEYS,
    _action_and_position,
    _check_placeholders,
    _finite,
    _override,
    _position,
    _positive,
    _text,
    _ticker,
    _time,
)
from actors.recorder.signals.intent import intent_of
from actors.recorder.signals.model import ParsedSignal


def parse_body(raw: bytes, max_bytes: int = 64 * 1024) -> ParsedSignal:
    """Parse a webhook body; raise :class:`SignalError` for anything unusable.

    Also validates that :func:`intent_of` can derive an intent, so a body accepted here is
    always actionable (``missing_action`` / ``inconsistent_position`` surface at ingest).
    """
    values = _decode(raw, max_bytes)
    _check_placeholders(values)

    action, mp, mp_size, quantity = _action_and_position(values)
    prev_mp = _position(values, _PREV_MP_KEYS)
    position_size = _finite(values, _POSITION_SIZE_KEYS)
    ticker = _ticker(values)

    sig = ParsedSignal(
        action=action,
        ticker=ticker,
        price=_positive(values, _PRICE_KEYS),
        quantity=quantity,
        market_position=mp,
        prev_market_position=prev_mp,
        position_size=position_size,
        market_position_size=mp_size,
        take_profit=_override(values, _TP_KEYS),
        stop_loss=_override(values, _SL_KEYS),
        time=_time(values),
        dedupe_id=_text(values, _ID_KEYS),
        recorder=_text(values, _RECORDER_KEYS),
        comment=_text(values, _COMMENT_KEYS),
        fields={k: ("***" if k in _SECRET_KEYS else v.text) for k, v in values.items()},
    )
    intent_of(sig)
    return sig
