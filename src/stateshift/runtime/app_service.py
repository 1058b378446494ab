"""The runtime's :class:`~stateshift.runtime.service.Service` over a real App.

Maps names from requests and messages to registered workflows and
entities, checks arguments against their signatures before anything is
written, and turns the engine's answers into plain JSON views.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from stateshift.errors import LeaseLost
from stateshift.runtime.service import (
    PLACEMENT_FIELDS,
    Problem,
    RunView,
    TickReport,
)

logger = logging.getLogger(__name__)


class AppService:
    """Workflows, events and entities of one :class:`stateshift.App`."""

    def __init__(self, app: Any) -> None:
        self.app = app

    # --- names ----------------------------------------------------------

    def _workflow_definitions(self) -> Mapping[str, Any]:
        definitions: Mapping[str, Any] = getattr(self.app, "_workflow_definitions", {})
        return definitions

    def _workflow(self, name: str) -> Any:
        definition = self._workflow_definitions().get(name)
        if definition is None:
            known = ", ".join(self.workflow_names()) or "none"
            raise Problem(
                404,
                "unknown_workflow",
                f"no workflow named {name!r} is registered (registered: {known})",
            )
        return definition

    def workflow_names(self) -> Sequence[str]:
        return sorted(self._workflow_definitions())

    # --- workflows --------------------------------------------------------

    def start(
        self,
        workflow: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        workflow_id: str | None,
        run_here: bool,
        budget_seconds: float,
        placement: Mapping[str, str] | None = None,
    ) -> RunView:
        definition = self._workflow(workflow)
        for reserved in ("workflow_id", "time_budget", *PLACEMENT_FIELDS):
            if reserved in kwargs:
                raise Problem(
                    422,
                    "invalid_arguments",
                    f"{reserved!r} is an option of the start, not an argument of "
                    "the workflow: give it beside 'kwargs'",
                )
        _check_arguments(definition.signature, args, kwargs, f"workflow {workflow!r}")

        options: dict[str, Any] = dict(placement or {})
        if run_here:
            # Answer within the request: steps that would not fit are left
            # to the next tick, and the caller gets 202 with a status URL.
            options["time_budget"] = max(budget_seconds, 0.0)
        begin = self.app.run if run_here else self.app.start
        try:
            handle = begin(
                definition.fn,
                *args,
                workflow_id=workflow_id,
                **options,
                **kwargs,
            )
        except LeaseLost as exc:
            # Another worker holds it now; the caller reads its status.
            return self.status(exc.workflow_id)
        return self.status(handle.workflow_id)

    def status(self, workflow_id: str) -> RunView:
        info = self.app.status(workflow_id)
        error = None
        if info.error is not None:
            error = {"type": info.error.type, "message": info.error.message}
        return RunView(
            workflow_id=info.workflow_id,
            workflow=info.name,
            status=str(info.status.value),
            result=info.result,
            error=error,
            waiting_for=info.waiting_for,
            steps=tuple(
                {
                    "seq": step.seq,
                    "name": step.name,
                    "kind": step.kind,
                    "status": step.status,
                    "attempts": step.attempts,
                }
                for step in info.steps
            ),
        )

    def send_event(
        self, workflow_id: str, name: str, payload: Any, *, event_id: str | None
    ) -> bool:
        delivery = self.app.send_event(workflow_id, name, payload, event_id=event_id)
        # A duplicate was delivered the first time: only a finished run missed it.
        return bool(delivery.delivered or delivery.reason == "duplicate")

    def cancel(self, workflow_id: str) -> RunView:
        self.app.cancel(workflow_id)
        return self.status(workflow_id)

    def tick(self, budget_seconds: float) -> TickReport:
        summary = self.app.tick(budget=budget_seconds)
        wake_in = None
        if summary.next_wake_at is not None:
            wake_in = max(0.0, summary.next_wake_at - self.app.clock())
        return TickReport(
            ran=summary.ran, next_wake_up_seconds=wake_in, released=summary.released
        )

    # --- entities ---------------------------------------------------------

    def call_entity(
        self,
        entity: str,
        key: str,
        operation: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Any:
        registry = getattr(self.app, "_entities", None)
        types = registry().values() if callable(registry) else ()
        found = next((t for t in types if t.name == entity), None)
        if found is None:
            raise Problem(404, "unknown_entity", f"no entity named {entity!r}")
        method = found.operations.get(operation)
        if method is None:
            raise Problem(
                404,
                "unknown_operation",
                f"entity {entity!r} has no operation {operation!r} "
                f"(operations: {', '.join(sorted(found.operations)) or 'none'})",
            )
        _check_arguments(
            inspect.signature(method),
            (None, *args),
            kwargs,
            f"operation {entity}.{operation}",
        )
        ref = self.app.entity(found.cls, key)
        return getattr(ref, operation)(*args, **kwargs)


def _check_arguments(
    signature: inspect.Signature,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    what: str,
) -> None:
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise Problem(422, "invalid_arguments", f"{what}: {exc}") from None
