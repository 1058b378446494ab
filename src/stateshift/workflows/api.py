"""The workflow methods of :class:`stateshift.App`.

Register with ``@app.step`` and ``@app.workflow``; start with ``app.start``
or ``app.run``; drive due work with ``app.run_until_idle`` or ``app.tick``;
look with ``app.status``; steer with ``send_event``, ``cancel`` and
``resume``. Methods ending in ``_async`` run the same call off the event
loop.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from stateshift._durations import Duration, optional_seconds
from stateshift.errors import WorkflowConflict
from stateshift.workflows._registry import (
    DEFINITION_ATTRIBUTE,
    StepDef,
    WorkflowDef,
    definition_of,
    make_step,
    short_name,
)
from stateshift.workflows.clock import Clock, system_clock
from stateshift.workflows.retry import RetryPolicy

# The engine, the runner and placement are imported on first use, not when
# the app is built or a function registered: that is the cold start of
# every serverless instance (tests/test_cold_import.py keeps it so).
if TYPE_CHECKING:
    from stateshift.codec import Codec
    from stateshift.config import Settings
    from stateshift.placement.scope import Home
    from stateshift.store import Store
    from stateshift.workflows._engine import Engine
    from stateshift.workflows.handle import WorkflowHandle
    from stateshift.workflows.status import (
        EventDelivery,
        IdleSummary,
        WorkflowInfo,
    )

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")


class WorkflowsMixin:
    """Durable workflows and steps, as methods of the app."""

    if TYPE_CHECKING:
        settings: Settings
        worker_id: str
        codec: Codec

        @property
        def store(self) -> Store: ...

    def __init__(
        self,
        *args: Any,
        clock: Clock | None = None,
        default_retry: RetryPolicy | None = None,
        **kwargs: Any,
    ) -> None:
        """Take the workflow options, pass the rest on to the other parts.

        Args:
            clock: what timers read (epoch seconds); tests pass a
                :class:`~stateshift.workflows.clock.ManualClock`.
            default_retry: the retry policy of steps that name none.
        """
        super().__init__(*args, **kwargs)
        self.clock: Clock = clock or system_clock
        """What timers read; leases use the database clock instead."""
        self.default_retry: RetryPolicy = default_retry or RetryPolicy()
        """The retry policy of steps registered without one."""
        self._workflow_definitions: dict[str, WorkflowDef] = {}
        self._engine: Engine | None = None
        self._engine_lock = threading.Lock()

    @property
    def _workflow_engine(self) -> Engine:
        """The engine, made (and its modules imported) on first use."""
        engine = self._engine
        if engine is None:
            with self._engine_lock:
                if self._engine is None:
                    from stateshift.workflows._engine import Engine

                    self._engine = Engine(self)
                engine = self._engine
        return engine

    # --- registration -----------------------------------------------------

    def step(
        self,
        *,
        name: str | None = None,
        retry: RetryPolicy | None = None,
        timeout: Duration | None = None,
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Make a function a step: checkpointed, retried, run at most once
        per success.

        Args:
            name: the name in history (default: the function's qualified name).
            retry: the retry policy (default: ``app.default_retry``).
            timeout: the limit of one attempt. A synchronous step then runs in
                a thread; a late result is abandoned, never recorded.
        """
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise TypeError("retry must be a stateshift.RetryPolicy")
        timeout_seconds = optional_seconds(timeout, name="timeout")
        if timeout_seconds == 0:
            raise ValueError("a step timeout must be more than zero")

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            if not callable(fn):
                raise TypeError("@app.step() decorates a function")
            from stateshift.workflows.telemetry import instrument_step

            step_name = name or short_name(fn)
            traced = instrument_step(fn, step_name)
            definition = StepDef(step_name, traced, retry, timeout_seconds)
            return make_step(definition)

        return decorate

    def workflow(
        self, *, name: str | None = None, timeout: Duration | None = None
    ) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Make a function a durable workflow.

        Args:
            name: the stored name (default: ``module.qualname``); keep it
                stable while workflows of it are running.
            timeout: the overall limit, from start to end, on the app clock.
        """
        timeout_seconds = optional_seconds(timeout, name="timeout")

        def decorate(fn: Callable[P, R]) -> Callable[P, R]:
            if not callable(fn):
                raise TypeError("@app.workflow() decorates a function")
            stored = name or f"{fn.__module__}.{short_name(fn)}"
            if stored in self._workflow_definitions:
                raise ValueError(f"a workflow named {stored!r} is already registered")
            from stateshift.workflows.telemetry import instrument_workflow

            traced = instrument_workflow(fn, stored)
            definition = WorkflowDef(stored, traced, timeout_seconds)
            self._workflow_definitions[stored] = definition
            setattr(fn, DEFINITION_ATTRIBUTE, definition)
            if traced is not fn:
                # Code that holds the definition's function (the HTTP API)
                # starts workflows with it: it must lead back here too.
                setattr(traced, DEFINITION_ATTRIBUTE, definition)
            return fn

        return decorate

    # --- starting ---------------------------------------------------------

    def start(
        self,
        fn: Callable[..., Any],
        *args: Any,
        workflow_id: str | None = None,
        residency: str | None = None,
        tenant: str | None = None,
        partition_key: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """Start a workflow (one durable insert) and return its handle at once.

        Reusing ``workflow_id`` with the same function and input returns the
        existing workflow's handle. The row goes to the shard that
        ``partition_key`` (default: the workflow id) picks in the home
        region of its residency tag (``residency=``, or ``tenant=``'s).

        Raises:
            WorkflowConflict: the id belongs to another function or input.
            ResidencyViolation: the policy refuses the start; nothing is
                written, and the attempt is audited.
        """
        from stateshift.placement.scope import home_scope
        from stateshift.workflows import _placement
        from stateshift.workflows.handle import WorkflowHandle

        workflow_id = _new_id(workflow_id)
        home = _placement.start_home(
            self, workflow_id, residency, tenant, partition_key
        )
        with home_scope(home):
            definition, row = self._prepare(fn, args, kwargs, workflow_id, leased=False)
            existing = self._workflow_engine.insert(row)
        if existing is not None:
            self._check_same(row, existing)
        return WorkflowHandle(self, row[0], definition)

    def run(
        self,
        fn: Callable[..., Any],
        *args: Any,
        workflow_id: str | None = None,
        residency: str | None = None,
        tenant: str | None = None,
        partition_key: str | None = None,
        time_budget: Duration | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """Start a workflow and run it here until it ends or waits.

        Placed and checked as by :meth:`start`. With ``time_budget`` (an HTTP
        request's deadline, say) no step is started that cannot finish in
        it: the workflow is handed back, due at once, for the next tick.

        Raises:
            WorkflowConflict: the id belongs to another function or input.
            LeaseLost: another worker took the workflow over meanwhile.
            ResidencyViolation: the policy refuses the start.
        """
        from stateshift.placement.scope import home_scope
        from stateshift.workflows import _placement

        workflow_id = _new_id(workflow_id)
        home = _placement.start_home(
            self, workflow_id, residency, tenant, partition_key
        )
        budget_seconds = optional_seconds(time_budget, name="time_budget")
        with home_scope(home):
            return self._run_here(fn, args, kwargs, workflow_id, budget_seconds)

    def _run_here(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str,
        budget_seconds: float | None = None,
    ) -> WorkflowHandle[Any]:
        from stateshift.placement.scope import home_scope
        from stateshift.workflows import _placement
        from stateshift.workflows._context import Invocation, WorkflowContext
        from stateshift.workflows._runner import execute, run_claim
        from stateshift.workflows.handle import WorkflowHandle

        definition, row = self._prepare(fn, args, kwargs, workflow_id, leased=True)
        engine = self._workflow_engine
        # Held from before the insert: the row is leased to this worker, and
        # no claim of this process taking back old leases may take it.
        engine.hold(row[0])
        try:
            existing = engine.insert(row)
        except BaseException:
            engine.drop(row[0])
            raise
        error: BaseException | None = None
        if existing is not None:
            engine.drop(row[0])
        if existing is None:
            ctx = WorkflowContext(
                engine,
                definition,
                row[0],
                1,
                [],
                cancel_requested=False,
                deadline_at=row[11],
                parent_id=None,
                invocation=Invocation(budget_seconds),
            )
            try:
                args_, kwargs_ = definition.decode_input(self.codec, row[2])
                _, error = execute(ctx, args_, kwargs_)
            finally:
                engine.drop(row[0])
        else:
            self._check_same(row, existing)
            home, _ = _placement.locate(self, row[0], "claim")
            with home_scope(home):
                claim = engine.claim_id(row[0])
            _placement.flush_audits(self)
            if claim is not None:
                with _placement.workflow_scope(home, claim.placed, claim.workflow_id):
                    _, error = run_claim(self, claim, Invocation(budget_seconds))
        if error is not None:
            raise error
        return WorkflowHandle(self, row[0], definition)

    def _prepare(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        workflow_id: str | None,
        *,
        leased: bool,
    ) -> tuple[WorkflowDef, tuple[Any, ...]]:
        definition = self.definition_of(fn)
        workflow_id = _new_id(workflow_id)
        data, digest = definition.encode_input(self.codec, args, kwargs)
        row = self._workflow_engine.insert_row(
            workflow_id,
            definition.name,
            data,
            digest,
            leased=leased,
            timeout_seconds=definition.timeout_seconds,
        )
        return definition, row

    def definition_of(self, fn: Callable[..., Any]) -> WorkflowDef:
        """This app's definition of a workflow function.

        Raises:
            TypeError: ``fn`` is not a workflow registered on this app.
        """
        name = definition_of(fn).name
        definition = self._workflow_definitions.get(name)
        if definition is None:
            raise TypeError(
                f"workflow {name!r} is not registered on this app: decorate it "
                "with this app's @app.workflow()"
            )
        return definition

    @staticmethod
    def _check_same(row: tuple[Any, ...], existing: tuple[str, str, str]) -> None:
        name, digest, _ = existing
        if name != row[1] or digest != row[3]:
            what = "function" if name != row[1] else "input"
            raise WorkflowConflict(
                row[0],
                f"workflow id {row[0]!r} is already used by a workflow with another "
                f"{what} ({name!r}); pick a new id, or start it with the same "
                "function and input to get its handle",
            )

    # --- running due work -------------------------------------------------

    def run_until_idle(self) -> IdleSummary:
        """Run every due workflow, including what becomes due meanwhile.

        Never sleeps: returns as soon as nothing is due, telling when the
        next timer is (``next_wake_at``, on the app clock).
        """
        from stateshift.workflows._runner import run_due, summary_of

        wake_at = self._before_due_work()
        total: IdleSummary | None = None
        messages = 0
        while True:
            summary = run_due(self, None)
            total = summary if total is None else _added(total, summary)
            # Messages may start or wake workflows, and workflows may enqueue
            # messages: go round until a pass finds no message due.
            ran, started = self._run_due_messages(None)
            messages += ran
            if started:
                total = _added(summary_of(started), total)
            if not ran:
                break
        return _sooner(dataclasses.replace(total, messages=messages), wake_at)

    def tick(self, budget: Duration) -> IdleSummary:
        """Run due work within ``budget``; starts no step that cannot fit.

        Claims nothing new once the budget is nearly spent; a workflow whose
        next step would not fit is handed back, due at once, for the next
        invocation.
        """
        seconds = optional_seconds(budget, name="budget")
        assert seconds is not None
        from stateshift.workflows._runner import run_due, summary_of

        deadline = time.monotonic() + seconds
        wake_at = self._before_due_work()
        summary = run_due(self, seconds)
        left = deadline - time.monotonic()
        messages = 0
        if left > 0:
            messages, started = self._run_due_messages(left)
            if started:
                summary = _added(summary_of(started), summary)
        return _sooner(dataclasses.replace(summary, messages=messages), wake_at)

    if TYPE_CHECKING:

        def _run_due_messages(
            self, budget_seconds: float | None
        ) -> tuple[int, Counter[str]]:
            """Run due queue messages (stateshift.app.AppBase, events layer)."""

    def _before_due_work(self) -> float | None:
        """A hook run at the start of every tick and ``run_until_idle``.

        Other parts start their due work here (schedules start slots) and
        return their next wake-up on the app clock, or ``None``.
        """
        return None

    # --- looking and steering --------------------------------------------

    def handle(self, workflow_id: str) -> WorkflowHandle[Any]:
        """A handle on an existing workflow (not checked until used)."""
        from stateshift.workflows.handle import WorkflowHandle

        return WorkflowHandle(self, workflow_id)

    def status(self, workflow_id: str) -> WorkflowInfo:
        """A snapshot of a workflow.

        Raises:
            WorkflowNotFound: no workflow has this id.
            ResidencyViolation: this region may not read the workflow's tag.
            DataErased: its result belongs to a forgotten data subject.
        """
        from stateshift.workflows import _placement
        from stateshift.workflows.status import (
            ErrorInfo,
            StepInfo,
            WorkflowInfo,
            WorkflowStatus,
        )

        def read(home: Home, _: Any) -> tuple[Any, list[Any]]:
            from stateshift.placement.scope import home_scope

            with home_scope(home):
                return self._workflow_engine.read_status(workflow_id)

        row, steps = _placement.on_located(self, workflow_id, "read", read)
        definition = self._workflow_definitions.get(row[1])
        result = None
        if row[3] is not None:
            result = self.codec.decode(
                bytes(row[3]),
                type_hint=definition.return_hint if definition else None,
                what=f"result of workflow {workflow_id!r}",
            )
        return WorkflowInfo(
            workflow_id=row[0],
            name=row[1],
            status=WorkflowStatus(row[2]),
            steps=tuple(
                StepInfo(
                    seq=s[0],
                    kind=s[1],
                    name=s[2],
                    status=s[3],
                    attempts=s[4],
                    started_at=s[5],
                    finished_at=s[6],
                    error=ErrorInfo(s[7], s[8] or "", s[9]) if s[7] else None,
                )
                for s in steps
            ),
            result=result,
            error=ErrorInfo(row[4], row[5] or "", row[6]) if row[4] else None,
            waiting_for=row[7] if row[2] == "waiting" else None,
            due_at=row[14],
            created_at=row[8],
            updated_at=row[9],
            finished_at=row[10],
            app_version=row[11],
            parent_id=row[12],
            recoveries=row[13],
        )

    def send_event(
        self,
        workflow_id: str,
        name: str,
        payload: Any = None,
        event_id: str | None = None,
    ) -> EventDelivery:
        """Send an event to a workflow, waking it if it waits for ``name``.

        Events queue first in, first out per name; a repeated ``event_id``
        is dropped.

        Raises:
            WorkflowNotFound: no workflow has this id.
        """
        if not isinstance(name, str) or not name:
            raise ValueError("an event name is a non-empty string")
        if event_id is not None and (not isinstance(event_id, str) or not event_id):
            raise ValueError("event_id must be a non-empty string or None")
        from stateshift.workflows import _placement

        def send(home: Home, placed: _placement.Placed) -> EventDelivery:
            # The payload is the workflow's data: sealed for its data subject.
            with _placement.workflow_scope(home, placed, workflow_id):
                data = self.codec.encode(payload, what=f"payload of event {name!r}")
                return self._workflow_engine.send_event(
                    workflow_id, name, data, event_id
                )

        return _placement.on_located(self, workflow_id, "write", send)

    def cancel(self, workflow_id: str) -> bool:
        """Cancel a workflow and its unfinished children.

        A running workflow unwinds at its next ``ss.*`` or step call; a
        waiting one is woken to do so. Returns False if it had ended.

        Raises:
            WorkflowNotFound: no workflow has this id.
        """
        from stateshift.placement.scope import home_scope
        from stateshift.workflows import _placement

        def cancel(home: Home, _: Any) -> bool:
            with home_scope(home):
                return self._workflow_engine.cancel(workflow_id)

        return _placement.on_located(self, workflow_id, "write", cancel)

    def resume(self, workflow_id: str) -> bool:
        """Make a dead, blocked or compensation-failed workflow run again.

        Returns False if it was in none of those states.

        Raises:
            WorkflowNotFound: no workflow has this id.
        """
        from stateshift.placement.scope import home_scope
        from stateshift.workflows import _placement

        def revive(home: Home, _: Any) -> bool:
            with home_scope(home):
                return self._workflow_engine.revive(workflow_id)

        return _placement.on_located(self, workflow_id, "write", revive)

    def _entity_operation_step(
        self, name: str, key: str, run: Callable[[], Any]
    ) -> Any:
        """Run entity operation ``name`` on ``key``; a step in workflow code.

        Called by :class:`~stateshift.state.entities.EntityRef`: from
        workflow code between steps the operation is checkpointed (run once,
        replayed after); elsewhere it is ``run()``.
        """
        from stateshift.workflows._steps import run_entity_operation

        return run_entity_operation(self, name, run)

    # --- async adapters ---------------------------------------------------

    async def start_async(
        self,
        fn: Callable[..., Any],
        *args: Any,
        workflow_id: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """:meth:`start`, off the event loop."""
        return await _off_loop(self.start, fn, *args, workflow_id=workflow_id, **kwargs)

    async def run_async(
        self,
        fn: Callable[..., Any],
        *args: Any,
        workflow_id: str | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle[Any]:
        """:meth:`run`, off the event loop."""
        return await _off_loop(self.run, fn, *args, workflow_id=workflow_id, **kwargs)

    async def send_event_async(
        self,
        workflow_id: str,
        name: str,
        payload: Any = None,
        event_id: str | None = None,
    ) -> EventDelivery:
        """:meth:`send_event`, off the event loop."""
        return await _off_loop(self.send_event, workflow_id, name, payload, event_id)

    async def status_async(self, workflow_id: str) -> WorkflowInfo:
        """:meth:`status`, off the event loop."""
        return await _off_loop(self.status, workflow_id)

    async def run_until_idle_async(self) -> IdleSummary:
        """:meth:`run_until_idle`, off the event loop."""
        return await _off_loop(self.run_until_idle)

    async def tick_async(self, budget: Duration) -> IdleSummary:
        """:meth:`tick`, off the event loop."""
        return await _off_loop(self.tick, budget)


def _added(first: IdleSummary, second: IdleSummary) -> IdleSummary:
    """Two passes of due work as one summary; the later pass knows the next wake."""
    return dataclasses.replace(
        second,
        ran=first.ran + second.ran,
        finished=first.finished + second.finished,
        suspended=first.suspended + second.suspended,
        released=first.released + second.released,
        lease_lost=first.lease_lost + second.lease_lost,
        interrupted=first.interrupted + second.interrupted,
        budget_exhausted=first.budget_exhausted or second.budget_exhausted,
    )


def _sooner(summary: IdleSummary, wake_at: float | None) -> IdleSummary:
    if wake_at is None or (
        summary.next_wake_at is not None and summary.next_wake_at <= wake_at
    ):
        return summary
    return dataclasses.replace(summary, next_wake_at=wake_at)


def _new_id(workflow_id: str | None) -> str:
    if workflow_id is None:
        import uuid

        return uuid.uuid4().hex
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ValueError("workflow_id must be a non-empty string")
    if len(workflow_id) > 200:
        raise ValueError("workflow_id must be at most 200 characters")
    return workflow_id


async def _off_loop(fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)
