"""Reading JSON text back into Python values, resolving tags.

Text that holds no tag (no object whose first key starts with ``$``) is
parsed by the C decoder with no Python hook at all. Otherwise every object
passes through :func:`_untag`, which turns tags back into bytes, datetimes,
UUIDs and the like. A tag only ever builds one of those fixed kinds.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any
from uuid import UUID

from stateshift.codec._tags import (
    TAG_BIG_INT,
    TAG_BYTES,
    TAG_DATE,
    TAG_DATETIME,
    TAG_DECIMAL,
    TAG_ESCAPE,
    TAG_FLOAT,
    TAG_PREFIX,
    TAG_TIME,
    TAG_UUID,
    TAG_ZONED_DATETIME,
)

__all__ = ["MalformedValue", "load_text"]


class MalformedValue(ValueError):
    """Stored text is not JSON this codec wrote; the caller adds context."""


def load_text(text: str, *, compact: bool = True) -> Any:
    """Parse JSON text, resolving tags.

    Args:
        text: the JSON text.
        compact: the text was written by the encoder, so an object whose
            first key starts with ``$`` reads exactly ``{"$``. Text from
            elsewhere may have spaces there and is searched more slowly.

    Raises:
        MalformedValue: the text is not valid JSON or holds an invalid tag.
    """
    if compact:
        tagged = TAG_PREFIX in text
    else:
        tagged = _SPACED_TAG_PREFIX.search(text) is not None
    decoder = _TAGGED if tagged else _PLAIN
    try:
        return decoder.decode(text)
    except MalformedValue:
        raise
    except RecursionError:
        raise MalformedValue("it is nested too deeply") from None
    except (ValueError, TypeError) as exc:
        # json's own errors, and Python's refusal of over-long decimal ints.
        raise MalformedValue(f"it is not valid JSON ({exc})") from None


def _refuse_constant(name: str) -> Any:
    raise MalformedValue(f"{name} is not valid JSON")


def _untag(obj: dict[str, Any]) -> Any:
    if len(obj) != 1:
        return obj
    for tag, body in obj.items():
        if tag[:1] != "$":
            return obj
        decode = _TAG_DECODERS.get(tag)
        if decode is None:
            raise MalformedValue(f"it holds an unknown tag {tag[:20]!r}")
        try:
            return decode(body)
        except MalformedValue:
            raise
        except (ValueError, TypeError, ArithmeticError, KeyError) as exc:
            raise MalformedValue(f"its {tag!r} tag is invalid ({exc})") from None
    return obj


def _text(body: Any) -> str:
    if type(body) is not str:
        raise TypeError(f"expected a string, found {type(body).__name__}")
    return body


def _bytes(body: Any) -> bytes:
    try:
        return base64.b64decode(_text(body), validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None


def _folded(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A decoder for a body that is ISO text, or [ISO text, 1] when fold=1."""

    def decode(body: Any) -> Any:
        if type(body) is list:
            if len(body) != 2 or body[1] != 1 or type(body[1]) is not int:
                raise ValueError("expected [text, 1]")
            return parse(_text(body[0])).replace(fold=1)
        return parse(_text(body))

    return decode


# An offset with seconds and microseconds, like "+00:00:00.000001", which
# Python 3.11's fromisoformat reads as UTC, losing the fraction.
_FINE_OFFSET = re.compile(r"([+-])(\d{2}):(\d{2}):(\d{2})(?:\.(\d{6}))?$")


def _with_fine_offset(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def decode(text: str) -> Any:
        match = _FINE_OFFSET.search(text)
        if match is None or text[: match.start()].endswith(("T", "-")):
            return parse(text)
        sign, hours, minutes, seconds, micros = match.groups()
        offset = timedelta(
            hours=int(hours),
            minutes=int(minutes),
            seconds=int(seconds),
            microseconds=int(micros or 0),
        )
        naive = parse(text[: match.start()])
        if naive.tzinfo is not None:
            raise ValueError("two offsets")
        return naive.replace(tzinfo=timezone(-offset if sign == "-" else offset))

    return decode


def _zoned_datetime(body: Any) -> datetime:
    if type(body) is not list or len(body) != 3 or type(body[2]) is not int:
        raise ValueError("expected [local time, zone, fold]")
    local = datetime.fromisoformat(_text(body[0]))
    if local.tzinfo is not None:
        raise ValueError("the local time has an offset")

    import zoneinfo  # only values written with a named zone need it

    zone = zoneinfo.ZoneInfo(_text(body[1]))
    return local.replace(tzinfo=zone, fold=body[2])


def _decimal(body: Any) -> Decimal:
    try:
        return Decimal(_text(body))
    except InvalidOperation:
        raise ValueError("not a decimal number") from None


def _float(body: Any) -> float:
    if body not in ("nan", "inf", "-inf"):
        raise ValueError("expected 'nan', 'inf' or '-inf'")
    return float(body)


def _big_int(body: Any) -> int:
    return int(_text(body), 16)


def _escaped(body: Any) -> dict[str, Any]:
    if type(body) is not list or len(body) != 2 or type(body[0]) is not str:
        raise ValueError("expected [key, value]")
    return {body[0]: body[1]}


_TAG_DECODERS: dict[str, Callable[[Any], Any]] = {
    TAG_BYTES: _bytes,
    TAG_DATETIME: _folded(_with_fine_offset(datetime.fromisoformat)),
    TAG_ZONED_DATETIME: _zoned_datetime,
    TAG_DATE: lambda body: date.fromisoformat(_text(body)),
    TAG_TIME: _folded(_with_fine_offset(time.fromisoformat)),
    TAG_UUID: lambda body: UUID(_text(body)),
    TAG_DECIMAL: _decimal,
    TAG_FLOAT: _float,
    TAG_BIG_INT: _big_int,
    TAG_ESCAPE: _escaped,
}

_SPACED_TAG_PREFIX = re.compile(r'\{\s*"\$')
_PLAIN = json.JSONDecoder(parse_constant=_refuse_constant)
_TAGGED = json.JSONDecoder(parse_constant=_refuse_constant, object_hook=_untag)
