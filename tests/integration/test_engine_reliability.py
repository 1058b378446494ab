"""Store failures under checkpoints, and values over the payload limit.

A connection lost while a checkpoint commits leaves its outcome unknown:
the invocation stops as a crash would, and the replay finds the step if the
commit landed (the body does not run again) or runs it again if not. Either
way the step is recorded once and its effect happens once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from conftest import POSTGRES_URL, drop_schema, new_store_config
from stateshift.errors import StoreUnavailable
from stateshift.store.base import Store, Tx
from stateshift.workflows.clock import ManualClock


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config, clock=ManualClock(1_000_000.0))
    yield application
    application.close()


class _Spy:
    """A transaction that notes whether it wrote a checkpoint."""

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self.checkpoint = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._tx, name)

        def call(sql: str, *args: Any) -> Any:
            self.checkpoint = self.checkpoint or "INTO {p}workflow_steps" in sql
            return method(sql, *args)

        return call


def lose_next_checkpoint(store: Store, *, committed: bool) -> None:
    """Make the next checkpoint's connection fail before or after COMMIT.

    ``committed=True``: the server commits, the acknowledgement is lost.
    """
    armed = [True]
    transaction, execute_alone = store.transaction, store.execute_alone

    def lost() -> StoreUnavailable:
        armed[0] = False
        return StoreUnavailable("the connection dropped (test)")

    @contextmanager
    def failing_transaction() -> Iterator[Any]:
        with transaction() as tx:
            spy = _Spy(tx)
            yield spy
            if armed[0] and spy.checkpoint and not committed:
                raise lost()
        if armed[0] and spy.checkpoint:
            raise lost()

    def failing_execute_alone(sql: str, params: Any = ()) -> Any:
        if armed[0] and "INTO {p}workflow_steps" in sql:
            if not committed:
                raise lost()
            execute_alone(sql, params)
            raise lost()
        return execute_alone(sql, params)

    store.transaction = failing_transaction  # type: ignore[method-assign]
    store.execute_alone = failing_execute_alone  # type: ignore[method-assign]


def counted_flow(app: ss.App, runs: list[int]) -> Any:
    @app.step()
    def bump(n: int) -> int:
        runs.append(n)
        app.state("effects").update(f"e{n}", lambda count: (count or 0) + 1)
        return n

    @app.workflow()
    def flow() -> list[int]:
        return [bump(n) for n in range(3)]

    return flow


@pytest.mark.parametrize("committed", [True, False], ids=["after", "before"])
def test_a_connection_lost_at_commit_records_the_step_once(
    app: ss.App, committed: bool
) -> None:
    runs: list[int] = []
    flow = counted_flow(app, runs)
    handle = app.start(flow, workflow_id="w")
    lose_next_checkpoint(app.store, committed=committed)

    summary = app.run_until_idle()

    assert summary.interrupted == 1
    assert app.status("w").status is ss.WorkflowStatus.SUCCEEDED
    assert handle.result() == [0, 1, 2]
    # The body of step 0 runs again only if its commit did not land.
    assert runs == ([0, 1, 2] if committed else [0, 0, 1, 2])
    steps = app.status("w").steps
    assert [(s.seq, s.status) for s in steps] == [(0, "ok"), (1, "ok"), (2, "ok")]
    effects = app.state("effects")
    for n in range(3):
        item = effects.get(f"e{n}")
        assert item is not None and item.value == 1


def test_app_run_reports_a_lost_connection_and_the_workflow_recovers(
    app: ss.App,
) -> None:
    runs: list[int] = []
    flow = counted_flow(app, runs)
    lose_next_checkpoint(app.store, committed=True)
    with pytest.raises(StoreUnavailable):
        app.run(flow, workflow_id="w")
    app.run_until_idle()
    assert app.status("w").result == [0, 1, 2] and runs == [0, 1, 2]


@pytest.fixture
def postgres_config(tmp_path: Path) -> Iterator[dict[str, Any]]:
    config = new_store_config("postgresql", tmp_path)
    yield config
    drop_schema(config["schema"])


def test_a_postgres_backend_terminated_between_steps_interrupts_then_recovers(
    postgres_config: dict[str, Any],
) -> None:
    import psycopg

    app = ss.App(**postgres_config)
    runs: list[str] = []

    @app.step()
    def first() -> str:
        runs.append("first")
        if len(runs) > 1:
            return "one"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            # The app's one pooled connection dies under it (only that one:
            # other tests and processes share this server).
            admin.execute("SELECT pg_terminate_backend(%s)", (pool_pid[0],))
        return "one"

    @app.step()
    def second() -> str:
        runs.append("second")
        return "two"

    @app.workflow()
    def flow() -> list[str]:
        return [first(), second()]

    app.start(flow, workflow_id="w")
    with app.store.read() as tx:
        row = tx.fetchone("SELECT pg_backend_pid()")
    assert row is not None
    pool_pid = [int(row[0])]
    assert app.run_until_idle().interrupted == 1
    app.run_until_idle()
    info = app.status("w")
    assert info.result == ["one", "two"]
    assert [(s.name, s.status) for s in info.steps] == [
        ("first", "ok"),
        ("second", "ok"),
    ]
    # A checkpoint on a dead connection never reached the server: the step
    # that wrote it ran again, and was still recorded once.
    assert runs == ["first", "first", "second"]
    app.close()


def test_a_result_over_the_payload_limit_fails_its_step_at_once(
    store_config: dict[str, Any],
) -> None:
    app = ss.App(**store_config, max_value_bytes=1024)
    attempts: list[int] = []

    @app.step(retry=ss.RetryPolicy(max_attempts=5, initial_interval=0))
    def huge() -> str:
        attempts.append(1)
        return "x" * 10_000

    @app.workflow()
    def flow() -> str:
        try:
            huge()
        except ss.PayloadTooLarge as exc:
            return f"refused: {type(exc).__name__}"
        return "stored"

    assert app.run(flow, workflow_id="w").result() == "refused: PayloadTooLarge"
    assert attempts == [1]
    (step,) = app.status("w").steps
    assert (step.status, step.attempts) == ("error", 1)
    assert step.error is not None and "PayloadTooLarge" in step.error.type
    app.close()
