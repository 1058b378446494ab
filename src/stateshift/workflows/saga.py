"""Sagas: undo what a workflow did, in reverse order, when it cannot finish.

::

    with ss.Saga() as saga:
        charge(order_id, cents)
        saga.compensate(refund, order_id)
        reserve(order_id)
        saga.compensate(release, order_id)

When the block ends by an exception (a failed step, a rejected approval the
code raises for, an overall timeout) or by a cancellation, the registered
compensations run newest first, each as a durable step (kind
``compensation``) with its own retry policy, and then the original error
goes on. A suspension (a timer, a wait) is no failure and compensates
nothing. Registrations are not stored: replay runs the same code and
registers the same compensations, and their checkpoints make each one run
exactly once, even when a worker dies in the middle.

A compensation that fails for good leaves the workflow
``compensation_failed``; ``app.resume(workflow_id)`` retries it (with a
fresh set of attempts) and carries on with the rest.

Outside a workflow a saga is still useful: its compensations are plain
calls, in reverse order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from stateshift.workflows._context import (
    WorkflowContext,
    step_context,
    workflow_context,
)
from stateshift.workflows._exceptions import type_name
from stateshift.workflows._registry import StepDef, short_name
from stateshift.workflows._signals import Cancelling, CompensationFailing, Signal
from stateshift.workflows._steps import COMPENSATION, run_step, run_step_async

__all__ = ["Saga"]

Compensation = tuple[StepDef, tuple[Any, ...], dict[str, Any]]


class Saga:
    """Compensations registered after forward steps, run in reverse on failure.

    Use ``with ss.Saga() as saga:`` (``async with`` in an ``async def``
    workflow) and call :meth:`compensate` after each forward step succeeds.
    """

    def __init__(self) -> None:
        self._compensations: list[Compensation] = []
        self._is_async: bool | None = None

    def __repr__(self) -> str:
        names = [definition.name for definition, _, _ in self._compensations]
        return f"<stateshift.Saga compensations={names!r}>"

    def compensate(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """Register ``fn(*args, **kwargs)`` to undo the step just done.

        ``fn`` is best a step (``@app.step``), so it runs with that step's
        name and retry policy; a plain function runs as a step named after
        it, with the app's default retry policy. Arguments stay in memory:
        replay registers them again.

        Raises:
            TypeError: ``fn`` is not callable, or is async in a sync ``with``.
        """
        definition = _definition(fn)
        if definition.is_async and self._is_async is False:
            raise TypeError(
                f"compensation {definition.name!r} is async: use "
                "'async with ss.Saga()' in an async workflow"
            )
        self._compensations.append((definition, args, kwargs))

    @property
    def registered(self) -> list[str]:
        """Names of the compensations registered so far, oldest first."""
        return [definition.name for definition, _, _ in self._compensations]

    # --- sync -------------------------------------------------------------

    def __enter__(self) -> Saga:
        self._is_async = False
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None or not _compensates(error):
            return
        ctx = _durable_context()
        for definition, args, kwargs in self._pending():
            if ctx is None:
                definition.fn(*args, **kwargs)
                continue
            with _compensating(ctx, definition, error):
                run_step(definition, args, kwargs, COMPENSATION)
        self._done(ctx)

    # --- async ------------------------------------------------------------

    async def __aenter__(self) -> Saga:
        self._is_async = True
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None or not _compensates(error):
            return
        ctx = _durable_context()
        for definition, args, kwargs in self._pending():
            if ctx is None:
                result = definition.fn(*args, **kwargs)
                if definition.is_async:
                    await result
                continue
            with _compensating(ctx, definition, error):
                if definition.is_async:
                    await run_step_async(definition, args, kwargs, COMPENSATION)
                else:
                    run_step(definition, args, kwargs, COMPENSATION)
        self._done(ctx)

    # --- shared -----------------------------------------------------------

    def _pending(self) -> Iterator[Compensation]:
        # Taken off the list as they run, so a saga object reused after a
        # failure does not undo the same steps twice.
        while self._compensations:
            yield self._compensations.pop()

    @staticmethod
    def _done(ctx: WorkflowContext | None) -> None:
        if ctx is not None and ctx.compensating == 0 and ctx.held is not None:
            # Every compensation ran: the cancellation that started them
            # takes effect again and unwinds the rest of the workflow.
            ctx.signal, ctx.held = ctx.held, None


def _definition(fn: Callable[..., Any]) -> StepDef:
    definition = getattr(fn, "__stateshift_step__", None)
    if isinstance(definition, StepDef):
        return definition
    if not callable(fn):
        raise TypeError(f"a compensation is a step or a function, not {fn!r}")
    return StepDef(short_name(fn), fn, None, None)


def _compensates(error: BaseException) -> bool:
    """Errors and cancellation compensate; suspension and other signals not."""
    ctx = workflow_context()
    if ctx is not None and ctx.signal is not None:
        # Code that caught a signal and raised something else still ends by
        # the signal: only a cancellation undoes the saga.
        return isinstance(ctx.signal, Cancelling)
    if isinstance(error, Cancelling):
        return True
    return isinstance(error, Exception) and not isinstance(error, Signal)


def _durable_context() -> WorkflowContext | None:
    """The workflow to checkpoint compensations in; ``None``: plain calls."""
    ctx = workflow_context()
    if ctx is None or step_context() is not None:
        return None
    return ctx


@contextmanager
def _compensating(
    ctx: WorkflowContext, definition: StepDef, original: BaseException
) -> Iterator[None]:
    """Run one compensation past a cancellation or timeout; fail it for good."""
    if isinstance(ctx.signal, Cancelling):
        # Held aside so the compensation's own step calls are not refused;
        # restored when the outermost saga has run them all.
        ctx.held, ctx.signal = ctx.signal, None
    ctx.compensating += 1
    try:
        yield
    except Signal:
        raise
    except Exception as exc:
        cause = (
            "a cancellation"
            if isinstance(original, Cancelling)
            else f"{type_name(type(original))}: {original}"
        )
        message = (
            f"compensation {definition.name!r} of workflow {ctx.workflow_id!r} "
            f"failed for good ({type_name(type(exc))}: {exc}) while undoing "
            f"after {cause}. Fix the cause, then app.resume() the workflow to "
            "retry it"
        )
        raise ctx.stop(CompensationFailing(exc, message)) from exc
    finally:
        ctx.compensating -= 1
