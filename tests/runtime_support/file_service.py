"""A small workflow service kept in a JSON file, for the runtime's own tests.

It stands in for the workflow engine (developed on its own branch) behind
the :class:`stateshift.runtime.service.Service` protocol, and keeps every
run in a file so that adapter tests running in another process (the Lambda
runtime client, functions-framework) can be checked from the test. A
workflow function returns a value (succeeds), raises (fails), or returns
``Wait("event:name")`` to wait for that event, whose payload is its result.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stateshift.errors import WorkflowConflict, WorkflowNotFound
from stateshift.runtime.service import Problem, RunView, TickReport


@dataclass(frozen=True)
class Wait:
    what: str


class FileService:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.workflows: dict[str, Callable[..., Any]] = {}
        self.entities: dict[str, Callable[..., Any]] = {}
        self.next_wake_up_seconds: float | None = None

    def workflow(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        self.workflows[fn.__name__] = fn
        return fn

    # --- the file -----------------------------------------------------------

    def load(self) -> dict[str, Any]:
        if not self.path.exists():
            return {"runs": {}, "events": [], "ticks": [], "entities": {}}
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def save(self, data: dict[str, Any]) -> None:
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.path)

    # --- the Service protocol -----------------------------------------------

    def workflow_names(self) -> Sequence[str]:
        return sorted(self.workflows)

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
        fn = self.workflows.get(workflow)
        if fn is None:
            raise Problem(404, "unknown_workflow", f"no workflow named {workflow!r}")
        try:
            inspect.signature(fn).bind(*args, **kwargs)
        except TypeError as exc:
            raise Problem(422, "invalid_arguments", str(exc)) from None
        data = self.load()
        workflow_id = workflow_id or f"wf-{len(data['runs']) + 1}"
        run_input = {"args": list(args), "kwargs": dict(kwargs)}
        existing = data["runs"].get(workflow_id)
        if existing is not None:
            if existing["workflow"] != workflow or existing["input"] != run_input:
                raise WorkflowConflict(workflow_id, f"{workflow_id!r} is taken")
            return self._view(workflow_id, existing)
        run: dict[str, Any] = {"workflow": workflow, "input": run_input}
        run.update(
            self._execute(fn, args, kwargs) if run_here else {"status": "pending"}
        )
        data["runs"][workflow_id] = run
        self.save(data)
        return self._view(workflow_id, run)

    def _execute(
        self, fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            return {
                "status": "failed",
                "error": {"type": type(exc).__name__, "message": str(exc)},
            }
        if isinstance(result, Wait):
            return {"status": "waiting", "waiting_for": result.what}
        return {"status": "succeeded", "result": result}

    def status(self, workflow_id: str) -> RunView:
        run = self.load()["runs"].get(workflow_id)
        if run is None:
            raise WorkflowNotFound(workflow_id)
        return self._view(workflow_id, run)

    def send_event(
        self, workflow_id: str, name: str, payload: Any, *, event_id: str | None
    ) -> bool:
        data = self.load()
        run = data["runs"].get(workflow_id)
        if run is None:
            raise WorkflowNotFound(workflow_id)
        if run["status"] in ("succeeded", "failed", "cancelled"):
            return False
        seen = {e["event_id"] for e in data["events"] if e["event_id"]}
        if event_id is not None and event_id in seen:
            return True
        data["events"].append(
            {"workflow_id": workflow_id, "name": name, "event_id": event_id}
        )
        if run.get("waiting_for") == f"event:{name}":
            run.update(status="succeeded", result=payload, waiting_for=None)
        self.save(data)
        return True

    def cancel(self, workflow_id: str) -> RunView:
        data = self.load()
        run = data["runs"].get(workflow_id)
        if run is None:
            raise WorkflowNotFound(workflow_id)
        if run["status"] not in ("succeeded", "failed"):
            run.update(status="cancelled", waiting_for=None)
            self.save(data)
        return self._view(workflow_id, run)

    def call_entity(
        self,
        entity: str,
        key: str,
        operation: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Any:
        fn = self.entities.get(f"{entity}.{operation}")
        if fn is None:
            raise Problem(404, "unknown_entity", f"no operation {entity}.{operation}")
        data = self.load()
        state = data["entities"].get(f"{entity}/{key}")
        state, result = fn(state, *args, **kwargs)
        data["entities"][f"{entity}/{key}"] = state
        self.save(data)
        return result

    def tick(self, budget_seconds: float) -> TickReport:
        data = self.load()
        ran = 0
        for run in data["runs"].values():
            if run["status"] == "pending":
                fn = self.workflows[run["workflow"]]
                run_input = run["input"]
                run.update(self._execute(fn, run_input["args"], run_input["kwargs"]))
                ran += 1
        data["ticks"].append(round(budget_seconds, 3))
        data.setdefault("pids", []).append(os.getpid())
        self.save(data)
        return TickReport(ran=ran, next_wake_up_seconds=self.next_wake_up_seconds)

    def _view(self, workflow_id: str, run: Mapping[str, Any]) -> RunView:
        return RunView(
            workflow_id=workflow_id,
            workflow=run["workflow"],
            status=run["status"],
            result=run.get("result"),
            error=run.get("error"),
            waiting_for=run.get("waiting_for"),
        )
