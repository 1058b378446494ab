"""Residency of queue messages and outbox rows, on regions of real stores.

Each region's shards are separate SQLite files or PostgreSQL databases.
EU may live and be processed only in ``eu``; US lives in ``us`` and may be
processed in both; GLOBAL and untagged data go anywhere. A worker "of
region us serving the eu store" is an app whose own store is eu's first
shard but whose region is ``us``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_placement_support import POLICY, count_rows, shard_urls

import stateshift as ss
from stateshift.app import App
from stateshift.errors import DataErased, ResidencyViolation
from stateshift.events.topics import Message
from stateshift.placement.checker import check_residency

RAN: list[tuple[str, str]] = []


def task_of(app: App, region: str, queue: str = "jobs") -> Any:
    """The task ``note`` of ``app``: records which region ran which message."""

    def note(label: Any) -> None:
        RAN.append((region, str(label)))

    return app.queue(queue).task(note, name="note")


@pytest.fixture
def urls(backend: str, tmp_path: Path) -> Iterator[dict[str, list[str]]]:
    with shard_urls(backend, tmp_path, {"eu": 2, "us": 1}) as shard_list:
        yield shard_list


@pytest.fixture
def opened() -> Iterator[list[App]]:
    apps: list[App] = []
    yield apps
    for app in apps:
        app.close()


def make_app(
    opened: list[App], urls: dict[str, list[str]], region: str, store: str | None = None
) -> App:
    app = App(store, regions=urls, region=region, residency_policy=POLICY)
    opened.append(app)
    return app


def messages_in(app: App, table: str, where: str = "") -> list[tuple[Any, ...]]:
    """``(region, residency)`` of every row of ``table`` on every shard."""
    found = []
    for region, _, store in app.placement.all_stores():
        with store.read() as tx:
            rows = tx.fetchall(f"SELECT residency FROM {{p}}{table} {where}")
        found.extend((region, str(row[0])) for row in rows)
    return sorted(found)


def test_a_refused_enqueue_or_publish_writes_nothing_and_is_audited_at_home(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    us = make_app(opened, urls, "us")
    jobs = us.queue("jobs")
    note = task_of(us, "us")

    with pytest.raises(ResidencyViolation) as refused:
        jobs.enqueue(note, "x", residency="EU", dedup_id="job-1")
    assert refused.value.operation == "enqueue"
    assert refused.value.key == "queue:jobs/job-1"
    with pytest.raises(ResidencyViolation):
        jobs.enqueue(note, "x", tenant="acme")
    with pytest.raises(ResidencyViolation):
        us.publish("orders", {"id": 1}, key="order-1", residency="EU")
    with pytest.raises(ResidencyViolation), us.transaction():
        us.publish("orders", {"id": 2}, key="order-2", tenant="acme")
    with pytest.raises(ResidencyViolation), us.data_subject("anna", residency="EU"):
        jobs.enqueue(note, "anna", key="anna")

    assert messages_in(us, "queue_messages") == []
    assert messages_in(us, "outbox") == []
    records = us.placement.audit_log.records()
    assert [(r.operation, r.key, r.tag, r.region) for r in records] == [
        ("enqueue", "queue:jobs/job-1", "EU", "us"),
        ("enqueue", records[1].key, "EU", "us"),
        ("enqueue", "topic:orders/order-1", "EU", "us"),
        ("enqueue", "topic:orders/order-2", "EU", "us"),
        ("enqueue", "queue:jobs/anna", "EU", "us"),
    ]
    assert records[1].key.startswith("queue:jobs/")
    # Each record went to the audit log of the data's home region.
    assert len(us.placement.audit_log.records(region="eu")) == 5
    assert us.placement.audit_log.records(region="us") == []

    # Allowed ones are stored with their tag; untagged ones as before.
    jobs.enqueue(note, "y", residency="US")
    jobs.enqueue(note, "z")
    us.publish("orders", {"id": 3}, tenant="globex")
    assert messages_in(us, "queue_messages") == [("us", ""), ("us", "US")]
    assert messages_in(us, "outbox") == [("us", "US")]


def test_a_message_is_checked_against_the_region_of_the_store_it_goes_to(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    # An eu process whose queues live in the us store may not put EU there.
    eu_on_us_store = make_app(opened, urls, "eu", store=urls["us"][0])
    jobs = eu_on_us_store.queue("jobs")
    note = task_of(eu_on_us_store, "eu")
    with pytest.raises(ResidencyViolation):
        jobs.enqueue(note, "x", residency="EU", key="k1")
    audit = eu_on_us_store.placement.audit_log.records()[-1]
    assert (audit.operation, audit.target_region, audit.home_region) == (
        "enqueue",
        "us",
        "eu",
    )
    jobs.enqueue(note, "x", residency="US")
    assert messages_in(eu_on_us_store, "queue_messages") == [("us", "US")]


def test_a_worker_leaves_messages_its_region_may_not_process_to_another_region(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    eu = make_app(opened, urls, "eu")
    us_worker = make_app(opened, urls, "us", store=urls["eu"][0])
    note = task_of(eu, "eu")
    task_of(us_worker, "us")
    jobs = eu.queue("jobs")
    # The EU message has the highest priority: the us worker's claim meets it
    # first and must pass it over, not stop at it.
    jobs.enqueue(note, "eu-data", residency="EU", priority=9)
    jobs.enqueue(note, "plain")
    jobs.enqueue(note, "global", residency="GLOBAL")
    audits = count_rows(eu.placement, "placement_audit")
    RAN.clear()

    assert us_worker.run_queues(budget=30) == 2
    assert sorted(RAN) == [("us", "global"), ("us", "plain")]
    assert jobs.counts() == {"done": 2, "ready": 1}

    assert eu.run_queues(budget=30) == 1
    assert RAN[-1] == ("eu", "eu-data")
    assert jobs.counts() == {"done": 3}
    # Passing a message over is not a violation: nothing was attempted.
    assert count_rows(eu.placement, "placement_audit") == audits


def test_a_relay_hands_a_sink_only_what_its_region_may_process(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    eu = make_app(opened, urls, "eu")
    us_relay = make_app(opened, urls, "us", store=urls["eu"][0])
    got: list[tuple[str, str]] = []

    def handler(region: str) -> Any:
        def on_order(order: dict[str, Any]) -> None:
            got.append((region, order["what"]))

        return on_order

    eu.subscribe("orders")(handler("eu"))
    us_relay.subscribe("orders")(handler("us"))
    eu.publish("orders", {"what": "eu-data"}, key="c1", residency="EU")
    eu.publish("orders", {"what": "plain"}, key="c2")

    class RegionalSink:
        name = "regional"

        def __init__(self, region: str) -> None:
            self.region = region
            self.sent: list[str] = []

        def send(self, messages: list[Message]) -> list[BaseException | None]:
            self.sent.extend(m.residency or "-" for m in messages)
            return [None for _ in messages]

    assert us_relay.relay_outbox() == 1
    assert got == [("us", "plain")]
    # A relay in eu may read EU data, but not hand it to consumers in us.
    to_us = RegionalSink("us")
    assert eu.relay_outbox(to_us) == 1
    assert to_us.sent == ["-"]
    assert eu.relay_outbox() == 1
    assert got[-1] == ("eu", "eu-data")


def test_what_a_workflow_or_a_message_writes_carries_its_tag(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    eu = make_app(opened, urls, "eu")
    jobs = eu.queue("jobs")
    note = task_of(eu, "eu")

    @eu.step()
    def announce(customer: str) -> None:
        jobs.enqueue(note, customer)
        eu.publish("customers", {"id": customer}, key=customer)

    @eu.workflow(name="signup")
    def signup(customer: str) -> str:
        announce(customer)
        return customer

    @eu.workflow(name="welcome")
    def welcome(customer: str) -> str:
        return f"hello {customer}"

    # The queues live on eu's first shard: a key whose workflow lives there.
    shards = eu.placement.maps["eu"]
    customer = next(
        f"c{n}" for n in range(50) if shards.shard_for(f"c{n}") == shards.shard_ids[0]
    )
    handle = eu.run(signup, customer, workflow_id=customer, residency="EU")
    assert handle.result() == customer
    assert messages_in(eu, "queue_messages") == [("eu", "EU")]
    assert messages_in(eu, "outbox") == [("eu", "EU")]

    # A workflow started by an EU message is an EU workflow.
    jobs.enqueue(welcome, "anna", residency="EU")
    eu.run_until_idle()
    started = "WHERE workflow_id LIKE 'queue-%'"
    assert messages_in(eu, "workflows", started) == [("eu", "EU")]


def test_a_step_may_not_send_its_workflows_data_to_a_store_it_may_not_live_in(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    # Its workflows live in eu, but its queues in the us store.
    eu = make_app(opened, urls, "eu", store=urls["us"][0])
    note = task_of(eu, "eu")

    @eu.step(retry=ss.RetryPolicy(max_attempts=1))
    def leak(customer: str) -> None:
        eu.queue("jobs").enqueue(note, customer, residency="GLOBAL", key=customer)

    @eu.workflow(name="leaky")
    def leaky(customer: str) -> None:
        leak(customer)

    info = eu.run(leaky, "anna", workflow_id="leak-1", residency="EU").status()
    assert info.status == ss.WorkflowStatus.FAILED
    assert info.error is not None and info.error.type.endswith("ResidencyViolation")
    assert messages_in(eu, "queue_messages") == []
    audit = eu.placement.audit_log.records(region="eu")[-1]
    assert (audit.operation, audit.tag, audit.key, audit.target_region) == (
        "copy",
        "EU",
        "queue:jobs/anna",
        "us",
    )


def test_residency_check_covers_queues_and_the_outbox_and_finds_forged_rows(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    eu, us = make_app(opened, urls, "eu"), make_app(opened, urls, "us")
    eu_note, us_note = task_of(eu, "eu"), task_of(us, "us")
    for n in range(3):
        eu.queue("jobs").enqueue(eu_note, n, residency="EU")
        us.queue("jobs").enqueue(us_note, n, residency="US", dedup_id=f"us-{n}")
        eu.publish("orders", {"n": n}, residency="EU")
        us.publish("orders", {"n": n}, message_id=f"m-{n}")

    report = check_residency(eu.placement)
    assert report.ok, report.findings
    assert report.tables["queue_messages"] == 6
    assert report.tables["outbox"] == 6

    store = us.store
    with store.transaction() as tx:
        tx.execute(
            "UPDATE {p}queue_messages SET residency = 'EU' WHERE dedup_id = ?",
            ("us-1",),
        )
        tx.execute(
            "INSERT INTO {p}outbox (message_id, topic, msg_key, payload, created_at, "
            "residency) VALUES ('forged', 'orders', NULL, ?, 0, 'EU')",
            (b"x",),
        )
        row = tx.fetchone(
            "SELECT id FROM {p}queue_messages WHERE dedup_id = ?", ("us-1",)
        )
    assert row is not None
    forged_id = str(row[0])
    findings = check_residency(eu.placement).findings
    assert sorted((f.region, f.table, f.row_key, f.tag) for f in findings) == [
        ("us", "outbox", "orders/forged", "EU"),
        ("us", "queue_messages", f"jobs/{forged_id}", "EU"),
    ]
    # Nobody claims the forged message in us: us may not process EU.
    assert us.run_queues(budget=30) == 2
    assert us.queue("jobs").status(forged_id) == "ready"


def _verb(sql: str) -> str:
    words = (line.split()[0] for line in sql.splitlines() if line.strip())
    return next(word for word in words if not word.startswith("--")).upper()


def test_untagged_messages_without_a_policy_cost_no_extra_statement(
    store_config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    app = ss.App(**store_config)
    try:
        jobs = app.queue("jobs")
        note = task_of(app, "default")
        jobs.enqueue(note, "warm-up")
        app.publish("orders", {"n": 0})
        app.run_queues(budget=30)

        statements: list[str] = []
        with app.store.read() as tx:
            tx_class = type(tx)

        def counting(run: Any) -> Any:
            def counted(self: Any, sql: str, *args: Any) -> Any:
                statements.append(_verb(sql))
                return run(self, sql, *args)

            return counted

        for name in ("execute", "executemany", "fetchone", "fetchall"):
            monkeypatch.setattr(tx_class, name, counting(getattr(tx_class, name)))
        # A statement run on its own (no transaction) counts as well.
        store_class = type(app.store)
        monkeypatch.setattr(
            store_class, "execute_alone", counting(store_class.execute_alone)
        )

        jobs.enqueue(note, "one")
        assert statements == ["INSERT"]
        statements.clear()
        assert jobs.run(jobs.claim(10)[0])
        # One claim (candidates picked in the update), one acknowledgement.
        assert statements == ["UPDATE", "UPDATE"]
        statements.clear()
        app.publish("orders", {"n": 1})
        assert statements == ["INSERT"]
        monkeypatch.undo()
        assert messages_in(app, "queue_messages") == [("default", "")] * 2
        assert messages_in(app, "outbox") == [("default", "")] * 2
    finally:
        app.close()


def test_forgetting_a_subject_erases_their_queue_messages_and_outbox_rows(
    urls: dict[str, list[str]], opened: list[App]
) -> None:
    eu = make_app(opened, urls, "eu")
    jobs = eu.queue("jobs")
    note = task_of(eu, "eu")
    with eu.data_subject("alice", residency="EU"):
        message_id = jobs.enqueue(note, "alice's address", key="alice")
        eu.publish("profiles", {"email": "a@example.org"}, message_id="p-alice")
    jobs.enqueue(note, "bob's address", key="bob")
    # Inside the subject's block, untagged messages took the subject's tag.
    assert messages_in(eu, "queue_messages") == [("eu", ""), ("eu", "EU")]
    assert messages_in(eu, "outbox") == [("eu", "EU")]

    eu.forget("alice")
    with eu.store.read() as tx:
        payload = tx.fetchone(
            "SELECT payload FROM {p}outbox WHERE message_id = ?", ("p-alice",)
        )
    assert payload is not None
    with pytest.raises(DataErased):
        eu.codec.decode(bytes(payload[0]), aad=b"p-alice")
    RAN.clear()
    eu.run_queues(budget=30)
    assert RAN == [("eu", "bob's address")]
    assert jobs.status(message_id) == "dead"
    assert "DataErased" in str(jobs.dead()[0]["last_error"])
