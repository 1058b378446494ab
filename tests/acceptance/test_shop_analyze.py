"""``stateshift analyze`` finds nothing in the migrated shop, and the old hazards.

The "after" shop (its deploy entry points and ``stateshift.demo.shop``) is
what the analyzer's advice leads to, so it must come out clean at every
severity; the "before" shop must still show its hazards (the full list is
checked in ``test_analyze_cli``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def analyze(*paths: str) -> tuple[int, dict[str, Any]]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "stateshift",
            "analyze",
            "--format",
            "json",
            "--fail-on",
            "note",
            *paths,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    return completed.returncode, json.loads(completed.stdout)


@pytest.mark.timeout(60)
def test_the_shop_after_the_migration_has_no_findings() -> None:
    status, document = analyze("examples/shop/after", "src/stateshift/demo/shop.py")
    assert document["findings"] == []
    assert status == 0


@pytest.mark.timeout(60)
def test_the_shop_before_the_migration_still_has_its_hazards() -> None:
    status, document = analyze("examples/shop/before")
    assert status == 1
    rules = {finding["rule_id"] for finding in document["findings"]}
    # In-memory state, a sleep waiting for a human, a webhook with no key.
    assert {"SS101", "SS201", "SS401"} <= rules
