"""Residency end to end: state, entities and workflows on regions of real stores.

Each region's shards are separate SQLite files or separate PostgreSQL
databases. The EU tag may live and be processed only in ``eu``; ``US``
lives in ``us`` and may be processed in both.
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
from stateshift.placement.checker import check_residency


def rows_in(app: App, region: str, table: str, where: str = "") -> int:
    total = 0
    for shard_region, _, store in app.placement.all_stores():
        if shard_region != region:
            continue
        with store.read() as tx:
            row = tx.fetchone(f"SELECT COUNT(*) FROM {{p}}{table} {where}")
        total += int(row[0]) if row else 0
    return total


@pytest.fixture
def apps(backend: str, tmp_path: Path) -> Iterator[dict[str, App]]:
    with shard_urls(backend, tmp_path, {"eu": 2, "us": 1}) as urls:
        opened = {
            region: App(regions=urls, region=region, residency_policy=POLICY)
            for region in urls
        }
        try:
            yield opened
        finally:
            for app in opened.values():
                app.close()


class Cart:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def add(self, sku: str, quantity: int) -> int:
        self.items[sku] = self.items.get(sku, 0) + quantity
        return self.items[sku]


def test_eu_state_entities_and_workflows_never_reach_the_us_store(
    apps: dict[str, App],
) -> None:
    eu, us = apps["eu"], apps["us"]
    eu.entity(Cart)
    notes = eu.state("notes", residency="EU")

    @eu.step()
    def remember(customer: str) -> int:
        return notes.put(f"{customer}/seen", {"ok": True}, partition_key=customer)

    @eu.workflow(name="onboard")
    def onboard(customer: str) -> str:
        remember(customer)
        return customer

    for n in range(6):
        customer = f"c{n}"
        notes.put(customer, {"n": n})
        eu.entity(Cart, customer, residency="EU").add("sku", n)
        eu.run(
            onboard,
            customer,
            workflow_id=f"w-{customer}",
            residency="EU",
            partition_key=customer,
        )
    eu.run_until_idle()

    assert rows_in(us, "us", "state_items") == 0
    assert rows_in(us, "us", "workflows") == 0
    assert rows_in(eu, "eu", "state_items") == 18
    assert rows_in(eu, "eu", "workflows", "WHERE residency = 'EU'") == 6
    assert eu.status("w-c3").result == "c3"
    assert notes.get("c3").value == {"n": 3}
    assert eu.entity(Cart, "c3", residency="EU").get().items == {"sku": 3}


def test_reads_and_starts_from_a_region_that_may_not_process_are_refused_and_audited(
    apps: dict[str, App],
) -> None:
    eu, us = apps["eu"], apps["us"]

    @us.workflow(name="w")
    def flow_us() -> int:
        return 1

    @eu.workflow(name="w")
    def flow_eu() -> int:
        return 1

    eu.state("vault", residency="EU").put("k", 1)
    eu.start(flow_eu, workflow_id="eu-1", residency="EU")
    audits = count_rows(eu.placement, "placement_audit")

    with pytest.raises(ResidencyViolation):
        us.state("vault", residency="EU").get("k")
    with pytest.raises(ResidencyViolation):
        us.state("vault").put("k2", 2, residency="EU")
    with pytest.raises(ResidencyViolation):
        us.start(flow_us, workflow_id="us-1", residency="EU")
    with pytest.raises(ResidencyViolation):
        us.status("eu-1")
    with pytest.raises(ResidencyViolation):
        us.send_event("eu-1", "go", {"x": 1})

    assert count_rows(eu.placement, "placement_audit") == audits + 5
    # Every record went to the data's home region, none held the data.
    records = eu.placement.audit_log.records(region="eu")
    assert {r.operation for r in records[-5:]} == {"read", "write", "start"}
    assert rows_in(us, "us", "workflows") == 0
    assert rows_in(us, "us", "state_items") == 0
    assert rows_in(eu, "eu", "workflow_events") == 0
    assert eu.status("eu-1").status == ss.WorkflowStatus.PENDING


def test_a_worker_claims_only_what_its_region_may_process(
    apps: dict[str, App],
) -> None:
    eu = apps["eu"]

    @eu.workflow(name="job")
    def job() -> str:
        return "done"

    eu.start(job, workflow_id="eu-job", residency="EU")
    eu.start(job, workflow_id="plain-job")
    # The policy tightens: EU data may no longer be processed in eu.
    tightened = ss_policy({"EU": {"store": ["eu"], "process": ["us"]}})
    urls = {region: dict(shards) for region, shards in eu.placement.urls.items()}
    strict = App(regions=urls, region="eu", residency_policy=tightened)
    try:
        strict.workflow(name="job")(job)
        strict.run_until_idle()
        assert strict.status("plain-job").status == ss.WorkflowStatus.SUCCEEDED
        with pytest.raises(ResidencyViolation):
            strict.status("eu-job")
        info = eu.status("eu-job")
        assert info.status == ss.WorkflowStatus.BLOCKED
        assert info.error is not None and "ResidencyViolation" in info.error.type
        claims = [
            r for r in strict.placement.audit_log.records() if r.operation == "claim"
        ]
        assert [r.key for r in claims] == ["eu-job"]
    finally:
        strict.close()


def ss_policy(tags: dict[str, Any]) -> Any:
    from stateshift.placement import ResidencyPolicy

    return ResidencyPolicy(tags, default={"store": ["*"], "process": ["*"]})


def test_a_workflow_and_its_state_share_one_shard_and_commit_once_per_step(
    apps: dict[str, App], monkeypatch: pytest.MonkeyPatch
) -> None:
    eu = apps["eu"]
    orders = eu.state("orders", residency="EU")
    eu.entity(Cart)

    @eu.step()
    def book(customer: str) -> int:
        orders.put(f"{customer}/order", {"total": 5}, partition_key=customer)
        cart = eu.entity(
            Cart, f"{customer}/cart", residency="EU", partition_key=customer
        )
        return int(cart.add("sku", 1))

    @eu.workflow(name="checkout")
    def checkout(customer: str) -> int:
        return int(book(customer))

    writes: dict[tuple[str, str], int] = {}
    for region, shard_id, store in eu.placement.all_stores():
        opened, alone = store.transaction, store.execute_alone

        def counted(opened: Any = opened, shard: Any = (region, shard_id)) -> Any:
            writes[shard] = writes.get(shard, 0) + 1
            return opened()

        def counted_alone(
            sql: str,
            params: Any = (),
            alone: Any = alone,
            shard: Any = (region, shard_id),
        ) -> Any:
            writes[shard] = writes.get(shard, 0) + 1
            return alone(sql, params)

        monkeypatch.setattr(store, "transaction", counted)
        monkeypatch.setattr(store, "execute_alone", counted_alone)

    customers = [f"cust-{n}" for n in range(8)]
    for customer in customers:
        shard_id = eu.placement.maps["eu"].shard_for(customer)
        writes.clear()
        eu.run(checkout, customer, workflow_id=customer, residency="EU")
        # The start, the step (checkpoint and both state rows) and the end:
        # three writes (transactions or lone statements), all on the
        # customer's shard.
        assert writes == {("eu", shard_id): 3}
        for region, other, store in eu.placement.all_stores():
            with store.read() as tx:
                here = tx.fetchone(
                    "SELECT COUNT(*) FROM {p}state_items WHERE partition_key = ?",
                    (customer,),
                )
            assert int(here[0]) == (2 if (region, other) == ("eu", shard_id) else 0)
    assert len({eu.placement.maps["eu"].shard_for(c) for c in customers}) == 2


def test_a_step_that_copies_eu_data_to_a_us_store_is_refused_before_writing(
    apps: dict[str, App],
) -> None:
    eu = apps["eu"]
    mirror = eu.state("mirror")

    @eu.step(retry=ss.RetryPolicy(max_attempts=1))
    def leak(customer: str) -> None:
        mirror.put(customer, {"copied": True}, residency="US")

    @eu.step(retry=ss.RetryPolicy(max_attempts=1))
    def elsewhere(customer: str) -> None:
        mirror.put(f"{customer}-other-key", 1)

    @eu.workflow(name="leaky")
    def leaky(customer: str) -> None:
        leak(customer)

    @eu.workflow(name="scattered")
    def scattered(customer: str) -> None:
        elsewhere(customer)

    info = eu.run(leaky, "anna", workflow_id="leak-1", residency="EU").status()
    assert info.status == ss.WorkflowStatus.FAILED
    assert info.error is not None and info.error.type.endswith("ResidencyViolation")
    assert rows_in(eu, "us", "state_items") == 0
    audit = eu.placement.audit_log.records(region="eu")[-1]
    assert (audit.operation, audit.tag, audit.target_region) == ("copy", "EU", "us")

    keys = [f"k{n}" for n in range(40)]
    shard = eu.placement.maps["eu"].shard_for
    far = next(k for k in keys if shard(f"{k}-other-key") != shard(k))
    info = eu.run(scattered, far, workflow_id=far, residency="EU").status()
    assert info.error is not None and info.error.type.endswith("StoreError")
    assert "co-located" in info.error.message
    assert rows_in(eu, "eu", "state_items") == 0


def test_residency_check_is_clean_after_a_mixed_workload_and_finds_a_planted_row(
    apps: dict[str, App],
) -> None:
    eu, us = apps["eu"], apps["us"]

    @eu.workflow(name="mixed")
    def mixed_eu(n: int) -> int:
        return n

    @us.workflow(name="mixed")
    def mixed_us(n: int) -> int:
        return n

    for n in range(5):
        eu.state("s").put(f"eu{n}", n, residency="EU")
        us.state("s").put(f"us{n}", n, residency="US")
        eu.state("s").put(f"g{n}", n)
        eu.start(mixed_eu, n, workflow_id=f"weu{n}", residency="EU")
        us.start(mixed_us, n, workflow_id=f"wus{n}", residency="US")
    eu.run_until_idle()
    us.run_until_idle()

    report = check_residency(eu.placement)
    assert report.ok, report.findings
    assert report.tables["state_items"] == 15
    assert report.tables["workflows"] == 10

    (_, _, us_store) = next(s for s in us.placement.all_stores() if s[0] == "us")
    with us_store.transaction() as tx:
        tx.execute(
            "UPDATE {p}workflows SET residency = 'EU' WHERE workflow_id = ?", ("wus1",)
        )
        tx.execute("UPDATE {p}state_items SET residency = 'EU' WHERE key = ?", ("us2",))
    findings = check_residency(eu.placement).findings
    assert sorted((f.table, f.row_key) for f in findings) == [
        ("state_items", "s/us2"),
        ("workflows", "wus1"),
    ]


def test_forgetting_a_subject_erases_state_workflow_inputs_results_and_events(
    apps: dict[str, App],
) -> None:
    eu = apps["eu"]
    profiles = eu.state("profiles", residency="EU")

    @eu.step()
    def greet(name: str) -> str:
        return f"hello {name}"

    @eu.workflow(name="welcome")
    def welcome(name: str) -> str:
        greeting = greet(name)
        ss.wait_for_event("confirmed")
        return greeting

    with eu.data_subject("alice", residency="EU"):
        profiles.put("alice", {"email": "a@example.org"})
        eu.run(welcome, "alice", workflow_id="welcome-alice", residency="EU")
    eu.send_event("welcome-alice", "confirmed", {"by": "alice"})
    eu.run(welcome, "bob", workflow_id="welcome-bob", residency="EU")
    eu.send_event("welcome-bob", "confirmed", {"by": "bob"})
    eu.run_until_idle()
    assert eu.status("welcome-alice").result == "hello alice"

    eu.forget("alice")
    with pytest.raises(DataErased):
        profiles.get("alice")
    with pytest.raises(DataErased):
        eu.status("welcome-alice")
    assert eu.status("welcome-bob").result == "hello bob"

    # Every stored value of alice's workflow is sealed with her key.
    store = eu.placement.store_for("welcome-alice", "EU")
    with store.read() as tx:
        payload = tx.fetchone(
            "SELECT payload FROM {p}workflow_events WHERE workflow_id = ?",
            ("welcome-alice",),
        )
        outputs = tx.fetchall(
            "SELECT output FROM {p}workflow_steps WHERE workflow_id = ? "
            "AND output IS NOT NULL",
            ("welcome-alice",),
        )
        row = tx.fetchone(
            "SELECT input, result, data_subject FROM {p}workflows "
            "WHERE workflow_id = ?",
            ("welcome-alice",),
        )
    assert row[2] == "alice"
    for value in (payload[0], row[0], row[1], *(o[0] for o in outputs)):
        with pytest.raises(DataErased):
            eu.codec.decode(bytes(value))


def test_children_inherit_the_partition_key_and_tag_of_their_parent(
    apps: dict[str, App],
) -> None:
    eu = apps["eu"]

    @eu.workflow(name="child")
    def child(n: int) -> int:
        return n * 2

    @eu.workflow(name="parent")
    def parent() -> list[int]:
        handles = [ss.start_child(child, n) for n in range(3)]
        return ss.wait_all(handles)

    eu.run(parent, workflow_id="fam", residency="EU", partition_key="family-7")
    eu.run_until_idle()
    assert eu.status("fam").result == [0, 2, 4]
    assert eu.status("fam/0").status == ss.WorkflowStatus.SUCCEEDED
    store = eu.placement.store_for("family-7", "EU")
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT workflow_id, partition_key, residency FROM {p}workflows "
            "ORDER BY workflow_id"
        )
    assert [tuple(r) for r in rows] == [
        ("fam", "family-7", "EU"),
        ("fam/0", "family-7", "EU"),
        ("fam/1", "family-7", "EU"),
        ("fam/2", "family-7", "EU"),
    ]
