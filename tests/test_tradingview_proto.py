"""Pure TradingView websocket protocol layer (reference tradingview.md §3)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actors.feed.sources.tradingview_proto import (
    ANONYMOUS_TOKEN,
    HeartbeatFrame,
    MessageFrame,
    ProtocolError,
    QuoteBook,
    RawFrame,
    SymbolStatus,
    auth_messages,
    decode,
    delay_seconds,
    encode,
    encode_message,
    heartbeat_reply,
    is_fatal,
    new_session_id,
    subscribe_messages,
    utf16_len,
)

QS = "qs_abcdefghijkl"
SYM = "CME_MINI:MNQ1!"


def qsd(values: dict, symbol: str = SYM, status: str = "ok", **extra) -> list:
    return [QS, {"n": symbol, "s": status, "v": values, **extra}]


# ---------------------------------------------------------------------------- framing


def test_encode_concrete() -> None:
    assert encode("~h~7") == "~m~4~m~~h~7"
    assert encode("") == "~m~0~m~"
    assert encode_message("quote_create_session", [QS]) == (
        '~m~52~m~{"m":"quote_create_session","p":["qs_abcdefghijkl"]}'
    )


def test_utf16_length_differs_from_python_len() -> None:
    # CJK is 1 unit (3 UTF-8 bytes); emoji is astral: 1 Python char, 2 UTF-16 units.
    desc = "Micro 纳斯达克 🚀"
    assert len(desc) == 12 and utf16_len(desc) == 13 and len(desc.encode()) == 23
    msg = encode_message("qsd", [QS, {"n": SYM, "s": "ok", "v": {"description": desc}}])
    body = msg.split("~m~")[2]
    assert msg.startswith(f"~m~{len(body) + 1}~m~")  # +1 for the emoji's second unit
    (frame,) = decode(msg)
    assert isinstance(frame, MessageFrame)
    assert frame.params[1]["v"]["description"] == desc


def test_decode_multi_frame_message() -> None:
    data = (
        "~m~4~m~~h~7"
        + encode_message("quote_completed", [QS, SYM])
        + '~m~56~m~{"m":"qsd","p":["qs_x",{"n":"A","s":"ok","v":{"lp":1}}]}'
    )
    frames = decode(data)
    assert [type(f) for f in frames] == [HeartbeatFrame, MessageFrame, MessageFrame]
    hb, done, q = frames
    assert hb == HeartbeatFrame(payload="~h~7", number=7)
    assert (done.method, done.params) == ("quote_completed", [QS, SYM])
    assert q.method == "qsd" and q.params[1]["v"] == {"lp": 1}


def test_payload_containing_separator_is_cut_by_length() -> None:
    payload = json.dumps({"m": "x", "p": ["~m~3~m~abc"]})
    assert decode(encode(payload) + encode("~h~1")) == [
        MessageFrame(payload=payload, method="x", params=["~m~3~m~abc"]),
        HeartbeatFrame(payload="~h~1", number=1),
    ]


def test_heartbeat_echo() -> None:
    (frame,) = decode("~m~4~m~~h~7")
    assert heartbeat_reply(frame) == "~m~4~m~~h~7"
    (big,) = decode("~m~6~m~~h~123")
    assert heartbeat_reply(big) == "~m~6~m~~h~123" and big.number == 123
    with pytest.raises(TypeError):
        heartbeat_reply(RawFrame(payload="x"))


def test_server_hello_and_non_json_are_raw() -> None:
    hello = json.dumps({"session_id": "<0.1.2>_abc", "protocol": "json", "release": "r1"})
    frames = decode(encode(hello) + encode("not json at all"))
    assert frames[0] == RawFrame(payload=hello, data=json.loads(hello))
    assert frames[1] == RawFrame(payload="not json at all", data=None)


def test_fatal_messages() -> None:
    (pe,) = decode(encode_message("protocol_error", ["wrong data"]))
    assert is_fatal(pe)
    assert not is_fatal(decode(encode_message("qsd", qsd({"lp": 1})))[0])


def test_empty_message_has_no_frames() -> None:
    assert decode("") == []


@pytest.mark.parametrize(
    "bad",
    [
        "hello",  # no ~m~
        "~m~~m~x",  # empty length
        "~m~x~m~abc",  # non-decimal length
        "~m~٣~m~abc",  # non-ASCII digit
        "~m~3~mabc",  # broken second separator
        "~m~10~m~short",  # truncated
        "~m~3~m~abcd",  # trailing garbage
        "~m~4~m~~h~7 ~m~4~m~~h~8",  # garbage between frames
        "~m~1~m~🚀",  # length ends inside a surrogate pair
        "~m~9999999999~m~x",  # absurd length (too many digits)
        '~m~16~m~{"m":"x","p":5}',  # p is not a list
        "~m~4~m~~h~7~m~",  # dangling separator
    ],
)
def test_malformed_raises_protocol_error(bad: str) -> None:
    with pytest.raises(ProtocolError):
        decode(bad)


def test_astral_length_counted_as_two() -> None:
    assert decode("~m~2~m~🚀") == [RawFrame(payload="🚀")]
    assert decode("~m~3~m~a🚀~m~1~m~b") == [RawFrame(payload="a🚀"), RawFrame(payload="b")]


# ---------------------------------------------------------------------------- handshake


def test_auth_and_subscribe_messages() -> None:
    (auth,) = auth_messages()
    assert decode(auth) == [
        MessageFrame(
            payload=auth.split("~m~", 2)[2], method="set_auth_token", params=[ANONYMOUS_TOKEN]
        )
    ]
    msgs = subscribe_messages(QS, [SYM, "COMEX:GC1!"], ["lp", "bid", "ask", "update_mode"])
    got = [(f.method, f.params) for m in msgs for f in decode(m)]
    assert got == [
        ("quote_create_session", [QS]),
        ("quote_set_fields", [QS, "lp", "bid", "ask", "update_mode"]),
        ("quote_add_symbols", [QS, SYM, "COMEX:GC1!"]),
    ]
    assert len(subscribe_messages(QS, [SYM], [])) == 2
    with pytest.raises(ValueError):
        subscribe_messages(QS, [], ["lp"])


def test_new_session_id() -> None:
    a = new_session_id(random.Random(1))
    assert a == new_session_id(random.Random(1))
    assert a.startswith("qs_") and len(a) == 15 and a[3:].isalpha() and a[3:].isascii()
    assert a != new_session_id(random.Random(2))


# ---------------------------------------------------------------------------- quote book


def test_qsd_delta_merge_keeps_lp() -> None:
    book = QuoteBook()
    first = book.apply(qsd({"lp": 21000.25, "update_mode": "delayed_streaming_600"}))
    assert first is not None and first.lp_changed and first.lp == 21000.25
    assert first.delayed is True and first.update_mode == "delayed_streaming_600"

    second = book.apply(qsd({"bid": 21000.0}))
    assert second is not None
    assert dict(second.fields) == {
        "lp": 21000.25,
        "update_mode": "delayed_streaming_600",
        "bid": 21000.0,
    }
    assert dict(second.delta) == {"bid": 21000.0}
    assert not second.lp_changed and second.delayed is True

    same = book.apply(qsd({"lp": 21000.25}))
    assert same is not None and not same.lp_changed
    third = book.apply(qsd({"lp": 21000.5, "update_mode": "streaming"}))
    assert third is not None and third.lp_changed and third.delayed is False
    assert third.fields["bid"] == 21000.0
    # returned snapshots are independent copies
    assert first.fields["lp"] == 21000.25 and "bid" not in first.fields
    assert book.snapshot(SYM)["lp"] == 21000.5
    assert book.snapshot("NOPE:X") is None


def test_unknown_update_mode_and_delay() -> None:
    book = QuoteBook()
    up = book.apply(qsd({"lp": 1}))
    assert up is not None and up.update_mode is None and up.delayed is None
    assert delay_seconds("streaming") == 0
    assert delay_seconds("delayed_streaming_900") == 900
    assert delay_seconds("endofday") is None and delay_seconds(None) is None


def test_error_status_recorded() -> None:
    book = QuoteBook()
    assert (
        book.apply(qsd({}, symbol="CME_MINI:XXX1!", status="error", errmsg="no_such_symbol"))
        is None
    )
    assert book.error("CME_MINI:XXX1!") == "no_such_symbol"
    assert book.statuses["CME_MINI:XXX1!"] == SymbolStatus("error", "no_such_symbol")
    assert book.snapshot("CME_MINI:XXX1!") is None
    assert book.apply(qsd({}, symbol="B", status="error")) is None
    assert book.error("B") == "error"
    # later ok clears the error
    assert book.apply(qsd({"lp": 2}, symbol="B")) is not None
    assert book.error("B") is None


def test_handle_frames_and_completed() -> None:
    book = QuoteBook()
    data = (
        "~m~4~m~~h~1"
        + encode_message("qsd", qsd({"lp": 21000.25}))
        + encode_message("quote_completed", [QS, SYM])
    )
    updates = [book.handle(f) for f in decode(data)]
    assert updates[0] is None and updates[2] is None
    assert updates[1] is not None and updates[1].symbol == SYM and updates[1].session == QS
    assert book.completed == {SYM}


@pytest.mark.parametrize(
    "params",
    [[], [QS], ["x", "y"], [QS, {"s": "ok", "v": {}}], [QS, {"n": SYM, "v": [1]}], "nope"],
)
def test_malformed_qsd_raises(params) -> None:
    with pytest.raises(ProtocolError):
        QuoteBook().apply(params)


# ---------------------------------------------------------------------------- properties

_text = st.text(alphabet=st.characters(codec=None), max_size=200)  # includes astral plane
_astral = st.text(alphabet=st.characters(min_codepoint=0x10000), min_size=1, max_size=20)


@given(st.one_of(_text, _astral, st.text(max_size=50).map(lambda s: "~h~" + s)))
def test_roundtrip_single(payload: str) -> None:
    (frame,) = decode(encode(payload))
    assert frame.payload == payload


@given(st.lists(st.one_of(_text, _astral), max_size=6))
def test_roundtrip_many(payloads: list[str]) -> None:
    frames = decode("".join(encode(p) for p in payloads))
    assert [f.payload for f in frames] == payloads


@given(st.lists(st.text(max_size=30), max_size=5), st.text(max_size=20))
def test_roundtrip_message(params: list[str], method: str) -> None:
    (frame,) = decode(encode_message(method, params))
    assert isinstance(frame, MessageFrame)
    assert (frame.method, frame.params) == (method, params)


_garbage_alphabet = st.sampled_from(list('~mh0123456789{}[]":,pa🚀纳 \x00'))


@settings(max_examples=300)
@given(
    st.one_of(
        st.text(max_size=300),
        st.text(alphabet=_garbage_alphabet, max_size=100),
        st.lists(st.one_of(_text, _astral), max_size=3).flatmap(
            lambda ps: st.integers(0, max(0, sum(len(encode(p)) for p in ps))).map(
                lambda cut, ps=ps: "".join(encode(p) for p in ps)[:cut]
            )
        ),
    )
)
def test_decode_arbitrary_never_crashes(data: str) -> None:
    try:
        frames = decode(data)
    except ProtocolError:
        return
    assert all(isinstance(f, HeartbeatFrame | MessageFrame | RawFrame) for f in frames)
