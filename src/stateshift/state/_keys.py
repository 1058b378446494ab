"""Keys and namespace names: validation, prefix ranges and scan cursors.

Keys are compared byte-wise on both backends (SQLite's ``BINARY`` collation,
PostgreSQL's ``"C"``), which for UTF-8 is code point order. A prefix scan is
therefore the range ``[prefix, successor(prefix))``: no ``LIKE``, so ``%``
and ``_`` in a prefix are plain characters.
"""

from __future__ import annotations

import base64
import binascii

from stateshift.errors import InvalidKey

DEFAULT_UPDATE_ATTEMPTS = 50
"""How often ``update`` and entity operations retry on a conflict.

Here rather than in the namespace module so that the App's signatures can
name it without importing the state machinery."""

MAX_KEY_BYTES = 1024
"""Longest key, in UTF-8 bytes (an index entry must stay well under 2.7 kB)."""

MAX_NAMESPACE_BYTES = 200
"""Longest namespace name, in UTF-8 bytes."""

_MAX_CODE_POINT = 0x10FFFF
_SURROGATES = range(0xD800, 0xE000)


def check_key(key: object, *, what: str = "key") -> str:
    """Return ``key`` if it is a valid key, else raise :class:`InvalidKey`."""
    if not isinstance(key, str):
        raise InvalidKey(f"a {what} must be a str, not {type(key).__name__}")
    if key == "":
        raise InvalidKey(f"a {what} must not be empty")
    if "\x00" in key:
        raise InvalidKey(f"a {what} must not contain NUL characters: {key[:80]!r}")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(
            f"a {what} must be valid Unicode (no lone surrogates): {key[:80]!r}"
        ) from None
    limit = MAX_NAMESPACE_BYTES if what == "namespace" else MAX_KEY_BYTES
    if size > limit:
        raise InvalidKey(
            f"a {what} may be at most {limit} bytes in UTF-8, this one is {size}: "
            f"{key[:80]!r}..."
        )
    return key


def check_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is a valid scan prefix (may be empty)."""
    if prefix == "":
        return ""
    return check_key(prefix, what="prefix")


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix``.

    ``None`` when there is none (an empty prefix, or one made only of the
    largest code point): the range is then open-ended.
    """
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code in _SURROGATES:
            code = _SURROGATES.stop
        if code <= _MAX_CODE_POINT:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


def encode_cursor(last_key: str) -> str:
    """An opaque cursor that resumes a scan after ``last_key``."""
    raw = last_key.encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The key a cursor resumes after; :class:`InvalidKey` when malformed."""
    if not isinstance(cursor, str) or not cursor:
        raise InvalidKey("a scan cursor must be a non-empty str from a previous page")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidKey(f"{cursor[:80]!r} is not a scan cursor") from None
    return check_key(key, what="cursor")
