"""Comparison helpers for the codec tests: exact equality, and what comes back."""

from __future__ import annotations

import dataclasses
import math
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any


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
