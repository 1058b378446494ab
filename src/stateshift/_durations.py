"""Durations: public parameters accept a ``timedelta`` or a number of seconds."""

from __future__ import annotations

import math
from datetime import timedelta

Duration = timedelta | int | float


def to_seconds(value: Duration, *, name: str = "duration") -> float:
    """Return ``value`` as seconds, refusing negatives, NaN and other types.

    Raises:
        TypeError: ``value`` is neither a ``timedelta`` nor a number.
        ValueError: ``value`` is negative or not finite.
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a timedelta or seconds, not bool")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float):
        seconds = float(value)
    else:
        raise TypeError(
            f"{name} must be a timedelta or a number of seconds, "
            f"not {type(value).__name__}"
        )
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{name} must be a finite, non-negative duration: {value!r}")
    return seconds


def optional_seconds(value: Duration | None, *, name: str = "duration") -> float | None:
    """Like :func:`to_seconds`, passing ``None`` through."""
    return None if value is None else to_seconds(value, name=name)
