"""A cold start imports only what the handler uses (a structural check).

Each script runs in a fresh interpreter and reports ``sys.modules``; the
assertions name the modules that must not be there, so a new eager import
of a heavy part shows up here as its name, not as a slower benchmark.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import subprocess_env

# Parts of stateshift that a function which only runs workflows never uses.
NEVER_ON_THE_WORKFLOW_PATH = (
    "stateshift.analyze",
    "stateshift.migrate",
    "stateshift.cli",
    "stateshift.demo",
    "stateshift.runtime.asgi",
    "stateshift.runtime.http",
    "stateshift.runtime.invocation",
    "stateshift.placement.rebalance",
    "stateshift.placement.checker",
    "stateshift.events.queues",
    "stateshift.events.topics",
    "stateshift.events.idempotency",
    "stateshift.state.namespace",
    "stateshift.state.entities",
    "stateshift.state.cache",
    "stateshift.workflows.schedules",
    "stateshift.workflows.worker",
    "stateshift.workflows.doctor",
    "stateshift.workflows.listing",
    "stateshift.workflows.saga",
    "psycopg",
    "pydantic",
    "asyncio",
    "http.server",
    "socket",
)

# ...and what building the app and registering handlers does not need yet:
# the engine comes in with the first run.
NOT_BEFORE_THE_FIRST_RUN = NEVER_ON_THE_WORKFLOW_PATH + (
    "stateshift.workflows._engine",
    "stateshift.workflows._runner",
    "stateshift.workflows._steps",
    "stateshift.placement.router",
    "stateshift.placement.policy",
    "stateshift.codec._typed",  # decoding to a type hint (add_one's int)
)

READY = """
import json, sys
import stateshift as ss

app = ss.App({url!r})

@app.step()
def add_one(x: int) -> int:
    return x + 1

@app.workflow()
def one_step(x):
    return add_one(x)

app.store.ensure_schema()
{more}
print(json.dumps(sorted(sys.modules)))
"""

RUN = """
assert app.run(one_step, 1, workflow_id="w").result() == 2
"""


def loaded_after(script: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def present(loaded: set[str], names: tuple[str, ...]) -> list[str]:
    return [
        n for n in names if n in loaded or any(m.startswith(n + ".") for m in loaded)
    ]


def test_import_app_and_registration_stay_light(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cold.db'}"
    loaded = loaded_after(READY.format(url=url, more=""))
    assert present(loaded, NOT_BEFORE_THE_FIRST_RUN) == []


def test_running_a_workflow_imports_only_the_workflow_path(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cold.db'}"
    loaded = loaded_after(READY.format(url=url, more=RUN))
    assert present(loaded, NEVER_ON_THE_WORKFLOW_PATH) == []
    # The check can fail: the engine did come in for the run.
    assert "stateshift.workflows._engine" in loaded


@pytest.mark.parametrize(
    ("name", "home"),
    [
        ("Queue", "stateshift.events.queues"),
        ("Namespace", "stateshift.state.namespace"),
        ("Saga", "stateshift.workflows.saga"),
    ],
)
def test_a_lazy_name_imports_its_module_on_first_use(name: str, home: str) -> None:
    script = (
        "import sys, stateshift as ss\n"
        f"assert {home!r} not in sys.modules\n"
        f"value = ss.{name}\n"
        f"from stateshift import {name} as again\n"
        f"assert value is again and value.__module__ == {home!r}\n"
        f"assert {home!r} in sys.modules\n"
        "print('[]')\n"
    )
    loaded_after(script)


def test_an_unknown_name_is_an_attribute_error() -> None:
    import stateshift

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        stateshift.Nope  # noqa: B018
