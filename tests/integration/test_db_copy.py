"""``stateshift db copy``: a whole store to another backend, workflows in flight."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from conftest import drop_schema, new_store_config
from stateshift.cli.main import main
from stateshift.migrate.store_copy import copy_store, verify_copy

pytestmark = pytest.mark.timeout(60)


def define(app: ss.App, runs: list[str]) -> Any:
    """The workflow both ends of the copy know: a step, a wait, a step."""

    @app.step(name="reserve")
    def reserve(order: str) -> str:
        runs.append(f"reserve:{order}")
        app.state("orders").put(order, {"reserved": True})
        return f"r-{order}"

    @app.step(name="ship")
    def ship(order: str, approval: dict[str, Any]) -> str:
        runs.append(f"ship:{order}")
        return f"shipped-{order}-{approval['by']}"

    @app.workflow(name="order")
    def order_flow(order: str) -> str:
        reservation = reserve(order)
        approval = ss.wait_for_event("approval", timeout=3600)
        return f"{reservation}/{ship(order, approval)}"

    return order_flow


@pytest.fixture
def postgres_config(tmp_path: Path) -> Iterator[dict[str, Any]]:
    config = new_store_config("postgresql", tmp_path)
    yield config
    drop_schema(config["schema"])


def _fill(app: ss.App, flow: Any) -> None:
    app.run(flow, "o1", workflow_id="o1")  # waits for its approval
    app.run(flow, "o2", workflow_id="o2")
    app.send_event("o2", "approval", {"by": "early"}, event_id="e-early")  # due
    app.start(flow, "o3", workflow_id="o3")  # never claimed
    app.send_event("o2", "late", {"by": "nobody"})
    carts = app.state("carts")
    for index in range(25):
        carts.put(f"cart-{index:02d}", {"items": [index]}, ttl=None)
    carts.put("big", {"blob": "x" * 70_000})  # over the blob threshold
    carts.put("cart-00", {"items": ["twice"]})
    carts.delete("cart-01")  # a tombstone travels too


def _cli(*args: str) -> int:
    return main(["db", "copy", *args, "--quiet", "--batch-size", "7"])


def test_sqlite_to_postgresql_moves_workflows_that_then_finish_there(
    tmp_path: Path, postgres_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    runs: list[str] = []
    with ss.App(source_url) as old:
        _fill(old, define(old, runs))
    assert runs == ["reserve:o1", "reserve:o2"]

    code = _cli(
        source_url, postgres_config["store"], "--dst-schema", postgres_config["schema"]
    )
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "verify: clean" in out

    with ss.App(**postgres_config) as new:
        define(new, runs)
        assert new.state("carts").get("big").value == {"blob": "x" * 70_000}  # type: ignore[union-attr]
        assert new.state("carts").get("cart-00").version == 2  # type: ignore[union-attr]
        assert new.state("carts").get("cart-01") is None
        # Events keep their ids: a resent one is still a duplicate.
        duplicate = new.send_event("o2", "approval", {"by": "x"}, event_id="e-early")
        assert duplicate.delivered is False
        new.send_event("o1", "approval", {"by": "ann"})
        new.send_event("o3", "approval", {"by": "bob"})
        new.run_until_idle()

        assert new.status("o1").result == "r-o1/shipped-o1-ann"
        assert new.status("o2").result == "r-o2/shipped-o2-early"
        assert new.status("o3").result == "r-o3/shipped-o3-bob"
        # New rows get fresh ids after the copied ones.
        new.send_event("o3", "after", {})
    assert runs.count("reserve:o1") == 1 and runs.count("reserve:o2") == 1
    assert sorted(r for r in runs if r.startswith("ship")) == [
        "ship:o1",
        "ship:o2",
        "ship:o3",
    ]


def test_postgresql_to_sqlite_copies_back_and_verifies(
    tmp_path: Path, postgres_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    runs: list[str] = []
    with ss.App(**postgres_config) as old:
        _fill(old, define(old, runs))
    target = f"sqlite:///{tmp_path / 'back.db'}"

    code = main(
        [
            "db",
            "copy",
            postgres_config["store"],
            target,
            "--src-schema",
            postgres_config["schema"],
            "--json",
            "--quiet",
        ]
    )

    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["clean"] is True
    assert report["copied"]["workflows"] == 3
    assert report["copied"]["state_items"] == 28  # 26 carts, 2 orders
    with ss.App(target) as back:
        define(back, runs)
        back.send_event("o1", "approval", {"by": "cy"})
        back.run_until_idle()
        assert back.status("o1").status is ss.WorkflowStatus.SUCCEEDED


def test_a_store_with_rows_is_refused_unless_forced_and_forcing_is_idempotent(
    tmp_path: Path, store_config: dict[str, Any]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    with ss.App(source_url) as old:
        _fill(old, define(old, []))
    with ss.App(**store_config) as new:
        new.state("other").put("k", 1)
    source = ss.App(source_url).store
    destination = ss.App(**store_config).store
    try:
        with pytest.raises(ss.StoreError, match="already holds rows in state_items"):
            copy_store(source, destination)

        first = copy_store(source, destination, force=True, batch_rows=4)
        again = copy_store(source, destination, force=True, batch_rows=4)

        assert first.copied == again.copied
        items = {t.table: t for t in again.tables}
        assert not items["state_items"].matched
        assert items["state_items"].extra == ['["other", "k"]']
        assert all(t.matched for t in again.tables if t.table != "state_items")
    finally:
        source.close()
        destination.close()


def test_verify_names_rows_that_differ_after_the_copy(
    tmp_path: Path, store_config: dict[str, Any]
) -> None:
    source_url = f"sqlite:///{tmp_path / 'old.db'}"
    with ss.App(source_url) as old:
        _fill(old, define(old, []))
    source = ss.App(source_url).store
    destination = ss.App(**store_config).store
    try:
        assert copy_store(source, destination).clean
        with ss.App(**store_config) as new:
            new.state("carts").put("cart-05", {"items": "edited"})
            new.state("carts").delete("cart-06")

        reports = {t.table: t for t in verify_copy(source, destination)}

        items = reports["state_items"]
        assert not items.matched
        assert items.different == ['["carts", "cart-05"]', '["carts", "cart-06"]']
        assert reports["workflows"].matched
    finally:
        source.close()
        destination.close()
