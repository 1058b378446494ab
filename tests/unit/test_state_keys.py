"""Keys, prefix ranges and cursors of state namespaces (no store needed)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stateshift as ss
from stateshift.state._keys import (
    check_key,
    decode_cursor,
    encode_cursor,
    prefix_end,
)

KEY_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)


@given(prefix=KEY_TEXT, key=KEY_TEXT)
def test_the_prefix_range_holds_exactly_the_keys_with_the_prefix(
    prefix: str, key: str
) -> None:
    end = prefix_end(prefix)
    inside = key >= prefix and (end is None or key < end)
    assert inside == key.startswith(prefix)


@given(key=KEY_TEXT)
def test_a_cursor_round_trips_its_key(key: str) -> None:
    assert decode_cursor(encode_cursor(key)) == key


def test_the_empty_prefix_and_the_top_code_point_have_no_end() -> None:
    assert prefix_end("") is None
    assert prefix_end("\U0010ffff") is None
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"


@pytest.mark.parametrize("cursor", ["", "***", "gA"])
def test_a_malformed_cursor_is_an_invalid_key(cursor: str) -> None:
    with pytest.raises(ss.InvalidKey):
        decode_cursor(cursor)


def test_invalid_keys_say_why() -> None:
    with pytest.raises(ss.InvalidKey, match="empty"):
        check_key("")
    with pytest.raises(ss.InvalidKey, match="NUL"):
        check_key("a\x00")
    with pytest.raises(ss.InvalidKey, match="at most 1024 bytes"):
        check_key("x" * 1025)
    with pytest.raises(ss.InvalidKey, match="must be a str"):
        check_key(b"bytes")


def test_the_state_names_are_exported_in_sorted_order() -> None:
    for name in ["App", "Item", "Namespace", "Page", "RedisCache", "Transaction"]:
        assert name in ss.__all__ and hasattr(ss, name)
    assert ss.__all__ == sorted(ss.__all__, key=lambda n: (n.startswith("_"), n))
