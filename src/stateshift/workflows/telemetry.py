"""Tracing and log context for workflows and steps.

**Spans.** When ``opentelemetry`` is installed (the ``otel`` extra), every
workflow invocation and every step attempt gets a span: ``workflow
<name>`` with ``stateshift.workflow_id``, ``stateshift.workflow`` and
``stateshift.outcome`` (``completed``, ``suspended``, ``released``,
``cancelled``, ``blocked``, ``lease_lost`` or ``failed``), and inside it
``step <name>`` with the workflow id, ``stateshift.step``,
``stateshift.attempt`` and ``stateshift.status`` (``ok`` or ``error``). A
step replayed from history does not run, so it has no span. Without the
package nothing is wrapped and nothing imported.

**Logs.** :class:`WorkflowLogFilter`, attached to a handler, stamps every
record emitted inside a workflow with ``workflow_id`` and ``step`` (unless
the record carries them already in ``extra``) and drops records emitted by
workflow code while it replays recorded history, so each line is logged
once however often the workflow resumes. ``stateshift worker`` installs it
on its handlers; elsewhere call :func:`install_log_filter`.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from stateshift.workflows._context import step_context, workflow_context
from stateshift.workflows._signals import (
    Blocking,
    Cancelling,
    Fenced,
    Released,
    Suspended,
)

__all__ = [
    "WorkflowLogFilter",
    "install_log_filter",
    "instrument_step",
    "instrument_workflow",
    "tracing_available",
]

F = TypeVar("F", bound=Callable[..., Any])

_available: bool | None = None
_tracer: Any = None


def tracing_available() -> bool:
    """True when ``opentelemetry`` can be imported (checked once, not imported)."""
    global _available
    if _available is None:
        _available = importlib.util.find_spec("opentelemetry") is not None
    return _available


def _get_tracer() -> Any:
    global _tracer
    if _tracer is None:
        from opentelemetry import trace

        from stateshift import __version__

        _tracer = trace.get_tracer("stateshift", __version__)
    return _tracer


def _outcome(error: BaseException) -> str:
    if isinstance(error, Suspended):
        return "suspended"
    if isinstance(error, Released):
        return "released"
    if isinstance(error, Cancelling):
        return "cancelled"
    if isinstance(error, Blocking):
        return "blocked"
    if isinstance(error, Fenced):
        return "lease_lost"
    return "failed"


def _span(name: str, attributes: dict[str, Any]) -> Any:
    # Signals (BaseException) end a span without marking it an error; a
    # step's or workflow's own exception is recorded on it.
    return _get_tracer().start_as_current_span(name, attributes=attributes)


def instrument_workflow(fn: F, name: str) -> F:
    """``fn`` wrapped in a span per invocation, if tracing is available."""
    if not tracing_available():
        return fn

    def attributes() -> dict[str, Any]:
        ctx = workflow_context()
        workflow_id = ctx.workflow_id if ctx is not None else ""
        return {"stateshift.workflow_id": workflow_id, "stateshift.workflow": name}

    if _is_async(fn):

        @functools.wraps(fn)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            with _span(f"workflow {name}", attributes()) as span:
                try:
                    value = await fn(*args, **kwargs)
                except BaseException as error:
                    span.set_attribute("stateshift.outcome", _outcome(error))
                    raise
                span.set_attribute("stateshift.outcome", "completed")
                return value

        return traced_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        with _span(f"workflow {name}", attributes()) as span:
            try:
                value = fn(*args, **kwargs)
            except BaseException as error:
                span.set_attribute("stateshift.outcome", _outcome(error))
                raise
            span.set_attribute("stateshift.outcome", "completed")
            return value

    return traced  # type: ignore[return-value]


def instrument_step(fn: F, name: str) -> F:
    """``fn`` wrapped in a span per attempt, if tracing is available.

    Outside a workflow, or called plainly from inside another step, the
    function runs without a span.
    """
    if not tracing_available():
        return fn

    def attributes() -> dict[str, Any] | None:
        context = step_context()
        if context is None or context.step != name:
            return None
        return {
            "stateshift.workflow_id": context.workflow_id,
            "stateshift.workflow": context.workflow_name,
            "stateshift.step": name,
            "stateshift.attempt": context.attempt,
        }

    if _is_async(fn):

        @functools.wraps(fn)
        async def traced_async(*args: Any, **kwargs: Any) -> Any:
            found = attributes()
            if found is None:
                return await fn(*args, **kwargs)
            with _span(f"step {name}", found) as span:
                try:
                    value = await fn(*args, **kwargs)
                except BaseException:
                    span.set_attribute("stateshift.status", "error")
                    raise
                span.set_attribute("stateshift.status", "ok")
                return value

        return traced_async  # type: ignore[return-value]

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        found = attributes()
        if found is None:
            return fn(*args, **kwargs)
        with _span(f"step {name}", found) as span:
            try:
                value = fn(*args, **kwargs)
            except BaseException:
                span.set_attribute("stateshift.status", "error")
                raise
            span.set_attribute("stateshift.status", "ok")
            return value

    return traced  # type: ignore[return-value]


def _is_async(fn: Callable[..., Any]) -> bool:
    import inspect

    return inspect.iscoroutinefunction(fn)


class WorkflowLogFilter(logging.Filter):
    """Stamp records with ``workflow_id`` and ``step``; silence replay."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = workflow_context()
        if ctx is None:
            return True
        step = step_context()
        if step is None and ctx.replaying and not record.name.startswith("stateshift"):
            # Workflow code retracing history already logged this line.
            return False
        if not hasattr(record, "workflow_id"):
            record.workflow_id = ctx.workflow_id
        if not hasattr(record, "step"):
            record.step = step.step if step is not None else None
        return True


def install_log_filter(handler: logging.Handler | None = None) -> None:
    """Attach one :class:`WorkflowLogFilter` to ``handler``, or to every
    handler of the root logger."""
    handlers = [handler] if handler is not None else logging.getLogger().handlers
    for each in handlers:
        if not any(isinstance(f, WorkflowLogFilter) for f in each.filters):
            each.addFilter(WorkflowLogFilter())
