"""Queue messages that start workflows, on both store backends.

A worker acknowledges such a message in the transaction that inserts its
workflow, leased to itself, and runs the workflow at once; whatever that
path cannot settle goes the ordinary way (start, then acknowledge).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_placement_support import shard_urls

import stateshift as ss

RAN: list[int] = []


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    RAN.clear()
    application = ss.App(**store_config)
    yield application
    application.close()


def flow_of(app: ss.App, *, pause_seconds: float = 0.0) -> Any:
    @app.step()
    def count(n: int) -> int:
        RAN.append(n)
        if pause_seconds:
            time.sleep(pause_seconds)
        return n + 1

    @app.workflow(name="flow")
    def flow(n: int) -> int:
        return count(n) * 10

    return flow


def queue_workflows(app: ss.App) -> list[tuple[str, str, int]]:
    """``(workflow_id, status, epoch)`` of every workflow started by a message."""
    with app.store.read() as tx:
        rows = tx.fetchall(
            "SELECT workflow_id, status, epoch FROM {p}workflows "
            "WHERE workflow_id LIKE 'queue-' || ? ORDER BY workflow_id",
            ("%",),
        )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]


def test_a_workflow_message_is_acknowledged_with_its_workflow_and_run_in_the_pass(
    app: ss.App,
) -> None:
    flow = flow_of(app)
    q = app.queue("flows")
    ids = [q.enqueue(flow, n) for n in range(3)]

    summary = app.run_until_idle()

    assert (summary.messages, summary.finished) == (3, 3)
    assert [q.status(i) for i in ids] == ["done"] * 3
    for n, message_id in enumerate(ids):
        assert app.handle(f"queue-{message_id}").result() == (n + 1) * 10
    # Inserted leased at epoch 1 and run there: no claim came in between.
    assert [(s, e) for _, s, e in queue_workflows(app)] == [("succeeded", 1)] * 3
    assert sorted(RAN) == [0, 1, 2]


def test_a_message_whose_workflow_insert_fails_is_not_acknowledged(
    app: ss.App, backend: str
) -> None:
    flow = flow_of(app)
    q = app.queue("flows", max_attempts=1)
    # The database itself refuses the insert of any workflow a message starts.
    with app.store.transaction() as tx:
        if backend == "sqlite":
            tx.execute(
                "CREATE TRIGGER {p}t_refuse BEFORE INSERT ON {p}workflows "
                "WHEN substr(NEW.workflow_id, 1, 6) = 'queue-' "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            tx.execute(
                "CREATE FUNCTION {p}t_refuse() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN IF left(NEW.workflow_id, 6) = 'queue-' THEN "
                "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
            )
            tx.execute(
                "CREATE TRIGGER t_refuse BEFORE INSERT ON {p}workflows "
                "FOR EACH ROW EXECUTE FUNCTION {p}t_refuse()"
            )
    message_id = q.enqueue(flow, 7)

    assert q.work(5) == 1

    assert q.status(message_id) == "dead"
    with app.store.read() as tx:
        row = tx.fetchone(
            "SELECT attempts, last_error FROM {p}queue_messages WHERE id = ?",
            (message_id,),
        )
    assert row is not None and row[0] == 1 and "refused by the test" in row[1]
    assert queue_workflows(app) == []
    assert RAN == []

    with app.store.transaction() as tx:
        tx.execute(
            "DROP TRIGGER t_refuse"
            if backend == "sqlite"
            else "DROP TRIGGER t_refuse ON {p}workflows"
        )
    assert q.redrive(message_id) == 1
    app.run_until_idle()
    assert q.status(message_id) == "done"
    assert queue_workflows(app) == [(f"queue-{message_id}", "succeeded", 1)]
    assert RAN == [7]


def test_a_duplicate_message_still_yields_one_workflow(app: ss.App) -> None:
    flow = flow_of(app)
    q = app.queue("flows")
    first = q.enqueue(flow, 1, dedup_id="order-1")
    assert q.enqueue(flow, 1, dedup_id="order-1") == first

    app.run_until_idle()
    assert q.enqueue(flow, 1, dedup_id="order-1") == first
    app.run_until_idle()

    assert queue_workflows(app) == [(f"queue-{first}", "succeeded", 1)]
    assert RAN == [1]


def test_a_message_whose_workflow_already_exists_runs_that_workflow_once(
    app: ss.App,
) -> None:
    flow = flow_of(app)
    q = app.queue("flows")
    message_id = q.enqueue(flow, 4)
    other = q.enqueue(flow, 5)
    # As an older worker leaves it: the workflow started, the ack lost.
    app.start(flow, 4, workflow_id=f"queue-{message_id}")

    summary = app.run_until_idle()

    assert summary.messages == 2
    assert [q.status(message_id), q.status(other)] == ["done", "done"]
    assert [(w, s) for w, s, _ in queue_workflows(app)] == sorted(
        [(f"queue-{message_id}", "succeeded"), (f"queue-{other}", "succeeded")]
    )
    assert sorted(RAN) == [4, 5]


def test_a_message_whose_workflow_id_holds_another_input_is_not_acknowledged(
    app: ss.App,
) -> None:
    flow = flow_of(app)
    q = app.queue("flows", max_attempts=1)
    message_id = q.enqueue(flow, 4)
    app.start(flow, 99, workflow_id=f"queue-{message_id}")

    app.run_until_idle()

    assert q.status(message_id) == "dead"
    dead = q.dead()
    assert "WorkflowConflict" in str(dead[0]["last_error"])
    assert app.handle(f"queue-{message_id}").result() == 1000
    assert RAN == [99]


def test_workflows_a_worker_cannot_reach_while_their_leases_are_fresh_go_back(
    store_config: dict[str, Any],
) -> None:
    RAN.clear()
    # Each step outlasts a third of the lease: after the first workflow of
    # the batch, the others' leases are no longer fresh.
    app = ss.App(**store_config, lease_seconds=0.6)
    try:
        flow = flow_of(app, pause_seconds=0.3)
        q = app.queue("flows")
        ids = [q.enqueue(flow, n) for n in range(3)]

        assert q.work(30) == 3

        states = [s for _, s, _ in queue_workflows(app)]
        assert sorted(states) == ["pending", "pending", "succeeded"]
        assert len(RAN) == 1
        summary = app.run_until_idle()
        assert summary.finished == 2
        assert [q.status(i) for i in ids] == ["done"] * 3
        assert [s for _, s, _ in queue_workflows(app)] == ["succeeded"] * 3
        assert sorted(RAN) == [0, 1, 2]
    finally:
        app.close()


def test_a_limited_queue_starts_its_workflows_within_its_limits(app: ss.App) -> None:
    flow = flow_of(app)
    q = app.queue("flows", concurrency=1, ordered=True)
    ids = [q.enqueue(flow, n, key="same") for n in range(3)]

    summary = app.run_until_idle()

    assert (summary.messages, summary.finished) == (3, 3)
    assert [q.status(i) for i in ids] == ["done"] * 3
    assert sorted(RAN) == [0, 1, 2]


def test_a_workflow_whose_shard_is_another_store_is_started_the_ordinary_way(
    backend: str, tmp_path: Path
) -> None:
    RAN.clear()
    with shard_urls(backend, tmp_path, {"local": 2}) as urls:
        app = ss.App(regions=urls, region="local")
        try:
            flow = flow_of(app)
            q = app.queue("flows")
            shards = app.placement.maps["local"]
            wanted = set(shards.shard_ids)
            ids: list[str] = []
            # Messages until their workflows land on both shards.
            while wanted:
                message_id = q.enqueue(flow, len(ids))
                ids.append(message_id)
                wanted.discard(shards.shard_for(f"queue-{message_id}"))

            summary = app.run_until_idle()

            assert summary.messages == len(ids)
            assert [q.status(i) for i in ids] == ["done"] * len(ids)
            for n, message_id in enumerate(ids):
                info = app.status(f"queue-{message_id}")
                assert info.status == ss.WorkflowStatus.SUCCEEDED
                assert info.result == (n + 1) * 10
            assert sorted(RAN) == list(range(len(ids)))
        finally:
            app.close()


def test_workers_in_parallel_claim_each_message_once_without_limits(
    store_config: dict[str, Any],
) -> None:
    import threading

    RAN.clear()
    apps = [ss.App(**store_config, worker_id=f"w{k}") for k in range(4)]
    try:
        lock = threading.Lock()
        seen: list[int] = []
        flows, notes = [], []
        for application in apps:
            flows.append(flow_of(application))

            def note(n: int) -> None:
                with lock:
                    seen.append(n)

            notes.append(application.queue("mixed").task(note, name="mixed.note"))

        q0 = apps[0].queue("mixed")
        tasks = [q0.enqueue(notes[0], n) for n in range(40)]
        started = [q0.enqueue(flows[0], n) for n in range(40)]
        workers = [
            threading.Thread(target=application.run_until_idle) for application in apps
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

        assert sorted(seen) == list(range(40))
        assert sorted(RAN) == list(range(40))
        assert [q0.status(i) for i in tasks + started] == ["done"] * 80
        assert [s for _, s, _ in queue_workflows(apps[0])] == ["succeeded"] * 40
    finally:
        for application in apps:
            application.close()
