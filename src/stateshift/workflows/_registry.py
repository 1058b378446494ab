"""Definitions of registered workflows and steps, and how inputs are stored."""

from __future__ import annotations

import functools
import hashlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

from stateshift.codec import Codec
from stateshift.workflows.retry import RetryPolicy

__all__ = [
    "StepDef",
    "WorkflowDef",
    "definition_of",
    "hints_of",
    "make_step",
    "short_name",
]

DEFINITION_ATTRIBUTE = "__stateshift_workflow__"


def hints_of(fn: Callable[..., Any]) -> dict[str, Any]:
    """Resolved annotations of ``fn``; empty when they cannot be resolved."""
    try:
        return typing.get_type_hints(fn)
    except Exception:
        return {}


def short_name(fn: Callable[..., Any]) -> str:
    """The qualified name of ``fn`` from its own scope on."""
    # "<locals>" of an enclosing function says nothing useful in a history.
    return str(getattr(fn, "__qualname__", repr(fn))).rsplit("<locals>.", 1)[-1]


def _is_async(fn: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(fn)


class StepDef:
    """A registered step: its name, options and body."""

    __slots__ = ("name", "fn", "is_async", "retry", "timeout_seconds", "return_hint")

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        retry: RetryPolicy | None,
        timeout_seconds: float | None,
    ) -> None:
        self.name = name
        self.fn = fn
        self.is_async = _is_async(fn)
        self.retry = retry
        self.timeout_seconds = timeout_seconds
        self.return_hint = hints_of(fn).get("return")


class WorkflowDef:
    """A registered workflow: its name, options, body and input layout."""

    def __init__(
        self, name: str, fn: Callable[..., Any], timeout_seconds: float | None
    ) -> None:
        self.name = name
        self.fn = fn
        self.is_async = _is_async(fn)
        self.timeout_seconds = timeout_seconds
        self.signature = inspect.signature(fn)
        hints = hints_of(fn)
        self.return_hint = hints.get("return")
        self._positional_hints = [
            hints.get(parameter.name, Any)
            for parameter in self.signature.parameters.values()
            if parameter.kind
            in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD)
        ]
        self._input_hints: dict[int, Any] = {}

    def encode_input(
        self, codec: Codec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bytes, str]:
        """The stored input and its hash (over the unencrypted encoding).

        Raises:
            TypeError: the arguments do not fit the function's signature.
        """
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"workflow {self.name!r}: {exc}") from None
        value = [list(bound.args), dict(bound.kwargs)]
        what = f"input of workflow {self.name!r}"
        data = codec.encode(value, what=what)
        plain = data
        if getattr(codec, "keyring", None) is not None:
            # An encrypted encoding differs on every call; compare inputs by
            # the plain one.
            plain = Codec(max_value_bytes=codec.max_value_bytes).encode(
                value, what=what
            )
        digest = hashlib.sha256(self.name.encode() + b"\0" + plain).hexdigest()
        return data, digest

    def decode_input(
        self, codec: Codec, data: bytes
    ) -> tuple[list[Any], dict[str, Any]]:
        """Arguments rebuilt from stored input, typed by the annotations."""
        what = f"input of workflow {self.name!r}"
        args, kwargs = codec.decode(data, what=what)
        hint = self._input_hint(len(args))
        if hint is not None:
            args, kwargs = codec.decode(data, type_hint=hint, what=what)
        return list(args), dict(kwargs)

    def _input_hint(self, count: int) -> Any:
        if count in self._input_hints:
            return self._input_hints[count]
        hints = self._positional_hints[:count]
        hint: Any = None
        if any(h is not Any for h in hints) and len(hints) == count:
            inner: Any = tuple.__class_getitem__(tuple(hints)) if hints else tuple
            hint = tuple[inner, dict[str, Any]]
        self._input_hints[count] = hint
        return hint


def definition_of(fn: Any) -> WorkflowDef:
    """The definition behind a function decorated with ``@app.workflow``.

    Raises:
        TypeError: ``fn`` is not a registered workflow.
    """
    definition = getattr(fn, DEFINITION_ATTRIBUTE, None)
    if not isinstance(definition, WorkflowDef):
        raise TypeError(
            f"{fn!r} is not a workflow: decorate it with @app.workflow() first"
        )
    return definition


def make_step(definition: StepDef) -> Callable[..., Any]:
    """The callable that replaces a decorated step function.

    The step machinery is imported at the first call, not here: registering
    steps is part of every cold start, running them is not always.
    """
    if definition.is_async:

        @functools.wraps(definition.fn)
        async def async_step(*args: Any, **kwargs: Any) -> Any:
            from stateshift.workflows._steps import run_step_async

            return await run_step_async(definition, args, kwargs)

        async_step.__stateshift_step__ = definition  # type: ignore[attr-defined]
        return async_step

    @functools.wraps(definition.fn)
    def step(*args: Any, **kwargs: Any) -> Any:
        from stateshift.workflows._steps import run_step

        return run_step(definition, args, kwargs)

    step.__stateshift_step__ = definition  # type: ignore[attr-defined]
    return step
