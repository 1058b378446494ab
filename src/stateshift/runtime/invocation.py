"""The invocation: one entry point for every trigger, within a deadline.

An invocation first does what its trigger asks (answer the request, handle
the batch, or nothing more for a tick), then the due work while time is
left. It claims nothing new once only the safety margin remains; messages
it did not start are reported failed, so the queue hands them out again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from stateshift.errors import StateshiftError
from stateshift.runtime import commands
from stateshift.runtime.deadline import Deadline
from stateshift.runtime.service import Problem, Service, TickReport
from stateshift.runtime.triggers import (
    HttpRequest,
    HttpResponse,
    QueueBatch,
    ScheduledTick,
    Trigger,
)

logger = logging.getLogger(__name__)

HttpHandler = Callable[[HttpRequest, Deadline], HttpResponse]
WakeUp = Callable[[float], None]
"""Asks the platform for an invocation in that many seconds (a delayed message)."""


@dataclass(frozen=True, kw_only=True)
class InvocationPolicy:
    """How an invocation shares its time between its trigger and due work."""

    http_due_work_seconds: float = 1.0
    """Most time an HTTP request spends on due work before it answers."""

    min_step_seconds: float = 0.05
    """Smallest budget worth handing to a message or a tick."""

    wake_up_horizon_seconds: float = 60.0
    """Wake-ups further away than this are left to the scheduled tick."""


@dataclass(frozen=True)
class BatchOutcome:
    """Which messages of a batch must come back, and why."""

    failed: tuple[str, ...] = ()
    """Message ids to report as failures, in batch order."""

    errors: Mapping[str, str] = field(default_factory=dict)
    """Why each failed message failed."""

    released: tuple[str, ...] = ()
    """Ids that were never started because the deadline drew near."""

    tick: TickReport | None = None


@dataclass(frozen=True)
class TickOutcome:
    """What the due work of a scheduled tick did."""

    tick: TickReport | None


Outcome = HttpResponse | BatchOutcome | TickOutcome


class Invoker:
    """Runs triggers against a service; one per process, holding no state."""

    def __init__(
        self,
        service: Service,
        *,
        http: HttpHandler | None = None,
        policy: InvocationPolicy | None = None,
        wake_up: WakeUp | None = None,
    ) -> None:
        self.service = service
        self.http = http
        self.policy = policy or InvocationPolicy()
        self.wake_up = wake_up

    def invoke(self, trigger: Trigger, deadline: Deadline) -> Outcome:
        """Do what ``trigger`` asks, then due work, before ``deadline``."""
        if isinstance(trigger, HttpRequest):
            if self.http is None:
                raise TypeError("this invoker was built without an HTTP API")
            response = self.http(trigger, deadline)
            # A refused request buys no work: it must not be a way to make
            # an anonymous caller's requests expensive.
            if response.status < 400:
                self.due_work(deadline, cap_seconds=self.policy.http_due_work_seconds)
            return response
        if isinstance(trigger, QueueBatch):
            return self.batch(trigger, deadline)
        if isinstance(trigger, ScheduledTick):
            return TickOutcome(self.due_work(deadline))
        raise TypeError(f"not a trigger: {type(trigger).__name__}")

    def batch(self, batch: QueueBatch, deadline: Deadline) -> BatchOutcome:
        """Handle each message on its own; a failure fails only that one."""
        failed: list[str] = []
        errors: dict[str, str] = {}
        released: list[str] = []
        only_wakes = True
        for index, message in enumerate(batch.messages):
            if not deadline.may_claim(self.policy.min_step_seconds):
                released = [m.message_id for m in batch.messages[index:]]
                break
            try:
                command = commands.parse_message(message)
                only_wakes = only_wakes and command.op == "wake"
                commands.execute(
                    self.service, command, budget_seconds=deadline.budget_seconds()
                )
            except Exception as exc:
                failed.append(message.message_id)
                kind = exc.code if isinstance(exc, Problem) else type(exc).__name__
                errors[message.message_id] = f"{kind}: {exc}"
                logger.warning(
                    "message %s from %s failed: %s",
                    message.message_id,
                    batch.source,
                    exc,
                    extra={"event": "runtime.message.failed"},
                )
                if batch.ordered:
                    # FIFO: a later message must not overtake this one, so
                    # it is not started and comes back with it.
                    released = [m.message_id for m in batch.messages[index + 1 :]]
                    break

        if released:
            logger.info(
                "released %d unstarted messages from %s",
                len(released),
                batch.source,
                extra={"event": "runtime.batch.released"},
            )
        # A wake-up asks for the next one only when it found work: redundant
        # chains of wake-ups (from many requests) die out by themselves.
        tick = self.due_work(deadline, chain_only_if_ran=only_wakes)
        return BatchOutcome(
            failed=tuple(failed + released),
            errors=errors,
            released=tuple(released),
            tick=tick,
        )

    def due_work(
        self,
        deadline: Deadline,
        *,
        cap_seconds: float | None = None,
        chain_only_if_ran: bool = False,
    ) -> TickReport | None:
        """Run due work within the budget left; ask for a wake-up if one is near."""
        budget = deadline.budget_seconds()
        if cap_seconds is not None:
            budget = min(budget, cap_seconds)
        if budget < self.policy.min_step_seconds:
            return None
        report = self.service.tick(budget)
        wake_in = report.next_wake_up_seconds
        if (
            self.wake_up is not None
            and wake_in is not None
            and wake_in <= self.policy.wake_up_horizon_seconds
            and (report.ran > 0 or not chain_only_if_ran)
        ):
            try:
                self.wake_up(max(0.0, wake_in))
            except Exception:
                # The scheduled tick still comes: a lost wake-up only delays.
                logger.exception(
                    "could not schedule a wake-up in %.1f s",
                    wake_in,
                    extra={"event": "runtime.wake_up.failed"},
                )
        return report


class MessageFailed(StateshiftError):
    """A platform that takes one message per invocation must redeliver it.

    Raised by adapters (Pub/Sub, Azure queues) so the platform sees a failed
    invocation and hands the message out again.

    Attributes:
        message_id: the message that failed.
        reason: why, as ``Type: message``.
    """

    def __init__(self, message_id: str, reason: str) -> None:
        super().__init__(
            f"message {message_id!r} failed and will be redelivered: {reason}"
        )
        self.message_id = message_id
        self.reason = reason


def raise_for_failures(outcome: BatchOutcome) -> None:
    """Raise :class:`MessageFailed` for the first failed message, if any."""
    if outcome.failed:
        message_id = outcome.failed[0]
        raise MessageFailed(
            message_id,
            outcome.errors.get(message_id, "not started before the deadline"),
        )
