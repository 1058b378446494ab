"""Deadlines: how long an invocation may still run, and when to stop claiming.

A platform gives each invocation a time limit. The invocation stops claiming
new work a safety margin before it, so whatever it started can still record
its outcome and the answer can still be sent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from stateshift._durations import Duration, optional_seconds, to_seconds

# The margin is a tenth of the budget, within these bounds: a 3 s function
# keeps 0.3 s, a 15 minute one keeps 5 s.
MIN_MARGIN_SECONDS = 0.1
MAX_MARGIN_SECONDS = 5.0


def default_margin_seconds(total_seconds: float) -> float:
    """The safety margin used for a budget of ``total_seconds``."""
    return min(MAX_MARGIN_SECONDS, max(MIN_MARGIN_SECONDS, total_seconds / 10))


@dataclass(frozen=True)
class Deadline:
    """The moment an invocation must have answered by, on the monotonic clock."""

    expires_at: float
    """``time.monotonic()`` value at which the platform stops the invocation."""

    margin_seconds: float
    """How long before ``expires_at`` no new work is claimed."""

    @classmethod
    def after(cls, duration: Duration, *, margin: Duration | None = None) -> Deadline:
        """A deadline ``duration`` from now.

        Args:
            duration: the time the platform gives (``timedelta`` or seconds).
            margin: the safety margin; by default a tenth of ``duration``
                between 0.1 s and 5 s.
        """
        total_seconds = to_seconds(duration, name="duration")
        margin_seconds = optional_seconds(margin, name="margin")
        if margin_seconds is None:
            margin_seconds = default_margin_seconds(total_seconds)
        return cls(time.monotonic() + total_seconds, margin_seconds)

    def remaining_seconds(self) -> float:
        """Time left until the platform's limit (never negative)."""
        return max(0.0, self.expires_at - time.monotonic())

    def budget_seconds(self) -> float:
        """Time left for new work: the remaining time less the margin."""
        return max(0.0, self.remaining_seconds() - self.margin_seconds)

    def may_claim(self, minimum_seconds: float = 0.0) -> bool:
        """Whether at least ``minimum_seconds`` of budget is left for new work."""
        budget = self.budget_seconds()
        return budget > 0 and budget >= minimum_seconds
