"""Unit tests of the codec: formats, tags, errors, limits and speed paths."""

from __future__ import annotations

import base64
import math
import pickle
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum, IntEnum, StrEnum
from pathlib import Path
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest

from stateshift.codec import DEFAULT_MAX_VALUE_BYTES, Codec, default_codec
from stateshift.errors import (
    CodecError,
    ConfigError,
    DeserializationError,
    PayloadTooLarge,
    UnsupportedType,
)

codec = Codec()


class Color(Enum):
    RED = "red"
    BLUE = "blue"


class Level(IntEnum):
    LOW = 1
    HIGH = 2


@dataclass
class Line:
    sku: str
    price: Decimal


@dataclass
class Order:
    order_id: str
    lines: list[Line] = field(default_factory=list)


def round_trip(value: object) -> object:
    return codec.decode(codec.encode(value))


def test_plain_json_values_are_stored_as_compact_json_after_a_marker() -> None:
    data = codec.encode({"id": "order-42", "cents": 1999, "items": [1, None, True]})

    assert data == b'J{"id":"order-42","cents":1999,"items":[1,null,true]}'


def test_text_is_stored_as_utf8_not_escaped() -> None:
    assert codec.encode("grüße 東京") == 'J"grüße 東京"'.encode()


def test_scalars_json_lacks_come_back_as_their_python_types() -> None:
    value = {
        "blob": b"\x00\xffdata",
        "at": datetime(2024, 5, 1, 12, 30, 1, 5, tzinfo=timezone(timedelta(hours=2))),
        "naive": datetime(2024, 5, 1, 12, 30),
        "day": date(2024, 5, 1),
        "clock": time(23, 59, 59, 999999),
        "id": UUID("12345678-1234-5678-1234-567812345678"),
        "amount": Decimal("10.50"),
    }

    decoded = round_trip(value)

    assert decoded == value
    assert decoded["naive"].tzinfo is None
    assert str(decoded["amount"]) == "10.50"


def test_a_named_time_zone_is_kept_with_its_fold() -> None:
    zone = ZoneInfo("Europe/Paris")
    second_half_past_two = datetime(2024, 10, 27, 2, 30, tzinfo=zone, fold=1)

    decoded = round_trip(second_half_past_two)

    assert isinstance(decoded, datetime)
    assert decoded.tzinfo is zone
    assert decoded.fold == 1
    assert decoded.utcoffset() == timedelta(hours=1)


def test_negative_zero_infinities_and_nan_round_trip() -> None:
    decoded = round_trip([-0.0, math.inf, -math.inf, math.nan])

    assert isinstance(decoded, list)
    assert math.copysign(1, decoded[0]) == -1
    assert decoded[1:3] == [math.inf, -math.inf]
    assert math.isnan(decoded[3])


def test_ints_of_any_length_round_trip() -> None:
    huge = -(7**20_000)

    assert round_trip([huge, 10**599, 2**64]) == [huge, 10**599, 2**64]


def test_tuples_come_back_as_lists_without_a_hint() -> None:
    assert round_trip({"pair": (1, (2, "x"))}) == {"pair": [1, [2, "x"]]}


def test_enums_come_back_as_their_values_without_a_hint() -> None:
    assert round_trip([Color.RED, Level.HIGH]) == ["red", 2]


def test_dataclasses_come_back_as_dicts_without_a_hint() -> None:
    order = Order("o-1", [Line("apple", Decimal("0.99"))])

    assert round_trip(order) == {
        "order_id": "o-1",
        "lines": [{"sku": "apple", "price": Decimal("0.99")}],
    }


def test_str_enum_keys_are_stored_as_their_text() -> None:
    class Size(str, Enum):  # noqa: UP042 - the mixin's str() differs from StrEnum's
        SMALL = "s"

    class Weight(StrEnum):
        LIGHT = "l"

    assert round_trip({Size.SMALL: 1, Weight.LIGHT: 2}) == {"s": 1, "l": 2}


