"""The names the JSON tag scheme uses, shared by encoding and decoding.

A tag is a JSON object with exactly one key that starts with ``$``; the key
says what the body is. A user's own single-key dict whose key starts with
``$`` is escaped as ``{"$$": [key, value]}``, so no user data ever reads as a
tag. Tags name value kinds, never classes: stored data cannot ask for a class
to be built.
"""

from __future__ import annotations

__all__ = [
    "MARKER_ENVELOPE",
    "MARKER_JSON",
    "TAG_BIG_INT",
    "TAG_BYTES",
    "TAG_DATE",
    "TAG_DATETIME",
    "TAG_DECIMAL",
    "TAG_ESCAPE",
    "TAG_FLOAT",
    "TAG_PREFIX",
    "TAG_TIME",
    "TAG_UUID",
    "TAG_ZONED_DATETIME",
]

MARKER_JSON = b"J"
"""First byte of a stored value that is UTF-8 JSON text."""

MARKER_ENVELOPE = b"E"
"""First byte of a stored value that is an AES-GCM envelope around a JSON one."""

TAG_PREFIX = '{"$'
"""Compact JSON text holds this only where an object's first key starts with $."""

TAG_BYTES = "$b"
"""bytes, as standard base64."""

TAG_DATETIME = "$dt"
"""datetime, naive or with a fixed UTC offset, in ISO 8601."""

TAG_ZONED_DATETIME = "$dz"
"""datetime in a named IANA zone: [naive ISO 8601, zone key, fold]."""

TAG_DATE = "$d"
"""date in ISO 8601."""

TAG_TIME = "$t"
"""time in ISO 8601, naive or with a fixed UTC offset."""

TAG_UUID = "$u"
"""UUID in its canonical hyphenated form."""

TAG_DECIMAL = "$n"
"""Decimal as its exact string, exponent and special values included."""

TAG_FLOAT = "$f"
"""A float JSON cannot hold: "nan", "inf" or "-inf"."""

TAG_BIG_INT = "$i"
"""An int too long for every JSON reader, in hexadecimal."""

TAG_ESCAPE = "$$"
"""A user dict with one key starting with $: [key, value]."""
