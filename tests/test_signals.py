"""Webhook body parsing (SPEC §3): payload shapes, reason codes, intent rules, properties."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import pickle
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from actors.recorder.signals import (
    MAX_QUANTITY,
    REASONS,
    Intent,
    ParsedSignal,
    SignalError,
    intent_of,
    parse_body,
)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _error(body: bytes, **kwargs: Any) -> SignalError:
    with pytest.raises(SignalError) as caught:
        parse_body(body, **kwargs)
    return caught.value


def _sig(**overrides: Any) -> ParsedSignal:
    base: dict[str, Any] = {
        "action": None,
        "ticker": "MNQ1!",
        "price": None,
        "quantity": None,
        "market_position": None,
        "prev_market_position": None,
        "position_size": None,
        "market_position_size": None,
        "take_profit": None,
        "stop_loss": None,
        "time": None,
        "dedupe_id": None,
        "recorder": None,
        "comment": None,
        "fields": {},
    }
    base.update(overrides)
    return ParsedSignal(**base)


# --------------------------------------------------------------------------------------------
# Payload shapes from SPEC §3


def test_indicator_alert() -> None:
    body = _json(
        {
            "recorder": "MNQ scalper",
            "action": "buy",
            "ticker": "MNQ1!",
            "price": "21000.25",
            "quantity": 2,
        }
    )
    sig = parse_body(body)
    assert sig == ParsedSignal(
        action="buy",
        ticker="MNQ1!",
        price=21000.25,
        quantity=2,
        market_position=None,
        prev_market_position=None,
        position_size=None,
        market_position_size=None,
        take_profit=None,
        stop_loss=None,
        time=None,
        dedupe_id=None,
        recorder="MNQ scalper",
        comment=None,
        fields={
            "recorder": "MNQ scalper",
            "action": "buy",
            "ticker": "MNQ1!",
            "price": "21000.25",
            "quantity": "2",
        },
    )
    assert intent_of(sig) == Intent("buy", quantity=2)


@pytest.mark.parametrize(
    ("word", "expected"),
    [("sell", "sell"), ("close", "close"), ("exit", "close"), ("flat", "close"), ("add", "add")],
)
def test_indicator_alert_actions(word: str, expected: str) -> None:
    sig = parse_body(_json({"action": word, "ticker": "ES1!", "price": 5000.5, "quantity": "1"}))
    assert sig.action == expected
    assert intent_of(sig).kind == expected
    assert intent_of(sig).quantity == (None if expected == "close" else 1)


def test_pine_strategy_alert_entry() -> None:
    # Message template: {"action": "{{strategy.order.action}}", "contracts":
    # "{{strategy.order.contracts}}", "position_size": "{{strategy.position_size}}", ...}
    body = (
        b'{"recorder": "trend", "ticker": "MNQ1!", "action": "sell", "contracts": "2",'
        b' "price": "21010.5", "position_size": "-2", "market_position": "short",'
        b' "prev_market_position": "flat", "timenow": "2024-03-01T14:30:05Z",'
        b' "comment": "Short Entry"}'
    )
    sig = parse_body(body)
    assert sig.action == "sell"
    assert sig.quantity == 2
    assert sig.price == 21010.5
    assert sig.position_size == -2.0
    assert sig.market_position == "short"
    assert sig.prev_market_position == "flat"
    assert sig.time == datetime(2024, 3, 1, 14, 30, 5, tzinfo=UTC)
    assert sig.comment == "Short Entry"
    assert intent_of(sig) == Intent("target", target=-2)


def test_pine_strategy_reversal_and_exit() -> None:
    reversal = parse_body(
        _json(
            {
                "ticker": "NQ1!",
                "action": "buy",
                "contracts": 3,
                "position_size": 1,
                "market_position": "long",
                "prev_market_position": "short",
            }
        )
    )
    assert intent_of(reversal) == Intent("target", target=1)
    exit_ = parse_body(
        _json(
            {
                "ticker": "NQ1!",
                "action": "sell",
                "contracts": 1,
                "position_size": 0,
                "market_position": "flat",
                "prev_market_position": "long",
            }
        )
    )
    assert intent_of(exit_) == Intent("target", target=0)


def test_pine_strategy_dotted_keys() -> None:
    sig = parse_body(
        b'{"ticker": "ES1!", "strategy.order.action": "buy", "strategy.order.contracts": 1,'
        b' "strategy.position_size": 3, "strategy.market_position_size": 3}'
    )
    assert sig.action == "buy"
    assert sig.quantity == 1
    assert sig.market_position_size == 3
    assert intent_of(sig) == Intent("target", target=3)


def test_traderspost_payload() -> None:
    body = _json(
        {
            "ticker": "MNQ1!",
            "action": "buy",
            "sentiment": "bullish",
            "quantity": 1,
            "price": 21000.25,
            "takeProfit": {"limitPrice": 21050.25},
            "stopLoss": {"type": "stop", "amount": 12.5},
            "time": "2019-08-27T09:56:00Z",
        }
    )
    sig = parse_body(body)
    assert sig.action == "buy"
    assert sig.market_position == "long"
    assert sig.quantity == 1
    assert sig.price == 21000.25
    assert sig.take_profit == 21050.25
    assert sig.stop_loss == 12.5
    assert sig.time == datetime(2019, 8, 27, 9, 56, tzinfo=UTC)
    assert sig.fields["takeprofit"] == '{"limitPrice":21050.25}'
    assert sig.fields["stoploss"] == '{"type":"stop","amount":12.5}'
    assert intent_of(sig) == Intent("buy", quantity=1)


def test_traderspost_exit_and_sentiment_flat() -> None:
    exit_ = parse_body(b'{"ticker": "MNQ1!", "action": "exit"}')
    assert intent_of(exit_) == Intent("close")
    # "sell + sentiment flat exits a long fully without opening a short"
    flat = parse_body(b'{"ticker": "MNQ1!", "action": "sell", "sentiment": "flat", "quantity": 1}')
    assert flat.market_position == "flat"
    assert intent_of(flat) == Intent("close")
    percent = parse_body(
        b'{"ticker":"ES1!","action":"buy","takeProfit":{"percent":"1.5"},"stopLoss":{"percent":1}}'
    )
    assert (percent.take_profit, percent.stop_loss) == (1.5, 1.0)


def test_traderspost_sentiment_only_strategy_template() -> None:
    # sentiment={{strategy.market_position}} with no action
    sig = parse_body(b'{"ticker": "MNQ1!", "sentiment": "short", "quantity": "2"}')
    assert sig.action is None
    assert sig.market_position == "short"
    assert intent_of(sig) == Intent("sell", quantity=2)


def test_pickmytrade_payload() -> None:
    body = (
        b'{"symbol": "MNQ1!", "date": "2024-05-06T13:45:00Z", "data": "buy", "quantity": "2",'
        b' "risk_percentage": 0, "price": "18000.75", "tp": 0, "percentage_tp": 0, "sl": 0,'
        b' "token": "SECRET-TOKEN", "account_id": "", "reverse_order_close": true}'
    )
    sig = parse_body(body)
    assert sig.action == "buy"
    assert sig.ticker == "MNQ1!"
    assert sig.quantity == 2
    assert sig.price == 18000.75
    assert sig.time == datetime(2024, 5, 6, 13, 45, tzinfo=UTC)
    assert sig.take_profit is None and sig.stop_loss is None  # 0 = no override
    assert sig.fields["token"] == "***"
    assert sig.fields["reverse_order_close"] == "true"
    assert "SECRET-TOKEN" not in repr(sig)
    assert intent_of(sig) == Intent("buy", quantity=2)
    close = parse_body(b'{"symbol": "MNQ1!", "data": "close", "quantity": "2"}')
    assert intent_of(close) == Intent("close")


def test_crosstrade_text() -> None:
    body = b"key=abc;command=PLACE;account=sim;instrument=MNQ1!;action=BUY;qty=1;order_type=MARKET;tif=DAY;"
    sig = parse_body(body)
    assert sig.action == "buy"
    assert sig.ticker == "MNQ1!"
    assert sig.quantity == 1
    assert sig.fields == {
        "key": "***",
        "command": "PLACE",
        "account": "sim",
        "instrument": "MNQ1!",
        "action": "BUY",
        "qty": "1",
        "order_type": "MARKET",
        "tif": "DAY",
    }
    assert intent_of(sig) == Intent("buy", quantity=1)


@pytest.mark.parametrize("command", ["CLOSEPOSITION", "FLATTEN", "flatteneverything"])
def test_crosstrade_close_commands(command: str) -> None:
    sig = parse_body(f"key=abc;command={command};account=sim;instrument=ES 06-26;".encode())
    assert sig.action == "close"
    assert sig.ticker == "ES 06-26"
    assert intent_of(sig) == Intent("close")


def test_crosstrade_flatplace_is_a_target() -> None:
    sig = parse_body(b"command=FLATPLACE;instrument=MNQ1!;action=SELL;qty=2;")
    assert sig.market_position == "short"
    assert intent_of(sig) == Intent("target", target=-2)


def test_crosstrade_newlines_and_strategy_sync() -> None:
    body = (
        b"key=abc\ncommand=PLACE\ninstrument=MNQ1!\naction=SELL\nqty=1\n"
        b"market_position=short\nprev_market_position=long\n"
    )
    sig = parse_body(body)
    assert sig.market_position == "short"
    assert sig.prev_market_position == "long"
    assert intent_of(sig) == Intent("sell", quantity=1)


def test_form_encoded_body() -> None:
    sig = parse_body(b"ticker=MNQ1%21&action=buy&qty=3&comment=hello+world")
    assert (sig.ticker, sig.action, sig.quantity, sig.comment) == ("MNQ1!", "buy", 3, "hello world")


def test_text_plain_json_with_bom_and_whitespace() -> None:
    body = '\ufeff  \n{"Action": "SELL", "TICKER": " ES1! ", "Qty": "1"}\n  '.encode()
    sig = parse_body(body)
    assert (sig.action, sig.ticker, sig.quantity) == ("sell", "ES1!", 1)
    assert set(sig.fields) == {"action", "ticker", "qty"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", 1), (2, 2), ("2.0", 2), (" 3 ", 3), ("1e1", 10)],
)
def test_numbers_as_strings(raw: Any, expected: int) -> None:
    sig = parse_body(_json({"action": "buy", "ticker": "ES", "quantity": raw, "price": "5000"}))
    assert sig.quantity == expected
    assert sig.price == 5000.0


def test_numbers_keep_source_text() -> None:
    sig = parse_body(b'{"action":"buy","ticker":"ES","price":21000.250,"id":12345678901234567890}')
    assert sig.price == 21000.25
    assert sig.fields["price"] == "21000.250"
    assert sig.dedupe_id == "12345678901234567890"


@pytest.mark.parametrize("key", ["id", "sourceId", "alertId"])
def test_dedupe_id_aliases(key: str) -> None:
    sig = parse_body(_json({"action": "buy", "ticker": "ES", key: "tv-ES-2024"}))
    assert sig.dedupe_id == "tv-ES-2024"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2019-08-27T09:56:00Z", datetime(2019, 8, 27, 9, 56, tzinfo=UTC)),
        ("2019-08-27T10:56:00+01:00", datetime(2019, 8, 27, 9, 56, tzinfo=UTC)),
        ("2019-08-27T09:56:00", datetime(2019, 8, 27, 9, 56, tzinfo=UTC)),
        ("1566899760", datetime(2019, 8, 27, 9, 56, tzinfo=UTC)),
        (1566899760000, datetime(2019, 8, 27, 9, 56, tzinfo=UTC)),
    ],
)
def test_time_formats(raw: Any, expected: datetime) -> None:
    sig = parse_body(_json({"action": "buy", "ticker": "ES", "timenow": raw}))
    assert sig.time == expected
    assert sig.time is not None and sig.time.tzinfo is not None


def test_timenow_wins_over_time() -> None:
    sig = parse_body(
        b'{"action":"buy","ticker":"ES","time":"2019-08-27T09:55:00Z","timenow":"2019-08-27T09:56:01Z"}'
    )
    assert sig.time == datetime(2019, 8, 27, 9, 56, 1, tzinfo=UTC)


def test_alias_priority_and_blank_values() -> None:
    sig = parse_body(
        b'{"action":"","data":"sell","ticker":"","symbol":"NQ1!","quantity":null,"qty":"4",'
        b'"price":""}'
    )
    assert (sig.action, sig.ticker, sig.quantity, sig.price) == ("sell", "NQ1!", 4, None)


def test_unknown_keys_with_placeholders_are_ignored() -> None:
    sig = parse_body(b'{"action":"buy","ticker":"ES","note":"{{plot_25}}","extras":{"a":"{{x}}"}}')
    assert sig.fields["note"] == "{{plot_25}}"


# --------------------------------------------------------------------------------------------
# Every reason code


REASON_CASES: list[tuple[str, bytes, str | None]] = [
    ("empty_body", b"", None),
    ("empty_body", b" \r\n\t ", None),
    ("empty_body", b"\xef\xbb\xbf", None),
    ("unparseable_body", b"\xff\xfe{}", None),
    ("unparseable_body", b'["buy", "ES"]', None),
    ("unparseable_body", b"42", None),
    ("unparseable_body", b'"buy ES"', None),
    ("unparseable_body", b'{"action": "buy", "ticker": "ES"', None),
    ("unparseable_body", b"Buy MNQ at price=21000", None),
    ("unparseable_body", b"buy", None),
    ("unparseable_body", b"action=buy;this is not a pair;", None),
    ("unparseable_body", b"[" * 5000, None),
    ("unparseable_body", b'{"a":' * 40 + b"1" + b"}" * 40, None),
    ("missing_action", b'{"ticker": "ES1!", "price": 5000}', "action"),
    ("missing_action", b"command=PLACE;instrument=ES1!;qty=1;", "action"),
    ("missing_action", b'{"ticker":"ES","prev_market_position":"long"}', "action"),
    ("unknown_action", b'{"action": "cancel", "ticker": "ES1!"}', "action"),
    ("unknown_action", b'{"data": "reverse", "ticker": "ES1!"}', "data"),
    ("unknown_action", b'{"action": 1, "ticker": "ES1!"}', "action"),
    ("unknown_action", b"command=REVERSEPOSITION;instrument=ES1!;", "command"),
    ("unknown_action", b'{"ticker": "ES", "sentiment": "sideways"}', "sentiment"),
    ("unknown_action", b'{"ticker":"ES","action":"buy","market_position":"up"}', "market_position"),
    ("missing_ticker", b'{"action": "buy"}', "ticker"),
    ("missing_ticker", b'{"action": "buy", "ticker": "  "}', "ticker"),
    ("missing_ticker", b'{"action": "buy", "symbol": ["ES"]}', "symbol"),
    ("unreplaced_placeholder", b'{"action":"buy","ticker":"ES","price":"{{close}}"}', "price"),
    (
        "unreplaced_placeholder",
        b'{"action":"{{strategy.order.action}}","ticker":"ES"}',
        "action",
    ),
    ("unreplaced_placeholder", b'{"action":"buy","ticker":"ES","qty":{{plot_0}}}', "qty"),
    ("unreplaced_placeholder", b"action=buy;instrument={{ticker}};", "instrument"),
    (
        "unreplaced_placeholder",
        b'{"action":"buy","ticker":"ES","takeProfit":{"limitPrice":"{{plot_1}}"}}',
        "takeprofit",
    ),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":"1,234.5"}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":0}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":-5}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":NaN}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":"Infinity"}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":1e999}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":"1_000"}', "price"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","price":true}', "price"),
    (
        "invalid_number",
        b'{"ticker":"ES","market_position":"flat","position_size":"x"}',
        "position_size",
    ),
    ("invalid_number", b'{"action":"buy","ticker":"ES","takeProfit":{"type":"x"}}', "takeprofit"),
    ("invalid_number", b'{"action":"buy","ticker":"ES","sl":-3}', "sl"),
    ("invalid_quantity", b'{"action":"buy","ticker":"ES","quantity":"2.5"}', "quantity"),
    ("invalid_quantity", b'{"action":"buy","ticker":"ES","quantity":0}', "quantity"),
    ("invalid_quantity", b'{"action":"buy","ticker":"ES","qty":-1}', "qty"),
    ("invalid_quantity", b'{"action":"buy","ticker":"ES","contracts":"two"}', "contracts"),
    ("invalid_quantity", b'{"action":"buy","ticker":"ES","quantity":1e300}', "quantity"),
    ("invalid_time", b'{"action":"buy","ticker":"ES","timenow":"yesterday"}', "timenow"),
    ("invalid_time", b'{"action":"buy","ticker":"ES","time":"2019-13-45T99:00:00Z"}', "time"),
    ("invalid_time", b'{"action":"buy","ticker":"ES","time":-5}', "time"),
    ("invalid_time", b'{"action":"buy","ticker":"ES","time":1e30}', "time"),
    ("invalid_time", b'{"data":"buy","symbol":"ES","date":"last tuesday"}', "date"),
    (
        "inconsistent_position",
        b'{"action":"buy","ticker":"ES","market_position":"short","position_size":2}',
        "position_size",
    ),
    (
        "inconsistent_position",
        b'{"action":"sell","ticker":"ES","market_position":"flat","position_size":-1}',
        "position_size",
    ),
    (
        "inconsistent_position",
        b'{"ticker":"ES","market_position":"long","market_position_size":0}',
        "market_position_size",
    ),
    (
        "inconsistent_position",
        b'{"ticker":"ES","market_position":"flat","market_position_size":3}',
        "market_position_size",
    ),
    (
        "inconsistent_position",
        b'{"ticker":"ES","market_position":"long","position_size":2,"market_position_size":3}',
        "position_size",
    ),
]


@pytest.mark.parametrize(("reason", "body", "field"), REASON_CASES)
def test_reason_codes(reason: str, body: bytes, field: str | None) -> None:
    error = _error(body)
    assert (error.reason, error.field) == (reason, field)
    assert error.message


def test_body_too_large() -> None:
    body = _json({"action": "buy", "ticker": "ES", "comment": "x" * 100})
    assert parse_body(body, max_bytes=len(body)).action == "buy"
    error = _error(body, max_bytes=len(body) - 1)
    assert error.reason == "body_too_large"
    assert _error(b"[" * 100_000).reason == "body_too_large"


def test_every_reason_is_covered() -> None:
    covered = {reason for reason, _, _ in REASON_CASES} | {"body_too_large"}
    assert covered == REASONS


def test_signal_error_is_a_value_error_and_pickles() -> None:
    error = _error(b'{"action": "buy"}')
    assert isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.reason, copy.field, copy.message) == (error.reason, error.field, error.message)
    assert str(copy) == str(error)


def test_secret_key_is_redacted_even_when_unreplaced() -> None:
    # `key` is not a field we read, so its placeholder is ignored and never quoted.
    sig = parse_body(b"key={{secret}};command=PLACE;instrument=ES;action=BUY;")
    assert sig.fields["key"] == "***"


# --------------------------------------------------------------------------------------------
# intent_of rules (direct, on hand-built signals)


def test_intent_rule_1_position_size_with_market_position() -> None:
    assert intent_of(_sig(action="buy", market_position="long", position_size=2.0)) == Intent(
        "target", target=2
    )


def test_intent_rule_1_position_size_with_strategy_context() -> None:
    sig = _sig(action="sell", position_size=-1.0, prev_market_position="long")
    assert intent_of(sig) == Intent("target", target=-1)
    dotted = _sig(position_size=0.0, fields={"strategy.position_size": "0"})
    assert intent_of(dotted) == Intent("target", target=0)


def test_intent_bare_position_size_is_not_a_target() -> None:
    assert intent_of(_sig(action="buy", quantity=1, position_size=5.0)) == Intent("buy", quantity=1)
    with pytest.raises(SignalError) as caught:
        intent_of(_sig(position_size=5.0))
    assert caught.value.reason == "missing_action"


def test_intent_rule_2_flat_closes() -> None:
    assert intent_of(_sig(action="buy", quantity=1, market_position="flat")) == Intent("close")


def test_intent_rule_3_market_position_size() -> None:
    assert intent_of(_sig(market_position="short", market_position_size=3.0)) == Intent(
        "target", target=-3
    )
    assert intent_of(_sig(market_position="long", market_position_size=3.0)) == Intent(
        "target", target=3
    )


def test_intent_rule_4_action() -> None:
    assert intent_of(_sig(action="add", quantity=2, market_position="long")) == Intent(
        "add", quantity=2
    )
    assert intent_of(_sig(action="close", quantity=2)) == Intent("close")
    assert intent_of(_sig(action="sell")) == Intent("sell")


def test_intent_rule_5_market_position_alone() -> None:
    assert intent_of(_sig(market_position="long", quantity=2)) == Intent("buy", quantity=2)
    assert intent_of(_sig(market_position="short")) == Intent("sell")


def test_intent_inconsistent_position() -> None:
    with pytest.raises(SignalError) as caught:
        intent_of(_sig(action="buy", market_position="long", position_size=-1.0))
    assert caught.value.reason == "inconsistent_position"


def test_parsed_signal_is_hashable() -> None:
    sig = parse_body(b'{"action":"buy","ticker":"ES"}')
    assert hash(sig) == hash(dataclasses.replace(sig, fields={}))


# --------------------------------------------------------------------------------------------
# Properties

VALID_BODIES: list[bytes] = [
    b'{"recorder":"r","action":"buy","ticker":"MNQ1!","price":"21000.25","quantity":2}',
    b'{"ticker":"NQ1!","action":"sell","contracts":"2","position_size":"-2",'
    b'"market_position":"short","prev_market_position":"flat","timenow":"2024-03-01T14:30:05Z"}',
    b'{"ticker":"MNQ1!","action":"buy","sentiment":"bullish","quantity":1,"price":21000.25,'
    b'"takeProfit":{"limitPrice":21050},"stopLoss":{"type":"stop","amount":10},'
    b'"time":"2019-08-27T09:56:00Z","id":"abc"}',
    b'{"symbol":"MNQ1!","date":"2024-05-06T13:45:00Z","data":"buy","quantity":"2","tp":0}',
    b"key=abc;command=PLACE;account=sim;instrument=MNQ1!;action=BUY;qty=1;order_type=MARKET;tif=DAY;",
    b"ticker=MNQ1%21&action=buy&qty=3",
]

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
    | st.sampled_from(["buy", "SELL", "flat", "long", "{{close}}", "2019-08-27T09:56:00Z", "-1"])
)
_json_values = st.recursive(
    _json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_keys = st.sampled_from(
    [
        "action",
        "data",
        "command",
        "sentiment",
        "ticker",
        "symbol",
        "instrument",
        "price",
        "quantity",
        "qty",
        "contracts",
        "position_size",
        "market_position",
        "prev_market_position",
        "market_position_size",
        "takeProfit",
        "stopLoss",
        "tp",
        "time",
        "timenow",
        "date",
        "id",
        "comment",
        "strategy.position_size",
    ]
) | st.text(max_size=8)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(VALID_BODIES)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        pos = draw(st.integers(0, len(body)))
        byte = draw(st.integers(0, 255) | st.sampled_from(list(b'{}[]":;=&,.-0123456789\n')))
        if op == "insert":
            body.insert(pos, byte)
        elif body and op == "replace":
            body[min(pos, len(body) - 1)] = byte
        elif body:
            del body[min(pos, len(body) - 1)]
    return bytes(body)


def _parse_or_signal_error(body: bytes) -> None:
    try:
        sig = parse_body(body)
    except SignalError as error:
        assert error.reason in REASONS
        return
    intent_of(sig)  # must not raise: parse_body already validated it
    assert sig.ticker == sig.ticker.strip() and sig.ticker
    assert sig.quantity is None or 1 <= sig.quantity <= MAX_QUANTITY


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(max_size=512)
    | _mutated()
    | st.text(max_size=200).map(str.encode)
    | st.dictionaries(_keys, _json_values, max_size=8).map(lambda d: json.dumps(d).encode())
)
def test_property_only_signal_errors(body: bytes) -> None:
    _parse_or_signal_error(body)


_ACTION_CASES = {
    "buy": "buy",
    "long": "buy",
    "bullish": "buy",
    "sell": "sell",
    "short": "sell",
    "bear": "sell",
    "close": "close",
    "exit": "close",
    "flat": "close",
    "flatten": "close",
    "exit_all": "close",
    "add": "add",
}
_tickers = st.builds(
    str.__add__,
    st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!._- ", max_size=11),
)
_prices = st.floats(min_value=1e-4, max_value=1e7, allow_nan=False, allow_infinity=False)
_random_case = st.sampled_from([str.lower, str.upper, str.title])


@given(
    word=st.sampled_from(sorted(_ACTION_CASES)),
    case=_random_case,
    key_case=_random_case,
    ticker=_tickers,
    price=_prices,
    qty=st.integers(1, MAX_QUANTITY),
    as_strings=st.booleans(),
)
def test_property_indicator_round_trip(
    word: str, case: Any, key_case: Any, ticker: str, price: float, qty: int, as_strings: bool
) -> None:
    payload = {
        key_case("action"): case(word),
        key_case("ticker"): ticker,
        key_case("price"): repr(price) if as_strings else price,
        key_case("quantity"): str(qty) if as_strings else qty,
    }
    sig = parse_body(_json(payload))
    assert sig.action == _ACTION_CASES[word]
    assert sig.ticker == ticker.strip()
    assert sig.price == price
    assert sig.quantity == qty
    assert intent_of(sig).kind == _ACTION_CASES[word]


_safe_text = st.text(alphabet="abcdefXYZ0123456789!._-/: ", max_size=12)


@st.composite
def _flat_payload(draw: st.DrawFn) -> dict[str, str]:
    """Mostly valid flat payloads (so the agreement is checked on real signals), sometimes with
    one value broken (so it is also checked on the rejections)."""
    valid: dict[str, st.SearchStrategy[str]] = {
        "action": st.sampled_from(["buy", "SELL", "exit", "add", "Long", "short"]),
        "price": _prices.map(repr),
        "qty": st.integers(1, 50).map(str) | st.just("2.0"),
        "sentiment": st.sampled_from(["bullish", "bearish", "flat", "long", "short"]),
        "market_position": st.sampled_from(["long", "short", "flat"]),
        "prev_market_position": st.sampled_from(["long", "short", "flat"]),
        "position_size": st.integers(-3, 3).map(str),
        "market_position_size": st.integers(0, 3).map(str),
        "timenow": st.sampled_from(["2019-08-27T09:56:00Z", "1566899760", "1566899760123"]),
        "takeprofit": st.sampled_from(["0", "12.5", "21050.25"]),
        "id": _safe_text,
        "comment": _safe_text,
        "recorder": _safe_text,
    }
    broken: dict[str, st.SearchStrategy[str]] = {
        "action": st.sampled_from(["hold", "cancel", "{{strategy.order.action}}"]) | _safe_text,
        "ticker": st.sampled_from(["", "  ", "{{ticker}}"]),
        "price": st.sampled_from(["0", "-1", "abc", "1e999", "1,234.5"]),
        "qty": st.sampled_from(["0", "-2", "2.5", "x"]),
        "sentiment": st.just("meh"),
        "timenow": st.sampled_from(["nope", "-1"]),
        "takeprofit": st.just("-1"),
    }
    ticker_key = draw(st.sampled_from(["ticker", "symbol", "instrument"]))
    payload: dict[str, str] = {ticker_key: draw(_tickers)}
    for key in draw(st.lists(st.sampled_from(sorted(valid)), unique=True)):
        payload[key] = draw(valid[key])
    if "market_position" in payload and draw(st.booleans()):
        # a consistent strategy target most of the time; contradictions stay possible
        size = draw(st.integers(1, 3))
        sign = {"long": 1, "short": -1, "flat": 0}[payload["market_position"]]
        payload["position_size"] = str(sign * size)
        payload.pop("market_position_size", None)
    if draw(st.integers(0, 3)) == 0:
        key = draw(st.sampled_from(sorted(broken)))
        payload[key] = draw(broken[key])
    return payload


def _outcome(body: bytes) -> ParsedSignal | tuple[str, str | None]:
    try:
        return dataclasses.replace(parse_body(body), fields={})
    except SignalError as error:
        return (error.reason, error.field)


@settings(max_examples=300)
@given(_flat_payload(), st.booleans())
def test_property_json_and_key_value_agree(payload: dict[str, str], numbers: bool) -> None:
    as_json: dict[str, Any] = dict(payload)
    if numbers:  # numeric strings as JSON numbers, as TradingView sends unquoted placeholders
        for key in ("price", "qty", "position_size", "market_position_size"):
            if key in as_json:
                with contextlib.suppress(ValueError):
                    as_json[key] = json.loads(as_json[key])
    json_body = json.dumps(as_json).encode()
    kv_body = "".join(f"{key}={value};" for key, value in payload.items()).encode()
    expected = _outcome(json_body)
    event("accepted" if isinstance(expected, ParsedSignal) else f"rejected: {expected[0]}")
    assert _outcome(kv_body) == expected
    if len(payload) > 1:
        assert _outcome(urlencode(payload).encode()) == expected
