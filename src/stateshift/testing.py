"""A test kit for users: jump time on the real engine, check replays in CI.

:class:`TestApp` is an :class:`~stateshift.App` on a temporary SQLite file
with a :class:`ManualClock`. ``app.advance(timedelta(days=30))`` moves the
clock through every timer due in that span, running due work at each, so a
workflow that sleeps for a month is tested in milliseconds, on the same
engine and store code as production::

    from datetime import timedelta
    from stateshift.testing import TestApp

    def test_trial_reminder():
        app = TestApp()
        ...register steps and workflows on app...
        app.run(trial, "u1", workflow_id="trial-u1")
        app.advance(timedelta(days=30))
        assert app.status("trial-u1").result == "reminded"

:func:`export_history` saves what a workflow recorded as JSON, and
:func:`replay_check` replays saved histories against the current code:
run it in CI so a change that would block running workflows (a step
renamed, removed or reordered without ``ss.patched``) fails a test before
it is deployed.
"""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from stateshift._durations import Duration, to_seconds
from stateshift.app import App
from stateshift.errors import NonDeterminismError, WorkflowNotFound
from stateshift.workflows._context import Invocation, Record, WorkflowContext
from stateshift.workflows._runner import execute
from stateshift.workflows._signals import Blocking
from stateshift.workflows.clock import ManualClock
from stateshift.workflows.status import IdleSummary

__all__ = [
    "HISTORY_FORMAT",
    "ManualClock",
    "ReplayResult",
    "TestApp",
    "export_history",
    "load_histories",
    "replay_check",
    "save_histories",
]

HISTORY_FORMAT = "stateshift-history/1"
"""The ``format`` field of exported histories."""


