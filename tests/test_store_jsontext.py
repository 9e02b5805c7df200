"""The store's JSON text (orjson, stdlib fallback) reads back as the stdlib's did."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from actors.store import jsontext

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(VALUES)
def test_reads_back_as_the_stdlib_text_does(value: Any) -> None:
    assert json.loads(jsontext.dumps(value)) == json.loads(json.dumps(value))


def test_what_orjson_declines_is_written_by_the_stdlib() -> None:
    big = {"n": 2**80, 1: "int key"}
    assert json.loads(jsontext.dumps(big)) == {"n": 2**80, "1": "int key"}


def test_int_keys_as_the_stdlib_writes_them() -> None:
    assert json.loads(jsontext.dumps({1: [1, 2], "a": {2: None}})) == {
        "1": [1, 2],
        "a": {"2": None},
    }
