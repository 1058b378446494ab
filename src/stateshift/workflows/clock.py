"""Clocks for timers: the real one, and a manual one tests can jump.

Timers (sleeps, event timeouts, retry waits, the overall workflow timeout)
read ``app.clock``; leases read the database clock, so a test that jumps
the manual clock never makes a live lease look expired.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

from stateshift._durations import Duration, to_seconds

__all__ = ["Clock", "ManualClock", "system_clock"]

Clock = Callable[[], float]
"""A function returning the current time in epoch seconds."""

system_clock: Clock = time.time
"""The default clock."""


class ManualClock:
    """A clock that moves only when told to; pass it as ``App(clock=...)``.

    Example::

        clock = ManualClock()
        app = ss.App(store, clock=clock)
        clock.advance(timedelta(hours=1))
        app.run_until_idle()
    """

    def __init__(self, start: float | None = None) -> None:
        """Start at ``start`` epoch seconds (default: the real time now)."""
        self._now = time.time() if start is None else float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: Duration | timedelta) -> float:
        """Move forward by ``seconds``; return the new time."""
        step = to_seconds(seconds, name="seconds")
        with self._lock:
            self._now += step
            return self._now

    def set(self, epoch_seconds: float) -> None:
        """Jump to ``epoch_seconds`` (never backwards)."""
        with self._lock:
            if epoch_seconds < self._now:
                raise ValueError("a ManualClock never goes backwards")
            self._now = float(epoch_seconds)

    def __repr__(self) -> str:
        return f"ManualClock({self._now!r})"
