"""Control-flow signals that unwind workflow code.

They derive from ``BaseException`` so that user code saying ``except
Exception`` cannot swallow them; once one is raised in an invocation, every
later ``ss.*`` or step call raises it again.
"""

from __future__ import annotations

from stateshift.errors import LeaseLost, NonDeterminismError, StoreUnavailable

__all__ = [
    "Blocking",
    "Cancelling",
    "CompensationFailing",
    "Fenced",
    "Interrupted",
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


class Interrupted(Signal):
    """The store failed under a checkpoint: whether it landed is unknown.

    The invocation stops as a crash would, writing nothing more. The claim
    is left to expire (or to this worker's next reclaim); the replay then
    finds the checkpoint if it committed, and runs the step again if not.
    """

    def __init__(self, error: StoreUnavailable) -> None:
        super().__init__(str(error))
        self.error = error
