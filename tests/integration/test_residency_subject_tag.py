"""State and workflow starts inside ``app.data_subject(..., residency=)`` take its tag.

Queue messages written inside such a block already carried the block's
tag; state writes and workflow starts now do too, so a block's data is
placed, checked and audited as if each call named ``residency=`` itself.
Each region's shards are separate SQLite files or PostgreSQL databases.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_placement_support import POLICY, count_rows, shard_urls

from stateshift.app import App
from stateshift.errors import ResidencyViolation


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


def audited(app: App) -> list[tuple[str, str, str, str, str | None]]:
    return [
        (r.operation, r.key, r.tag, r.region, r.home_region)
        for r in app.placement.audit_log.records()
    ]


def tags_in(app: App, table: str, column: str) -> dict[str, tuple[str, str]]:
    """``column`` of each row of ``table`` to its ``(region, residency)``."""
    found: dict[str, tuple[str, str]] = {}
    for region, _, store in app.placement.all_stores():
        with store.read() as tx:
            rows = tx.fetchall(f"SELECT {column}, residency FROM {{p}}{table}")
        for row in rows:
            found[str(row[0])] = (region, str(row[1]))
    return found


def test_a_us_app_inside_an_eu_subject_block_is_refused_as_with_residency_eu(
    apps: dict[str, App],
) -> None:
    us, eu = apps["us"], apps["eu"]
    carts = us.state("carts")

    @us.workflow(name="note")
    def note(text: str) -> str:
        return text

    # The explicit calls first, as the reference...
    with pytest.raises(ResidencyViolation) as explicit_put:
        carts.put("anna", {"items": 1}, residency="EU")
    with pytest.raises(ResidencyViolation) as explicit_start:
        us.start(note, "hi", workflow_id="note-anna", residency="EU")
    explicit = audited(us)
    assert [record[0] for record in explicit] == ["write", "start"]

    # ...then the same calls with no tag, inside the subject's EU block.
    with us.data_subject("anna", residency="EU"):
        with pytest.raises(ResidencyViolation) as inherited_put:
            carts.put("anna", {"items": 1})
        with pytest.raises(ResidencyViolation) as inherited_start:
            us.start(note, "hi", workflow_id="note-anna")
        with pytest.raises(ResidencyViolation):
            carts.update("anna", lambda cart: {"items": 2})

    for first, second in (
        (explicit_put.value, inherited_put.value),
        (explicit_start.value, inherited_start.value),
    ):
        assert (second.tag, second.region, second.operation, second.key) == (
            first.tag,
            first.region,
            first.operation,
            first.key,
        )
    records = audited(us)
    assert records[:2] == explicit
    assert records[2:4] == explicit
    assert records[4][:3] == ("write", "anna", "EU")
    # Audited at the data's home region, nothing stored anywhere.
    assert len(us.placement.audit_log.records(region="eu")) == 5
    assert us.placement.audit_log.records(region="us") == []
    assert count_rows(us.placement, "state_items") == 0
    assert count_rows(us.placement, "workflows") == 0
    # An explicit tag still wins over the block's.
    with us.data_subject("anna", residency="EU"):
        carts.put("anna-us", {"items": 3}, residency="US")
    assert tags_in(eu, "state_items", "key") == {"anna-us": ("us", "US")}


def test_an_eu_subject_block_tags_state_and_workflows_where_they_are_stored(
    apps: dict[str, App],
) -> None:
    eu, us = apps["eu"], apps["us"]
    carts = eu.state("carts")
    us_notes = eu.state("notes", residency="US")

    for app in (eu, us):

        @app.workflow(name="note")
        def note(text: str) -> str:
            return text

    with eu.data_subject("anna", residency="EU"):
        carts.put("anna", {"items": 1})
        carts.update("anna-2", lambda _: {"items": 2})
        us_notes.put("anna-n", {"seen": True})  # the namespace's tag wins
        eu.run(note, "hi", workflow_id="note-anna")
    with eu.data_subject("ben", residency="US"):
        # US data written from eu goes to its home region, us.
        carts.put("ben", {"items": 4})
        handle: Any = eu.start(note, "hi", workflow_id="note-ben")
    carts.put("cleo", {"items": 5})

    assert tags_in(eu, "state_items", "key") == {
        "anna": ("eu", "EU"),
        "anna-2": ("eu", "EU"),
        "anna-n": ("us", "US"),
        "ben": ("us", "US"),
        "cleo": ("eu", ""),
    }
    assert tags_in(eu, "workflows", "workflow_id") == {
        "note-anna": ("eu", "EU"),
        "note-ben": ("us", "US"),
    }
    assert eu.placement.audit_log.records() == []
    # Read back inside the block, and outside it by naming the tag.
    with eu.data_subject("ben", residency="US"):
        assert carts.get("ben").value == {"items": 4}
    assert carts.get("ben", residency="US").value == {"items": 4}
    assert eu.status("note-anna").result == "hi"
    # A us worker claims the US workflow from its us shard.
    us.run_until_idle()
    assert handle.status().result == "hi"
