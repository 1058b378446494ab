"""Control-flow signals that unwind workflow code.

They derive from ``BaseException`` so that user code saying ``except
Exception`` cannot swallow them; once one is raised in an invocation, every
later ``ss.*`` or step call raises it again.
"""

from __future__ import annotations

from stateshift.errors import LeaseLost, NonDeterminismError

__all__ = [
    "Blocking",
    "Cancelling",
    "CompensationFailing",
    "Fenced",
    "Released",
    "Signal",
    "Suspended",
]


class Signal(BaseException):
    """Base of the engine's signals."""


class Suspended(Signal):
    """The workflow recorded what it waits for; this invocation ends."""


class Released(Signal):
    """The invocation's budget is spent: the workflow goes back to pending."""


class Cancelling(Signal):
    """``app.cancel`` was called: the workflow unwinds and ends cancelled."""


class Fenced(Signal):
    """Another worker took the workflow over; this one must stop writing."""

    def __init__(self, error: LeaseLost) -> None:
        super().__init__(str(error))
        self.error = error


class Blocking(Signal):
    """Replay met code that differs from history; the workflow is blocked."""

    def __init__(self, error: NonDeterminismError) -> None:
        super().__init__(str(error))
        self.error = error


class CompensationFailing(Signal):
    """A saga compensation failed for good; the workflow waits for a resume."""

    def __init__(self, error: BaseException, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message
