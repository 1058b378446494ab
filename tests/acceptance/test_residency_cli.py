"""``stateshift residency audit|check`` and ``stateshift shards plan|rebalance``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from stateshift.config import load_settings
from stateshift.errors import ResidencyViolation
from stateshift.placement import Placement
from stateshift.placement.probe import probe_get, probe_put

TOML = """
[regions]
eu = ["sqlite:///eu-0.db", "sqlite:///eu-1.db"]
us = ["sqlite:///us-0.db"]

[residency.tags.EU]
store = ["eu"]
process = ["eu"]
"""


def cli(*args: str, cwd: Path) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "stateshift", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def open_region(region: str, directory: Path) -> Placement:
    return Placement(load_settings(directory=directory), region=region)


def test_audit_lists_violations_and_check_proves_residency(tmp_path: Path) -> None:
    (tmp_path / "stateshift.toml").write_text(TOML)
    eu, us = open_region("eu", tmp_path), open_region("us", tmp_path)
    probe_put(eu, "cart-1", "items", b"x", residency="EU")
    with pytest.raises(ResidencyViolation):
        probe_get(us, "cart-1", "items", residency="EU")

    audit = cli("residency", "audit", "--json", cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    records = [json.loads(line) for line in audit.stdout.splitlines()]
    assert [
        (r["operation"], r["key"], r["region"], r["home_region"]) for r in records
    ] == [("read", "cart-1", "us", "eu")]
    assert "b'x'" not in audit.stdout

    check = cli("residency", "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "3 shards: ok" in check.stdout

    store = us.local_stores()[0]
    with store.transaction() as tx:
        tx.execute(store.queries("placement")["probe_put"], ("leak", "i", "EU", b"x"))
    check = cli("residency", "check", cwd=tmp_path)
    assert check.returncode == 1
    assert "OUT OF PLACE  us/s0  placement_probe 'leak/i'" in check.stdout
    eu.close()
    us.close()


def test_shards_plan_then_rebalance_moves_the_planned_keys(tmp_path: Path) -> None:
    (tmp_path / "stateshift.toml").write_text(TOML)
    eu = open_region("eu", tmp_path)
    for i in range(40):
        probe_put(eu, f"k{i}", "v", str(i).encode())

    new_url = f"sqlite:///{tmp_path / 'eu-2.db'}"
    plan = cli(
        "shards", "plan", "--region", "eu", "--add", new_url, "--json", cwd=tmp_path
    )
    assert plan.returncode == 0, plan.stderr
    planned = json.loads(plan.stdout)
    assert planned and all(move["target"] == "s2" for move in planned)

    rebalance = cli(
        "shards", "rebalance", "--region", "eu", "--add", new_url, cwd=tmp_path
    )
    assert rebalance.returncode == 0, rebalance.stderr
    assert f"{len(planned)}/{len(planned)} keys" in rebalance.stderr
    assert f"moved {len(planned)} of {len(planned)} keys" in rebalance.stdout

    moved = Placement(
        load_settings(directory=tmp_path),
        regions={"eu": ["sqlite:///eu-0.db", "sqlite:///eu-1.db", new_url]},
        region="eu",
    )
    for i in range(40):
        assert probe_get(moved, f"k{i}", "v") == (str(i).encode(), 1)
        assert probe_get(eu, f"k{i}", "v") == (str(i).encode(), 1)
    eu.close()
    moved.close()
