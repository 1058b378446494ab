"""The value codec: user values to stored bytes and back, never by pickle.

Values are written as compact UTF-8 JSON. What JSON lacks (bytes, datetimes,
UUIDs, Decimals, non-finite floats, very long ints) is written as small tags;
dataclasses and pydantic models are written as their fields. Reading builds
typed values only from a type hint the caller passes, never from anything in
the stored data. A :class:`Keyring` adds AES-GCM encryption at rest.

Example::

    from stateshift.codec import Codec

    codec = Codec()
    data = codec.encode(order, what="input of workflow 'checkout'")
    order = codec.decode(data, type_hint=Order)
"""

from __future__ import annotations

from stateshift.codec._codec import DEFAULT_MAX_VALUE_BYTES, Codec
from stateshift.codec._keyring import ENV_VAR, Keyring

__all__ = ["DEFAULT_MAX_VALUE_BYTES", "ENV_VAR", "Codec", "Keyring", "default_codec"]

default_codec = Codec()
"""A codec with the default size limit and no encryption."""
