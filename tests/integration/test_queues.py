"""Durable queues on both store backends."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

import stateshift as ss
from stateshift.events._units import commit
from stateshift.unit import Unit, current_unit, unit_scope


@dataclasses.dataclass
class Invoice:
    number: int
    due: date


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config)
    with application.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}t_effects (k TEXT PRIMARY KEY, n INTEGER)")
    yield application
    application.close()


def bump(key: str) -> None:
    unit = current_unit()
    assert unit is not None

    def write(tx: Any) -> None:
        if not tx.execute("UPDATE {p}t_effects SET n = n + 1 WHERE k = ?", (key,)):
            tx.execute("INSERT INTO {p}t_effects (k, n) VALUES (?, 1)", (key,))

    unit.add(write)


def effects(app: ss.App, key: str) -> int:
    with app.store.read() as tx:
        row = tx.fetchone("SELECT n FROM {p}t_effects WHERE k = ?", (key,))
    return int(row[0]) if row else 0


def test_an_enqueued_message_runs_once_and_commits_its_effects(app: ss.App) -> None:
    emails = app.queue("emails")
    seen = []

    @emails.task
    def send(to: str, *, subject: str) -> None:
        seen.append((to, subject))
        bump(to)

    message_id = emails.enqueue(send, "ada@example.com", subject="hi")
    assert emails.status(message_id) == "ready"
    assert app.run_queues(budget=5) == 1
    assert app.run_queues(budget=5) == 0
    assert seen == [("ada@example.com", "hi")]
    assert effects(app, "ada@example.com") == 1
    assert emails.status(message_id) == "done"
    assert emails.counts() == {"done": 1}


def test_a_dedup_id_used_twice_adds_one_message(app: ss.App) -> None:
    q = app.queue("q")

    @q.task
    def work(n: int) -> None:
        bump("dedup")

    first = q.enqueue(work, 1, dedup_id="order-1")
    assert q.enqueue(work, 1, dedup_id="order-1") == first
    q.work(5)
    assert effects(app, "dedup") == 1


def test_only_registered_functions_can_be_enqueued(app: ss.App) -> None:
    q = app.queue("q")

    def stranger() -> None:
        pass

    with pytest.raises(ss.QueueError, match="not a registered task"):
        q.enqueue(stranger)


def test_a_message_naming_an_unknown_task_goes_dead_without_running(
    app: ss.App,
) -> None:
    q = app.queue("q")

    @q.task(name="gone.task")
    def gone() -> None:
        pass

    message_id = q.enqueue(gone)
    from stateshift.events._registry import registry_of

    del registry_of(app).tasks["gone.task"]
    q.work(5)
    assert q.status(message_id) == "dead"
    assert "no task named 'gone.task'" in q.dead()[0]["last_error"]


def test_a_poison_message_is_dead_lettered_while_healthy_ones_flow(
    app: ss.App,
) -> None:
    q = app.queue("orders", max_attempts=3, backoff=0)
    attempts: list[int] = []

    @q.task
    def handle(n: int) -> None:
        if n == -13:
            attempts.append(n)
            raise ValueError("cannot parse order 13")
        bump("healthy")

    poison = q.enqueue(handle, -13)
    for n in range(20):
        q.enqueue(handle, n)
    for _ in range(5):
        q.work(5)
    assert len(attempts) == 3
    assert effects(app, "healthy") == 20
    dead = q.dead()
    assert [d["id"] for d in dead] == [poison]
    assert dead[0]["attempts"] == 3
    assert dead[0]["last_error"] == "ValueError: cannot parse order 13"

    assert q.redrive() == 1
    assert q.status(poison) == "ready"
    q.work(5)
    assert len(attempts) == 6, "a redriven message gets fresh attempts"
    assert q.status(poison) == "dead"


def test_a_failed_attempt_rolls_its_effects_back_and_retries_later(
    app: ss.App,
) -> None:
    q = app.queue("q", backoff=0.3)
    calls = []

    @q.task
    def flaky() -> None:
        calls.append(time.monotonic())
        bump("flaky")
        if len(calls) == 1:
            raise RuntimeError("transient")

    q.enqueue(flaky)
    q.work(5)
    assert effects(app, "flaky") == 0
    q.work(5)
    assert len(calls) == 1, "the retry waits out its backoff"
    time.sleep(0.35)
    q.work(5)
    assert len(calls) == 2
    assert effects(app, "flaky") == 1


def test_an_expired_claim_is_redelivered_and_the_late_ack_is_fenced(
    app: ss.App,
) -> None:
    q = app.queue("q", visibility_timeout=0.2)
    runs = []

    @q.task
    def task() -> None:
        runs.append(1)
        bump("fenced")

    message_id = q.enqueue(task)
    stale = q.claim(1)
    assert len(stale) == 1
    assert q.claim(1) == []  # invisible while claimed
    time.sleep(0.25)
    fresh = q.claim(1)
    assert [m.id for m in fresh] == [message_id]
    assert fresh[0].attempt == 2
    assert q.run(stale[0]) is False  # the first worker woke up too late
    assert effects(app, "fenced") == 0
    assert q.run(fresh[0]) is True
    assert effects(app, "fenced") == 1
    assert len(runs) == 2


def test_concurrency_limits_messages_in_flight_across_workers(app: ss.App) -> None:
    q = app.queue("q", concurrency=2)

    @q.task
    def task(n: int) -> None:
        pass

    for n in range(5):
        q.enqueue(task, n)
    first = q.claim(10)
    assert len(first) == 2
    assert q.claim(10) == []
    q.run(first[0])
    assert len(q.claim(10)) == 1


def test_rate_limit_caps_claims_per_second(app: ss.App) -> None:
    q = app.queue("q", rate_limit=3)

    @q.task
    def task(n: int) -> None:
        pass

    for n in range(10):
        q.enqueue(task, n)
    assert q.work(0.5) == 3
    time.sleep(1.05)
    assert q.work(0.5) == 3


def test_ordered_keys_run_one_at_a_time_in_enqueue_order(app: ss.App) -> None:
    q = app.queue("q", ordered=True, backoff=0.2)
    order: list[tuple[str, int]] = []
    failed = []

    @q.task
    def step(account: str, n: int) -> None:
        if (account, n) == ("a", 1) and not failed:
            failed.append(1)
            raise RuntimeError("first try fails")
        order.append((account, n))

    for n in range(3):
        q.enqueue(step, "a", n, key="a")
        q.enqueue(step, "b", n, key="b")
    claimed = q.claim(10)
    assert sorted(m.key or "" for m in claimed) == ["a", "b"]
    for message in claimed:
        q.run(message)
    q.work(5)
    # a1 failed and waits out its backoff: a2 must not overtake it
    assert ("a", 2) not in order
    assert [n for k, n in order if k == "b"] == [0, 1, 2]
    time.sleep(0.25)
    q.work(5)
    assert [n for k, n in order if k == "a"] == [0, 1, 2]


def test_key_concurrency_limits_one_tenant_not_the_others(app: ss.App) -> None:
    q = app.queue("q", key_concurrency=2)

    @q.task
    def task(n: int) -> None:
        pass

    for n in range(5):
        q.enqueue(task, n, key="big-tenant")
    q.enqueue(task, 99, key="small-tenant")
    claimed = q.claim(10)
    keys = sorted(m.key or "" for m in claimed)
    assert keys == ["big-tenant", "big-tenant", "small-tenant"]


def test_priority_and_delay_decide_what_runs_first(app: ss.App) -> None:
    q = app.queue("q")
    order = []

    @q.task
    def task(name: str) -> None:
        order.append(name)

    q.enqueue(task, "low")
    q.enqueue(task, "high", priority=10)
    q.enqueue(task, "later", priority=99, delay=0.3)
    q.work(5)
    assert order == ["high", "low"]
    time.sleep(0.35)
    q.work(5)
    assert order == ["high", "low", "later"]


def test_a_message_enqueued_in_a_unit_exists_only_once_it_commits(
    app: ss.App,
) -> None:
    q = app.queue("q")

    @q.task
    def task() -> None:
        bump("unit")

    unit = Unit(app.store)
    with unit_scope(unit):
        message_id = q.enqueue(task)
    assert q.status(message_id) is None
    commit(app.store, unit)
    assert q.status(message_id) == "ready"


def test_a_task_can_enqueue_and_publish_in_its_own_commit(app: ss.App) -> None:
    q = app.queue("q")
    got = []

    @q.task
    def second(n: int) -> None:
        got.append(n)

    @q.task
    def first(n: int) -> None:
        q.enqueue(second, n + 1)
        app.publish("numbers", n)

    @app.subscribe("numbers")
    def on_number(n: int) -> None:
        got.append(-n)

    q.enqueue(first, 1)
    app.run_queues(budget=5)
    app.relay_outbox()
    assert sorted(got) == [-1, 2]


def test_async_tasks_run_too(app: ss.App) -> None:
    q = app.queue("q")

    @q.task
    async def task(n: int) -> None:
        bump(f"async{n}")

    q.enqueue(task, 1)
    q.work(5)
    assert effects(app, "async1") == 1


def test_declaring_a_queue_twice_with_other_options_fails(app: ss.App) -> None:
    assert app.queue("q", concurrency=2) is app.queue("q", concurrency=2)
    with pytest.raises(ss.QueueError):
        app.queue("q", concurrency=3)
    with pytest.raises(ValueError):
        app.queue("bad", concurrency=0)


def test_done_messages_can_be_pruned(app: ss.App) -> None:
    q = app.queue("q")

    @q.task
    def task() -> None:
        pass

    q.enqueue(task, dedup_id="once")
    q.work(5)
    assert app.prune_queues(older_than=3600) == 0
    time.sleep(0.01)  # the database clock has millisecond steps
    assert app.prune_queues(older_than=0) == 1
    assert q.counts() == {}


def test_enqueueing_a_workflow_function_starts_that_workflow(app: ss.App) -> None:
    q = app.queue("q")

    @app.workflow()
    def onboarding(user: str) -> str:
        return f"welcome {user}"

    message_id = q.enqueue(onboarding, "ada")
    assert q.work(5) == 1
    app.run_until_idle()
    assert app.handle(f"queue-{message_id}").result(timeout=10) == "welcome ada"


def test_workers_in_parallel_respect_concurrency_and_run_each_message_once(
    store_config: dict[str, Any],
) -> None:
    import threading

    app = ss.App(**store_config, pool_size=4)
    q = app.queue("parallel", concurrency=2)
    lock = threading.Lock()
    running, peak, seen = [0], [0], []

    @q.task
    def task(n: int) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.005)
        with lock:
            running[0] -= 1
            seen.append(n)

    for n in range(40):
        q.enqueue(task, n)
    workers = [threading.Thread(target=q.work, args=(20,)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    app.close()
    assert sorted(seen) == list(range(40))
    assert peak[0] <= 2


def test_arguments_are_checked_at_enqueue_and_typed_when_run(app: ss.App) -> None:
    q = app.queue("q")
    got = []

    @q.task
    def send(invoice: Invoice, copies: int = 1) -> None:
        got.append((invoice, copies))

    with pytest.raises(TypeError, match="send"):
        q.enqueue(send, Invoice(1, date(2030, 1, 2)), 2, 3)
    q.enqueue(send, Invoice(7, date(2030, 1, 2)), copies=2)
    q.work(5)
    assert got == [(Invoice(7, date(2030, 1, 2)), 2)]
