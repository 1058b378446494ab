"""``stateshift shards rebalance`` with a key whose workflow is running.

The command runs in a subprocess against SQLite shards named in
``stateshift.toml``, while this process runs a workflow of one moving key
in a thread, held inside a step. The key is skipped (text and ``--json``
say so, exit status 1), ``--finish`` is refused while it is, and a run
after the workflow ends moves it and finishes.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from test_residency_cli import cli

import stateshift as ss
from stateshift.app import App
from stateshift.placement.shards import ShardMap


def forward_rows(app: App, url: str) -> list[tuple[str, str]]:
    """``(partition_key, kind)`` of every forwarding row of the shard at ``url``."""
    store = app.placement.store_at(url)
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT partition_key, kind FROM {p}placement_forward "
            "ORDER BY partition_key, kind"
        )
    return [(str(row[0]), str(row[1])) for row in rows]


def workflow_shards(app: App, urls: dict[str, str], workflow_id: str) -> list[str]:
    found = []
    for shard_id, url in urls.items():
        with app.placement.store_at(url).read() as tx:
            row = tx.fetchone(
                "SELECT 1 FROM {p}workflows WHERE workflow_id = ?", (workflow_id,)
            )
        if row is not None:
            found.append(shard_id)
    return found


def test_a_running_workflow_skips_its_key_refuses_finish_and_a_rerun_moves_it(
    tmp_path: Path,
) -> None:
    old = {f"s{i}": f"sqlite:///{tmp_path / f'eu-{i}.db'}" for i in range(2)}
    extra = f"sqlite:///{tmp_path / 'eu-2.db'}"
    (tmp_path / "stateshift.toml").write_text(
        f"[regions]\neu = {json.dumps(list(old.values()))}\n"
    )
    grown = ShardMap("eu", ("s0", "s1", "s2"))
    keys = [f"cust-{i}" for i in range(40)]
    moving = [key for key in keys if grown.shard_for(key) == "s2"]
    busy = moving[0]
    app = App(regions={"eu": list(old.values())}, region="eu")
    carts = app.state("carts")
    for key in keys:
        carts.put(f"{key}/cart", {"paid": False}, partition_key=key)

    entered, release = threading.Event(), threading.Event()

    @app.step()
    def pay_now(customer: str) -> int:
        entered.set()
        assert release.wait(120)
        return carts.put(f"{customer}/cart", {"paid": True}, partition_key=customer)

    @app.workflow(name="pay")
    def pay(customer: str) -> int:
        return pay_now(customer)

    runner = threading.Thread(
        target=app.run,
        args=(pay, busy),
        kwargs={"workflow_id": "pay", "partition_key": busy},
    )
    runner.start()
    rebalance = (
        "shards",
        "rebalance",
        "--region",
        "eu",
        "--add",
        extra,
        "--busy-rounds",
        "1",
        "--busy-wait",
        "0",
    )
    try:
        assert entered.wait(60)
        text = cli(*rebalance, cwd=tmp_path)
        assert text.returncode == 1, text.stdout + text.stderr
        assert f"moved {len(moving) - 1} of {len(moving)} keys" in text.stdout
        assert (
            f"skipped 1 key(s) whose workflows were running (they stay on their "
            f"old shard for now): {busy}; run the same command again" in text.stdout
        )
        assert "--finish" not in text.stderr

        # Run again, still busy, with --finish: refused, nothing dropped.
        refused = cli(*rebalance, "--json", "--finish", cwd=tmp_path)
        assert refused.returncode == 1, refused.stdout + refused.stderr
        summary: dict[str, Any] = json.loads(refused.stdout)
        assert summary["skipped"] == [busy]
        assert summary["moved"] == 0 and summary["total"] == len(moving)
        assert summary["finished"] is False
        assert summary["shards"] == {**old, "s2": extra}
        assert "--finish refused: 1 key(s) of rebalance" in refused.stderr
        source = old[old_shard_of(busy)]
        assert (busy, "kept") in forward_rows(app, source)
        assert ("*", "map") in forward_rows(app, source)
        assert workflow_shards(app, {**old, "s2": extra}, "pay") == [old_shard_of(busy)]
    finally:
        release.set()
        runner.join(60)
    assert app.status("pay").status is ss.WorkflowStatus.SUCCEEDED

    done = cli(*rebalance, "--json", "--finish", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout)
    assert (summary["moved"], summary["skipped"], summary["finished"]) == (1, [], True)
    every = {**old, "s2": extra}
    assert all(forward_rows(app, url) == [] for url in every.values())
    assert workflow_shards(app, every, "pay") == ["s2"]
    app.close()

    grown_app = App(regions={"eu": list(every.values())}, region="eu")
    try:
        assert grown_app.status("pay").result == 2
        for key in keys:
            paid = key == busy
            item = grown_app.state("carts").get(f"{key}/cart", partition_key=key)
            assert item.value == {"paid": paid}
    finally:
        grown_app.close()


def old_shard_of(key: str) -> str:
    """The shard of ``key`` under the old list of two shards."""
    return ShardMap("eu", ("s0", "s1")).shard_for(key)