class TestApp(App):
    """An app on a temporary SQLite file with a manual clock.

    The file is removed by :meth:`close` (or at the end of a ``with``).
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    def __init__(
        self,
        store: str | None = None,
        *,
        start: float | None = None,
        **settings: Any,
    ) -> None:
        """Create the app.

        Args:
            store: a store URL to use instead of a temporary SQLite file.
            start: the clock's start, in epoch seconds (default: now).
            **settings: any other :class:`stateshift.App` option.
        """
        self._directory: str | None = None
        if store is None:
            self._directory = tempfile.mkdtemp(prefix="stateshift-test-")
            store = f"sqlite:///{Path(self._directory) / 'test.db'}"
        self.manual_clock = ManualClock(start)
        """The clock timers read; :meth:`advance` moves it."""
        super().__init__(store, clock=self.manual_clock, **settings)

    def advance(self, duration: Duration | timedelta) -> IdleSummary:
        """Move the clock forward by ``duration``, running due work on the way.

        The clock stops at each timer due within the span, so work that a
        wake-up schedules (another sleep, a retry, a child) runs at its own
        time, as it would in production.
        """
        clock = self.manual_clock
        target = clock() + to_seconds(duration, name="duration")
        summary = self.run_until_idle()
        while summary.next_wake_at is not None and summary.next_wake_at <= target:
            if summary.next_wake_at <= clock():
                # Due now yet not run (unknown code, another app version):
                # no point looping over it.
                break
            clock.set(summary.next_wake_at)
            summary = self.run_until_idle()
        clock.set(max(target, clock()))
        return self.run_until_idle()

    def close(self) -> None:
        """Close the store and remove the temporary file."""
        super().close()
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None


# --- histories -------------------------------------------------------------


def _blob_out(data: Any) -> dict[str, str] | None:
    if data is None:
        return None
    raw = bytes(data)
    try:
        return {"text": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}


def _blob_in(value: Mapping[str, str] | None) -> bytes | None:
    if value is None:
        return None
    if "text" in value:
        return value["text"].encode("utf-8")
    return base64.b64decode(value["base64"])


def export_history(app: App, workflow_id: str) -> dict[str, Any]:
    """What ``workflow_id`` recorded, as a JSON-ready dict.

    Raises:
        WorkflowNotFound: no workflow has this id.
    """
    queries = app.store.queries("ops")
    with app.store.read() as tx:
        row = tx.fetchone(queries["history_export"], (workflow_id,))
        if row is None:
            raise WorkflowNotFound(workflow_id)
        steps = tx.fetchall(queries["history_steps"], (workflow_id,))
    return {
        "format": HISTORY_FORMAT,
        "workflow_id": workflow_id,
        "name": row[0],
        "input": _blob_out(row[1]),
        "status": row[2],
        "app_version": row[3],
        "created_at": row[4],
        "updated_at": row[5],
        "steps": [
            {
                "seq": s[0],
                "kind": s[1],
                "name": s[2],
                "status": s[3],
                "attempts": s[4],
                "output": _blob_out(s[5]),
                "error_type": s[6],
                "error_message": s[7],
            }
            for s in steps
        ],
    }


def save_histories(app: App, workflow_ids: Iterable[str], path: str | Path) -> None:
    """Export the histories of ``workflow_ids`` into one JSON file."""
    histories = [export_history(app, workflow_id) for workflow_id in workflow_ids]
    Path(path).write_text(json.dumps(histories, indent=1, sort_keys=True) + "\n")


def load_histories(path: str | Path) -> list[dict[str, Any]]:
    """Read histories saved by :func:`save_histories`.

    Raises:
        ValueError: the file holds something else.
    """
    loaded = json.loads(Path(path).read_text())
    if not isinstance(loaded, list) or any(
        not isinstance(h, dict) or h.get("format") != HISTORY_FORMAT for h in loaded
    ):
        raise ValueError(f"{path} does not hold {HISTORY_FORMAT} histories")
    return loaded


@dataclass(frozen=True)
class ReplayResult:
    """How one history replayed against the current code."""

    workflow_id: str
    """The recorded workflow."""
    name: str
    """Its workflow name."""
    ok: bool
    """True when the code retraced the history exactly."""
    detail: str
    """What differed, or how far the replay got."""


def replay_check(
    app: App, histories: Iterable[Mapping[str, Any]], *, raise_on_failure: bool = True
) -> list[ReplayResult]:
    """Replay recorded histories against ``app``'s current code.

    Each history runs in a scratch store (never ``app``'s): recorded steps
    return their recorded results and nothing new is run, so the check
    has no effects. It stops where the history ends.

    Raises:
        NonDeterminismError: some history no longer replays (unless
            ``raise_on_failure`` is false); the message names each one.
    """
    directory = tempfile.mkdtemp(prefix="stateshift-replay-")
    scratch = App(
        f"sqlite:///{Path(directory) / 'replay.db'}",
        clock=ManualClock(0.0),
        encryption_keys=app.settings.encryption_keys,
        max_value_bytes=app.settings.max_value_bytes,
        worker_id="stateshift-replay",
    )
    # Steps run against whichever app drives the workflow; the scratch app
    # shares the definitions, so children and steps resolve there.
    scratch._workflow_definitions = app._workflow_definitions
    try:
        results = [_replay_one(scratch, history) for history in histories]
    finally:
        scratch.close()
        shutil.rmtree(directory, ignore_errors=True)
    failed = [r for r in results if not r.ok]
    if failed and raise_on_failure:
        raise NonDeterminismError(
            failed[0].workflow_id,
            "recorded histories no longer replay on this code:\n"
            + "\n".join(f"  {r.workflow_id} ({r.name}): {r.detail}" for r in failed),
        )
    return results


def _replay_one(scratch: App, history: Mapping[str, Any]) -> ReplayResult:
    workflow_id = str(history["workflow_id"])
    name = str(history["name"])
    definition = scratch._workflow_definitions.get(name)
    if definition is None:
        return ReplayResult(
            workflow_id, name, False, f"no workflow named {name!r} is registered"
        )
    assert isinstance(scratch.clock, ManualClock)
    scratch.clock.set(max(scratch.clock(), float(history.get("updated_at") or 0)))
    data = _blob_in(history["input"])
    assert data is not None
    engine = scratch._workflow_engine
    engine.insert(engine.insert_row(workflow_id, name, data, "replay", leased=True))
    records = [
        Record(
            int(step["seq"]),
            str(step["kind"]),
            str(step["name"]),
            str(step["status"]),
            int(step["attempts"]),
            _blob_in(step["output"]),
            step.get("error_type"),
            step.get("error_message"),
            None,
        )
        for step in history["steps"]
    ]
    ctx = WorkflowContext(
        engine,
        definition,
        workflow_id,
        1,
        records,
        cancel_requested=False,
        deadline_at=None,
        parent_id=None,
        # A spent budget: the first step past the history is not run.
        invocation=Invocation(0.0),
    )
    args, kwargs = definition.decode_input(scratch.codec, data)
    execute(ctx, args, kwargs)
    if isinstance(ctx.signal, Blocking):
        return ReplayResult(workflow_id, name, False, str(ctx.signal.error))
    if ctx.next_seq <= ctx.last_seq:
        return ReplayResult(
            workflow_id,
            name,
            False,
            f"the code took {ctx.next_seq} of the {ctx.last_seq + 1} recorded "
            "checkpoints and stopped: a step or wait was removed",
        )
    return ReplayResult(
        workflow_id, name, True, f"retraced {ctx.last_seq + 1} checkpoint(s)"
    )