def test_lone_surrogates_and_nul_round_trip_as_valid_utf8() -> None:
    value = {"text": "a\ud800b\x00c\udfff"}

    data = codec.encode(value)

    data.decode("utf-8")
    assert codec.decode(data) == value


@pytest.mark.parametrize(
    "value",
    [
        {"$b": "aGk="},
        {"$$": ["$b", "aGk="]},
        {"$unknown": 1},
        {"$": None},
        {"$dt": {"$dt": "2024-01-01"}},
    ],
)
def test_a_user_dict_shaped_like_a_tag_round_trips_as_a_dict(value: object) -> None:
    assert round_trip(value) == value
    assert codec.decode_json(codec.encode_json(value)) == value


def test_dicts_with_several_dollar_keys_are_not_escaped() -> None:
    assert codec.encode({"$a": 1, "$b": 2}) == b'J{"$a":1,"$b":2}'
    assert round_trip({"$a": 1, "$b": 2}) == {"$a": 1, "$b": 2}


def test_encoding_leaves_the_value_unchanged() -> None:
    inner = {"$b": 1}
    value = {"inner": inner, "when": [date(2024, 1, 1)]}

    codec.encode(value)

    assert value == {"inner": {"$b": 1}, "when": [date(2024, 1, 1)]}
    assert value["inner"] is inner


@pytest.mark.parametrize(
    ("value", "type_name", "path"),
    [
        ({"items": [1, 2, {"price": object()}]}, "object", "$.items[2].price"),
        ([{1, 2}], "set", "$[0]"),
        ({"odd key": {"x": frozenset()}}, "frozenset", '$["odd key"].x'),
        ({"counts": {1: "a"}}, "int as a dict key (keys must be str)", "$.counts"),
        (Order("o-1", [Line("a", 1j)]), "complex", "$.lines[0].price"),  # type: ignore[arg-type,unused-ignore]
        ({"pair": (1, Path("/tmp"))}, "pathlib.PosixPath", "$.pair[1]"),
    ],
)
def test_unsupported_types_are_named_with_their_path(
    value: object, type_name: str, path: str
) -> None:
    with pytest.raises(UnsupportedType) as caught:
        codec.encode(value)

    assert caught.value.type_name == type_name
    assert caught.value.path == path
    assert isinstance(caught.value, TypeError)
    assert path in str(caught.value)


def test_a_reference_cycle_is_refused_clearly() -> None:
    cycle: list[object] = []
    cycle.append(cycle)

    with pytest.raises(CodecError, match="reference to itself"):
        codec.encode(cycle)


def test_the_default_size_limit_is_256_kib() -> None:
    assert DEFAULT_MAX_VALUE_BYTES == 262_144
    assert default_codec.max_value_bytes == 262_144


def test_a_value_over_the_size_limit_raises_a_non_retryable_error() -> None:
    small = Codec(max_value_bytes=100)
    small.encode("x" * 90)

    with pytest.raises(PayloadTooLarge) as caught:
        small.encode("x" * 200, what="result of step 'charge'")

    assert caught.value.what == "result of step 'charge'"
    assert caught.value.size_bytes == 203  # marker, two quotes, 200 characters
    assert caught.value.limit_bytes == 100
    assert caught.value.retryable is False
    assert "result of step 'charge'" in str(caught.value)


def test_json_text_has_no_size_limit() -> None:
    assert len(Codec(max_value_bytes=10).encode_json("x" * 100)) == 102


@pytest.mark.parametrize("limit", [0, -1, 1.5, "10"])
def test_an_invalid_size_limit_is_a_config_error(limit: object) -> None:
    with pytest.raises(ConfigError):
        Codec(max_value_bytes=limit)  # type: ignore[arg-type,unused-ignore]


class Boom:
    def __reduce__(self) -> tuple[object, ...]:
        return (pytest.fail, ("the pickle payload ran",))


