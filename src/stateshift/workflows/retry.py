"""Retry policies for steps: how many attempts, and how long between them."""

from __future__ import annotations

import random as _random
from dataclasses import dataclass, field

from stateshift._durations import Duration, to_seconds
from stateshift.errors import CodecError, NonDeterminismError

__all__ = ["RetryPolicy"]

# Failures that no retry can fix: a value that cannot be stored will not
# become storable, and history will not change by itself.
_NEVER_RETRIED: tuple[type[BaseException], ...] = (CodecError, NonDeterminismError)


@dataclass(frozen=True, init=False)
class RetryPolicy:
    """When and how often a failing step is attempted again.

    The wait before attempt ``n + 1`` is ``initial_interval * backoff **
    (n - 1)``, capped at ``max_interval``, then spread by ``jitter``
    (a fraction: 0.1 means up to 10 % either way).
    """

    max_attempts: int
    """Attempts in all, the first included; 1 means never retried."""
    initial_interval_seconds: float
    """Wait before the second attempt."""
    backoff: float
    """Factor applied to the wait after each attempt."""
    max_interval_seconds: float
    """Longest wait between two attempts."""
    jitter: float
    """Random spread of each wait, as a fraction of it."""
    non_retryable: tuple[type[BaseException], ...] = field(default=())
    """Exception types that fail the step at once."""

    def __init__(
        self,
        max_attempts: int = 3,
        initial_interval: Duration = 1.0,
        backoff: float = 2.0,
        max_interval: Duration = 60.0,
        jitter: float = 0.1,
        non_retryable: tuple[type[BaseException], ...] = (),
    ) -> None:
        """Build a policy; bad values raise ``ValueError`` / ``TypeError``."""
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int):
            raise TypeError("max_attempts must be an int")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not backoff >= 1.0:
            raise ValueError("backoff must be at least 1.0")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError("jitter must be between 0 and 1")
        kinds = tuple(non_retryable)
        for kind in kinds:
            if not (isinstance(kind, type) and issubclass(kind, BaseException)):
                raise TypeError(f"non_retryable holds {kind!r}, not an exception type")
        set_ = object.__setattr__
        set_(self, "max_attempts", max_attempts)
        set_(
            self,
            "initial_interval_seconds",
            to_seconds(initial_interval, name="initial_interval"),
        )
        set_(self, "backoff", float(backoff))
        set_(
            self,
            "max_interval_seconds",
            to_seconds(max_interval, name="max_interval"),
        )
        set_(self, "jitter", float(jitter))
        set_(self, "non_retryable", kinds)

    def retries(self, error: BaseException, attempt: int) -> bool:
        """Whether ``error`` on attempt number ``attempt`` deserves another."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, _NEVER_RETRIED) or isinstance(error, self.non_retryable):
            return False
        return True

    def delay_seconds(self, attempt: int) -> float:
        """The wait after attempt number ``attempt`` failed."""
        base = self.initial_interval_seconds * self.backoff ** max(0, attempt - 1)
        base = min(base, self.max_interval_seconds)
        if self.jitter:
            # The wait is recorded as a due time, so its randomness never
            # needs to replay.
            base *= 1.0 + _random.uniform(-self.jitter, self.jitter)
        return max(0.0, base)
