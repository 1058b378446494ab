"""The router on real regions: separate PostgreSQL databases or SQLite files.

A hypothesis test draws (tag, worker region, operation) triples and checks
the router against an oracle written from the policy table alone: every
allowed one goes through to the tag's home region, every other one is
refused before any row is written, and leaves exactly one audit record.
A second one does the same through real queues and the outbox: enqueue,
publish and claim.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_placement_support import POLICY, count_rows, placement, shard_urls

from stateshift.errors import ResidencyViolation
from stateshift.placement import Placement
from stateshift.placement.checker import check_residency
from stateshift.placement.probe import probe_get, probe_put

# The oracle: where each tag may be stored and processed, written out flat.
STORE = {"EU": {"eu"}, "US": {"us"}, "GLOBAL": {"eu", "us"}, None: {"eu", "us"}}
PROCESS = {"EU": {"eu"}, "US": {"us", "eu"}, "GLOBAL": {"eu", "us"}, None: {"eu", "us"}}
OPERATIONS = ["write", "start", "enqueue", "read", "claim"]


def oracle(tag: str | None, region: str, operation: str) -> str | None:
    """The region the data goes to, or None when the operation is refused."""
    home = region if region in STORE[tag] else sorted(STORE[tag])[0]
    return home if region in PROCESS[tag] else None


@pytest.fixture
def regions(backend: str, tmp_path: Path) -> Iterator[dict[str, Placement]]:
    with shard_urls(backend, tmp_path, {"eu": 2, "us": 1}) as urls:
        opened = {region: placement(urls, region) for region in urls}
        try:
            yield opened
        finally:
            for each in opened.values():
                each.close()


def rows_by_region(placements: dict[str, Placement]) -> dict[str, int]:
    any_placement = placements["eu"]
    found = {}
    for region, _, store in any_placement.all_stores():
        with store.read() as tx:
            row = tx.fetchone("SELECT COUNT(*) FROM {p}placement_probe")
        found[region] = found.get(region, 0) + int(row[0]) if row else 0
    return found


def test_random_triples_match_the_policy_oracle(
    regions: dict[str, Placement],
) -> None:
    counter = itertools.count()

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        st.sampled_from(["EU", "US", "GLOBAL", None]),
        st.sampled_from(["eu", "us"]),
        st.sampled_from(OPERATIONS),
    )
    def run(tag: str | None, region: str, operation: str) -> None:
        worker = regions[region]
        key = f"k{next(counter)}"
        expected = oracle(tag, region, operation)
        rows_before = rows_by_region(regions)
        audits_before = count_rows(worker, "placement_audit")

        try:
            with worker.transaction(key, tag, operation=operation) as routed:
                if operation in ("write", "start", "enqueue"):
                    routed.tx.execute(
                        routed.store.queries("placement")["probe_put"],
                        (key, "item", tag or "", b"v"),
                    )
            refused = False
        except ResidencyViolation as violation:
            refused = True
            assert violation.key == key and violation.operation == operation

        assert refused == (expected is None)
        rows_after = rows_by_region(regions)
        if refused:
            assert rows_after == rows_before
            assert count_rows(worker, "placement_audit") == audits_before + 1
            audit = worker.audit_log.records()[-1]
            assert (audit.key, audit.region, audit.operation) == (
                key,
                region,
                operation,
            )
        else:
            assert count_rows(worker, "placement_audit") == audits_before
            assert routed.region == expected
            if operation in ("write", "start", "enqueue"):
                assert rows_after[expected] == rows_before[expected] + 1

    run()
    report = check_residency(regions["eu"])
    assert report.ok, report.findings
    assert report.shards == 3


def test_co_located_data_of_one_key_lands_on_one_shard(
    regions: dict[str, Placement],
) -> None:
    eu = regions["eu"]
    for item in ("workflow", "entity", "state"):
        probe_put(eu, "customer-9", item, b"x", residency="EU")
    holders = []
    for region, shard_id, store in eu.all_stores():
        with store.read() as tx:
            row = tx.fetchone(
                "SELECT COUNT(*) FROM {p}placement_probe WHERE partition_key = ?",
                ("customer-9",),
            )
        if row and row[0]:
            holders.append((region, shard_id, int(row[0])))
    assert holders == [("eu", eu.maps["eu"].shard_for("customer-9"), 3)]


def test_a_forged_region_is_refused_and_audited(
    regions: dict[str, Placement],
) -> None:
    us = regions["us"]
    with pytest.raises(ResidencyViolation):
        probe_put(us, "cart-1", "item", b"x", residency="EU", region="eu")
    assert count_rows(us, "placement_probe") == 0
    records = us.audit_log.records()
    assert [(r.operation, r.key, r.home_region) for r in records] == [
        ("forged-region:write", "cart-1", "eu")
    ]


def test_a_step_copying_eu_data_to_a_us_store_is_refused(
    regions: dict[str, Placement],
) -> None:
    eu = regions["eu"]
    probe_put(eu, "cart-2", "item", b"secret", residency="EU")
    with pytest.raises(ResidencyViolation):
        eu.store_for("cart-2", "EU", operation="copy", target_region="us")
    with pytest.raises(ResidencyViolation):
        eu.store_for("cart-2", "EU", target_region="us")
    assert rows_by_region(regions)["us"] == 0


def test_tenants_resolve_to_their_tag(regions: dict[str, Placement]) -> None:
    us = regions["us"]
    with pytest.raises(ResidencyViolation):
        probe_put(us, "t-1", "item", b"x", tenant="acme")
    probe_put(us, "t-2", "item", b"x", tenant="globex")
    assert probe_get(regions["eu"], "t-2", "item", tenant="globex") == (b"x", 1)


def test_the_checker_finds_a_row_smuggled_into_the_wrong_region(
    regions: dict[str, Placement],
) -> None:
    us = regions["us"]
    store = us.local_stores()[0]
    with store.transaction() as tx:
        tx.execute(
            store.queries("placement")["probe_put"], ("smuggled", "i", "EU", b"x")
        )
    report = check_residency(us)
    assert [(f.region, f.table, f.row_key, f.tag) for f in report.findings] == [
        ("us", "placement_probe", "smuggled/i", "EU")
    ]


def test_a_workflow_start_is_checked_before_its_row_is_written(
    backend: str, tmp_path: Path
) -> None:
    from stateshift.app import App

    with shard_urls(backend, tmp_path, {"eu": 1, "us": 1}) as urls:
        us = App(regions=urls, region="us", residency_policy=POLICY)
        try:

            @us.workflow()
            def greet(name: str) -> str:
                return f"hello {name}"

            with pytest.raises(ResidencyViolation):
                us.start(greet, "ana", workflow_id="wf-eu", residency="EU")
            with pytest.raises(ResidencyViolation):
                us.run(greet, "ana", workflow_id="wf-acme", tenant="acme")
            assert count_rows(us.placement, "workflows") == 0
            assert [r.key for r in us.placement.audit_log.records()] == [
                "wf-eu",
                "wf-acme",
            ]
            assert us.placement.audit_log.records()[0].home_region == "eu"

            handle = us.run(greet, "bo", workflow_id="wf-us", residency="US")
            assert handle.result() == "hello bo"
        finally:
            us.close()


def test_random_messages_enqueued_and_claimed_match_the_policy_oracle(
    backend: str, tmp_path: Path
) -> None:
    """(tag, store region, writer region, claimer region), through real queues.

    A queue lives in its app's own store. Enqueueing stores there when that
    store's region may store the tag and the writer's may process it; a
    claim on that store takes the message when the claimer's region may
    process it, and leaves it for another region's worker otherwise.
    """
    from stateshift.app import App

    counter = itertools.count()
    with shard_urls(backend, tmp_path, {"eu": 1, "us": 1}) as urls:
        apps = {
            (store, region): App(
                urls[store][0], regions=urls, region=region, residency_policy=POLICY
            )
            for store in urls
            for region in urls
        }
        try:
            for app in apps.values():
                app.queue("jobs").task(_task, name="task")

            @settings(
                max_examples=40,
                deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture],
            )
            @given(
                st.sampled_from(["EU", "US", "GLOBAL", None]),
                st.sampled_from(["eu", "us"]),
                st.sampled_from(["eu", "us"]),
                st.sampled_from(["eu", "us"]),
                st.booleans(),
            )
            # The cases that matter most, drawn or not: a claimer that must
            # pass a stored message over, and writes refused for the store's
            # region and for the writer's.
            @example("EU", "eu", "eu", "us", False)
            @example("EU", "us", "eu", "eu", True)
            @example("EU", "eu", "us", "eu", False)
            @example("US", "us", "eu", "eu", False)
            def run(
                tag: str | None, store: str, writer: str, claimer: str, publish: bool
            ) -> None:
                app = apps[(store, writer)]
                key = f"m{next(counter)}"
                stored = store in STORE[tag] and writer in PROCESS[tag]
                audits = count_rows(app.placement, "placement_audit")
                try:
                    if publish:
                        app.publish("t", 1, key=key, residency=tag)
                    else:
                        app.queue("jobs").enqueue(_task, key=key, residency=tag)
                    refused = False
                except ResidencyViolation as violation:
                    refused = True
                    assert violation.operation == "enqueue"
                assert refused == (not stored)
                table = "outbox" if publish else "queue_messages"
                rows = _rows(app.placement, table, key)
                if refused:
                    assert rows == []
                    assert count_rows(app.placement, "placement_audit") == audits + 1
                    audit = app.placement.audit_log.records()[-1]
                    home = writer if writer in STORE[tag] else sorted(STORE[tag])[0]
                    assert (audit.region, audit.target_region, audit.home_region) == (
                        writer,
                        store,
                        home,
                    )
                    return
                assert rows == [(store, tag or "")]
                if publish:
                    return
                worker = apps[(store, claimer)]
                claimed = worker.queue("jobs").claim(100)
                for message in claimed:
                    assert claimer in PROCESS[message.residency or None]
                    assert worker.queue("jobs").run(message)
                mine = [m.residency for m in claimed if m.key == key]
                assert mine == ([tag or ""] if claimer in PROCESS[tag] else [])

            run()
            report = check_residency(apps[("eu", "eu")].placement)
            assert report.ok, report.findings
        finally:
            for app in apps.values():
                app.close()


def _task(**_: object) -> None:
    """The task of the queue oracle test; it does nothing."""


def _rows(placement: Placement, table: str, key: str) -> list[tuple[str, str]]:
    found = []
    for region, _, store in placement.all_stores():
        with store.read() as tx:
            rows = tx.fetchall(
                f"SELECT residency FROM {{p}}{table} WHERE msg_key = ?", (key,)
            )
        found.extend((region, str(row[0])) for row in rows)
    return found
