"""Four processes incrementing one key lose no update, on both backends.

Run as a script, this file is the worker: it opens its own app and does
``count`` increments through ``update`` or an entity operation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

PROCESSES = 4
INCREMENTS = 500


class Tally:
    """The entity the workers increment."""

    def __init__(self) -> None:
        self.count = 0

    def increment(self) -> int:
        self.count += 1
        return self.count


def _work(config: dict[str, Any], mode: str, count: int) -> None:
    import stateshift as ss

    with ss.App(**config) as app:
        app.entity(name="Tally")(Tally)
        counters = app.state("counters")
        for _ in range(count):
            if mode == "update":
                counters.update("shared", lambda n: (n or 0) + 1)
            else:
                app.entity(Tally, "shared").increment()


def _run_workers(config: dict[str, Any], mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, json.dumps(config), mode, str(INCREMENTS)],
            env=env,
        )
        for _ in range(PROCESSES)
    ]
    codes = [worker.wait(timeout=90) for worker in workers]
    assert codes == [0] * PROCESSES
    return time.monotonic() - started


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["update", "entity"])
def test_four_processes_of_500_increments_end_at_exactly_2000(
    store_config: dict[str, Any], mode: str
) -> None:
    import stateshift as ss

    with ss.App(**store_config) as app:
        app.store.ensure_schema()  # migrate once, before the race
    _run_workers(store_config, mode)

    with ss.App(**store_config) as app:
        if mode == "update":
            item = app.state("counters").get("shared")
            assert item is not None
            assert (item.value, item.version) == (2000, 2000)
        else:
            item = app.state("entity:Tally").get("shared")
            assert item is not None
            assert (item.value, item.version) == ({"count": 2000}, 2000)


if __name__ == "__main__":
    _work(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
