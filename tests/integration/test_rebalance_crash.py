"""A rebalance killed with SIGKILL in the middle of a batch resumes on a rerun.

The rebalance runs as a durable workflow in a child process that kills
itself (``SIGKILL``, no clean-up of any kind) after a few keys have moved,
in the middle of a batch step. Running the same rebalance again finishes
it: the keys already moved are not moved again, every key ends up stored
exactly once on the shard the new list picks, with its value.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_placement_support import drop_extra, extra_shard_url, placement, shard_urls

from stateshift.placement import Placement
from stateshift.placement.probe import probe_get, probe_put
from stateshift.placement.shards import ShardMap

SRC = Path(__file__).resolve().parents[2] / "src"

CHILD = """
import json, os, signal, sys
from stateshift.config import load_settings
from stateshift.placement import Placement
from stateshift.placement.rebalance import Rebalancer

urls, extra, kill_at = json.loads(sys.argv[1])
settings = load_settings({"store": urls["eu"][0]})
placement = Placement(settings, regions=urls, region="eu")

def progress(done, total):
    if kill_at and done == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

result = Rebalancer(placement, "eu", [*urls["eu"], extra], progress=progress).run(
    batch_size=5
)
print(json.dumps({"id": result.rebalance_id, "moved": result.moved,
                  "total": result.total}))
"""


@pytest.fixture
def region(backend: str, tmp_path: Path) -> Iterator[tuple[dict[str, list[str]], str]]:
    with shard_urls(backend, tmp_path, {"eu": 2}) as urls:
        extra = extra_shard_url(backend, tmp_path, urls)
        try:
            yield urls, extra
        finally:
            drop_extra(backend, extra)


def run_child(
    tmp_path: Path, urls: dict[str, list[str]], extra: str, kill_at: int
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("STATESHIFT_REGION", None)
    return subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps([urls, extra, kill_at])],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def stored_copies(placement: Placement) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for _, shard_id, store in placement.all_stores():
        with store.read() as tx:
            for (key,) in tx.fetchall("SELECT partition_key FROM {p}placement_probe"):
                found.setdefault(str(key), []).append(shard_id)
    return found


def test_a_rebalance_killed_midway_resumes_where_it_stopped(
    region: tuple[dict[str, list[str]], str], tmp_path: Path
) -> None:
    urls, extra = region
    app_placement = placement(urls, "eu")
    keys = [f"k{i}" for i in range(60)]
    for key in keys:
        probe_put(app_placement, key, "v", key.encode())

    killed = run_child(tmp_path, urls, extra, kill_at=7)
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    resumed = run_child(tmp_path, urls, extra, kill_at=0)
    assert resumed.returncode == 0, resumed.stderr
    result = json.loads(resumed.stdout)
    assert result["total"] > 10
    # The batch cut short runs again, skipping its keys already moved.
    assert result["moved"] == result["total"] - 7

    for key in keys:
        assert probe_get(app_placement, key, "v") == (key.encode(), 1)
    new_map = ShardMap("eu", ("s0", "s1", "s2"))
    new = placement({"eu": [*urls["eu"], extra]}, "eu")
    try:
        copies = stored_copies(new)
        assert sorted(copies) == sorted(keys)
        for key, shards in copies.items():
            assert shards == [new_map.shard_for(key)]

        again = run_child(tmp_path, urls, extra, kill_at=0)
        assert json.loads(again.stdout) == {**result, "moved": 0}
    finally:
        new.close()
        app_placement.close()
