"""Turning a Python value into compact JSON text, tagging what JSON lacks.

One walk over the value checks every key and converts what JSON cannot hold
(bytes, datetimes, non-finite floats, dataclasses, ...) into tags. The walk
is copy-on-write: a container whose contents need no change is handed to
the C encoder as it is, so a plain JSON-native value is never copied.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from stateshift.codec._paths import Located, render_path
from stateshift.codec._tags import (
    TAG_BIG_INT,
    TAG_BYTES,
    TAG_DATE,
    TAG_DATETIME,
    TAG_DECIMAL,
    TAG_ESCAPE,
    TAG_FLOAT,
    TAG_TIME,
    TAG_UUID,
    TAG_ZONED_DATETIME,
)
from stateshift.errors import CodecError, UnsupportedType

__all__ = ["dump_bytes", "dump_text", "to_tree"]

# Python refuses to turn ints of more than sys.get_int_max_str_digits() digits
# (4300 by default, 640 at the lowest setting) into decimal text, so longer
# ints are written in hexadecimal, which every reader can parse.
_INT_LIMIT = 10**600

_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":")
)
_ASCII_ENCODER = json.JSONEncoder(
    ensure_ascii=True, allow_nan=False, check_circular=False, separators=(",", ":")
)

_DATACLASS_FIELDS: dict[type, tuple[str, ...]] = {}


def dump_bytes(value: Any) -> bytes:
    """Encode a value as UTF-8 JSON bytes.

    Raises:
        UnsupportedType: naming the type and its path in the value.
        CodecError: the value is nested too deeply or contains a cycle.
    """
    tree = to_tree(value)
    try:
        return _ENCODER.encode(tree).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate has no UTF-8 form; as a \u escape it round-trips.
        return _ASCII_ENCODER.encode(tree).encode("ascii")


def dump_text(value: Any) -> str:
    """Encode a value as JSON text that is always encodable as UTF-8."""
    tree = to_tree(value)
    text = _ENCODER.encode(tree)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = _ASCII_ENCODER.encode(tree)
    return text


def to_tree(value: Any) -> Any:
    """Return a JSON-native equivalent of ``value`` (``value`` itself if it is one)."""
    try:
        return _walk(value)
    except Located as exc:
        raise UnsupportedType(exc.message, render_path(exc.parts)) from None
    except RecursionError:
        raise CodecError(
            "cannot encode a value nested too deeply or containing a reference "
            "to itself: flatten it or break the cycle"
        ) from None


def _walk(value: Any) -> Any:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return value
    if kind is int:
        return value if -_INT_LIMIT < value < _INT_LIMIT else _big_int(value)
    if kind is float:
        return value if value - value == 0.0 else _non_finite(value)
    if kind is dict:
        return _walk_dict(value)
    if kind is list or kind is tuple:
        return _walk_list(value)
    return _walk_other(value)


def _walk_dict(mapping: dict[Any, Any]) -> Any:
    changed: dict[str, Any] | None = None
    for key, item in mapping.items():
        if type(key) is not str:
            return _walk_dict(_plain_keys(mapping))

        # Scalars are checked inline: a call per field would double the cost.
        kind = type(item)
        if (
            kind is str
            or kind is bool
            or item is None
            or (kind is int and -_INT_LIMIT < item < _INT_LIMIT)
            or (kind is float and item - item == 0.0)
        ):
            continue

        try:
            new = _walk(item)
        except Located as exc:
            exc.parts.append(key)
            raise
        if new is not item:
            if changed is None:
                changed = dict(mapping)
            changed[key] = new

    result = mapping if changed is None else changed
    if len(result) == 1:
        (key,) = result
        if key[:1] == "$":
            return {TAG_ESCAPE: [key, result[key]]}
    return result


def _plain_keys(mapping: dict[Any, Any]) -> dict[str, Any]:
    plain: dict[str, Any] = {}
    for key, item in mapping.items():
        if isinstance(key, str):
            # A str subclass (a StrEnum member) keeps only its text.
            plain[str.__str__(key)] = item
        else:
            raise Located(f"{_type_name(key)} as a dict key (keys must be str)")
    return plain


def _walk_list(items: list[Any] | tuple[Any, ...]) -> Any:
    changed: list[Any] | None = None
    for index, item in enumerate(items):
        kind = type(item)
        if (
            kind is str
            or kind is bool
            or item is None
            or (kind is int and -_INT_LIMIT < item < _INT_LIMIT)
            or (kind is float and item - item == 0.0)
        ):
            continue

        try:
            new = _walk(item)
        except Located as exc:
            exc.parts.append(index)
            raise
        if new is not item:
            if changed is None:
                changed = list(items)
            changed[index] = new
    return items if changed is None else changed


def _walk_other(value: Any) -> Any:
    kind = type(value)
    tagger = _TAGGERS.get(kind)
    if tagger is not None:
        return tagger(value)
    if isinstance(value, Enum):
        return _walk(value.value)

    fields = _dataclass_fields(kind)
    if fields is not None:
        return _walk_dict({name: getattr(value, name) for name in fields})
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return _walk_model(value)

    # Subclasses of the supported types are stored as their base type.
    for base, convert in _BASES:
        if isinstance(value, base):
            return convert(value)
    raise Located(_type_name(value))


def _walk_model(model: Any) -> Any:
    try:
        return _walk_dict(model.model_dump(by_alias=True))
    except Located as first:
        # A field type the codec lacks (a set, a Path): let pydantic say it
        # in JSON terms; typed decoding through the model restores it.
        try:
            plain = model.model_dump(mode="json", by_alias=True)
        except Exception:
            raise first from None
        return _walk_dict(plain)


def _dataclass_fields(kind: type) -> tuple[str, ...] | None:
    names = _DATACLASS_FIELDS.get(kind)
    if names is None:
        if not dataclasses.is_dataclass(kind):
            return None
        names = tuple(field.name for field in dataclasses.fields(kind))
        _DATACLASS_FIELDS[kind] = names
    return names


def _type_name(value: Any) -> str:
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _big_int(value: int) -> dict[str, str]:
    return {TAG_BIG_INT: format(value, "x")}


def _non_finite(value: float) -> dict[str, str]:
    if value != value:
        return {TAG_FLOAT: "nan"}
    return {TAG_FLOAT: "inf" if value > 0 else "-inf"}


def _tag_bytes(value: bytes | bytearray) -> dict[str, str]:
    return {TAG_BYTES: base64.b64encode(value).decode("ascii")}


def _tag_datetime(value: datetime) -> Any:
    zone = value.tzinfo
    if zone is None or type(zone) is timezone:
        return _with_fold(TAG_DATETIME, value.isoformat(), value.fold)

    zoneinfo = sys.modules.get("zoneinfo")
    key = getattr(zone, "key", None)
    if zoneinfo is not None and type(zone) is zoneinfo.ZoneInfo and key:
        naive = value.replace(tzinfo=None).isoformat()
        return {TAG_ZONED_DATETIME: [naive, key, value.fold]}

    # Any other tzinfo (pytz, dateutil) is kept as the UTC offset it gives.
    if value.utcoffset() is None:
        value = value.replace(tzinfo=None)
    return _with_fold(TAG_DATETIME, value.isoformat(), value.fold)


def _with_fold(tag: str, text: str, fold: int) -> dict[str, Any]:
    # fold=1 (the second of two equal wall-clock times) is rare; only then
    # does the body become a [text, fold] pair.
    return {tag: [text, 1] if fold else text}


def _tag_date(value: date) -> dict[str, str]:
    return {TAG_DATE: value.isoformat()}


def _tag_time(value: time) -> dict[str, Any]:
    if value.tzinfo is not None and value.utcoffset() is None:
        raise Located(f"time with tzinfo {_type_name(value.tzinfo)}")
    return _with_fold(TAG_TIME, value.isoformat(), value.fold)


def _tag_uuid(value: UUID) -> dict[str, str]:
    return {TAG_UUID: str(value)}


def _tag_decimal(value: Decimal) -> dict[str, str]:
    return {TAG_DECIMAL: str(value)}


_TAGGERS: dict[type, Callable[[Any], Any]] = {
    bytes: _tag_bytes,
    bytearray: _tag_bytes,
    datetime: _tag_datetime,
    date: _tag_date,
    time: _tag_time,
    UUID: _tag_uuid,
    Decimal: _tag_decimal,
}

# Checked in order: datetime before date, since a datetime is a date.
_BASES: tuple[tuple[type, Callable[[Any], Any]], ...] = (
    (str, str.__str__),
    (int, lambda value: _walk(int(value))),
    (float, lambda value: _walk(float(value))),
    (dict, _walk_dict),
    (list, _walk_list),
    (tuple, _walk_list),
    (bytes, _tag_bytes),
    (datetime, _tag_datetime),
    (date, _tag_date),
    (time, _tag_time),
    (UUID, _tag_uuid),
    (Decimal, _tag_decimal),
)
