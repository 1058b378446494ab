"""Property tests: every supported value round-trips exactly."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from stateshift.codec import Codec

codec = Codec(max_value_bytes=1 << 30)


def same(left: Any, right: Any) -> bool:
    """Equal and of the same types all the way down (nan equals nan)."""
    if type(left) is not type(right):
        return False
    if isinstance(left, float):
        if math.isnan(left):
            return bool(math.isnan(right))
        return bool(left == right) and math.copysign(1, left) == math.copysign(1, right)
    if isinstance(left, Decimal):
        return str(left) == str(right)
    if isinstance(left, datetime | time):
        return (
            left.replace(tzinfo=None) == right.replace(tzinfo=None)
            and left.tzinfo == right.tzinfo
            and (left.tzinfo is None or left.fold == right.fold)
        )
    if isinstance(left, date):
        return bool(left == right)
    if isinstance(left, dict):
        return list(left) == list(right) and all(
            same(left[key], right[key]) for key in left
        )
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(
            same(a, b) for a, b in zip(left, right, strict=True)
        )
    return bool(left == right)


def untyped(value: Any) -> Any:
    """What decoding without a type hint gives back for ``value``."""
    if isinstance(value, Enum):
        return untyped(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name: untyped(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {str.__str__(key): untyped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [untyped(item) for item in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(),
        st.characters(categories=["Cs"]),  # lone surrogates
        st.sampled_from(["\x00", "\u2028", '"', "\\", "$", "{", "\ufeff"]),
    )
)

fixed_offsets = st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-23, minutes=-59),
        max_value=timedelta(hours=23, minutes=59),
    ),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**700), max_value=10**4000),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.binary(),
    st.datetimes(timezones=st.none() | st.just(UTC) | fixed_offsets),
    st.datetimes(timezones=st.timezones()),
    st.dates(),
    st.times(timezones=st.none() | fixed_offsets),
    st.uuids(),
    st.decimals(allow_nan=True, allow_infinity=True),
)

# Keys that look like tags, or like escapes of tags, must stay plain keys.
keys = st.one_of(
    hostile_text,
    st.sampled_from(["$b", "$$", "$dt", "$dz", "$i", "$f", "$unknown", "$", ""]),
    hostile_text.map(lambda text: "$" + text),
)

values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(values)
def test_every_supported_value_round_trips_exactly(value: Any) -> None:
    decoded = codec.decode(codec.encode(value))
    assert same(decoded, untyped(value))


@given(values)
def test_json_text_round_trips_like_stored_bytes(value: Any) -> None:
    text = codec.encode_json(value)
    text.encode("utf-8")  # always valid UTF-8, even with lone surrogates
    assert same(codec.decode_json(text), untyped(value))


@given(st.dictionaries(keys, values, min_size=1, max_size=1))
def test_a_dict_that_looks_like_a_tag_round_trips_as_a_dict(value: Any) -> None:
    assert same(codec.decode(codec.encode(value)), untyped(value))


@given(st.binary())
def test_random_bytes_decode_or_raise_a_codec_error(data: bytes) -> None:
    from stateshift.errors import CodecError

    try:
        codec.decode(b"J" + data)
    except CodecError:
        pass
