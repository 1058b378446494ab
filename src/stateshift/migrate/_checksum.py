"""Checksums of values, equal whenever two values would be stored the same.

A value is first written as the codec writes it (tagged JSON, so bytes,
datetimes and Decimals are told apart from strings), then read back as a
JSON tree and written again with sorted object keys: field order, which a
legacy store and a namespace need not agree on, does not change the sum.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from stateshift.codec import default_codec

__all__ = ["value_digest"]


def value_digest(value: Any) -> str:
    """The SHA-256 (hex) of ``value`` in canonical encoded form."""
    tree = json.loads(default_codec.encode_json(value))
    canonical = json.dumps(
        tree, sort_keys=True, ensure_ascii=False, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()