@pytest.mark.parametrize(
    "data",
    [
        pickle.dumps(Boom()),
        b'{"__class__": "os.system", "args": ["true"]}',
        b"",
        b"X{}",
        b"\x02{}",
        b"J{not json",
        b"J[1,2",
        b"J[NaN]",
        b"J[Infinity]",
        b"J\xff\xfe",
        b"J" + b"[" * 100_000,
        b"J" + b"1" * 5000,
        b'J{"$b":"not base64!"}',
        b'J{"$b":5}',
        b'J{"$dt":"yesterday"}',
        b'J{"$dt":["2024-01-01T00:00:00",2]}',
        b'J{"$dz":["2024-01-01T00:00:00","Not/AZone",0]}',
        b'J{"$dz":["2024-01-01T00:00:00","../../etc/passwd",0]}',
        b'J{"$dz":["2024-01-01T00:00:00+01:00","UTC",0]}',
        b'J{"$u":"not-a-uuid"}',
        b'J{"$n":"ten"}',
        b'J{"$f":"NaN"}',
        b'J{"$i":"xyz"}',
        b'J{"$$":"flat"}',
        b'J{"$$":[1,2]}',
        b'J{"$class":"os.system"}',
        b"E",
        b"E\x05ab",
    ],
)
def test_tampered_bytes_raise_a_deserialization_error(data: bytes) -> None:
    with pytest.raises(DeserializationError):
        codec.decode(data, what="result of step 'charge'")


def test_a_dunder_class_key_stays_data_and_builds_nothing() -> None:
    data = b'J{"__class__":"os.system","args":["true"]}'

    assert codec.decode(data) == {"__class__": "os.system", "args": ["true"]}


def test_decoding_errors_name_the_value() -> None:
    with pytest.raises(DeserializationError, match="result of step 'charge'"):
        codec.decode(b"J{", what="result of step 'charge'")


def test_decode_accepts_memoryview_and_refuses_text() -> None:
    assert codec.decode(memoryview(b"J[1]")) == [1]
    with pytest.raises(DeserializationError, match="expected bytes"):
        codec.decode("J[1]")  # type: ignore[arg-type,unused-ignore]


def test_json_text_is_tagged_like_stored_bytes() -> None:
    text = codec.encode_json({"blob": b"hi", "at": date(2024, 1, 2)})

    assert text == '{"blob":{"$b":"aGk="},"at":{"$d":"2024-01-02"}}'
    assert codec.decode_json(text) == {"blob": b"hi", "at": date(2024, 1, 2)}


def test_hand_written_json_text_with_spaces_still_has_its_tags_read() -> None:
    text = '{ "blob" : { "$b" : "aGk=" }, "kept": {"$$": ["$b", 1]} }'

    assert codec.decode_json(text) == {"blob": b"hi", "kept": {"$b": 1}}


def test_invalid_json_text_raises_a_deserialization_error() -> None:
    with pytest.raises(DeserializationError, match="JSON text"):
        codec.decode_json("{")


def test_bytes_are_base64_in_the_stored_text() -> None:
    data = codec.encode(b"\x00\x01")

    assert data == b'J{"$b":"' + base64.b64encode(b"\x00\x01") + b'"}'


def test_using_the_codec_imports_neither_pydantic_nor_cryptography() -> None:
    script = textwrap.dedent(
        """
        import sys
        from dataclasses import dataclass
        from datetime import datetime, timezone
        from stateshift.codec import Codec

        @dataclass
        class Point:
            x: int

        codec = Codec()
        value = {"at": datetime.now(timezone.utc), "point": Point(1), "n": [1.5]}
        codec.decode(codec.encode(value), type_hint=dict)
        codec.decode(codec.encode(Point(2)), type_hint=Point)
        print(sorted({"pydantic", "cryptography"} & set(sys.modules)))
        """
    )
    source = Path(__file__).parents[2] / "src"
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(source)},
        timeout=60,
    )

    assert done.stdout.strip() == "[]"
