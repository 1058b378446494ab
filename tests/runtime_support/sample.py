"""The sample app every adapter test deploys: a few workflows and an entity.

The runs file comes from ``STATESHIFT_TEST_RUNS`` so a child process (the
Lambda runtime client, functions-framework) and the test share it.
"""

from __future__ import annotations

import os
from typing import Any

from runtime_support.file_service import FileService, Wait
from stateshift.app import App

TOKEN = "test-token"

service = FileService(os.environ.get("STATESHIFT_TEST_RUNS", "runs.json"))
app = App(os.environ.get("STATESHIFT_STORE", "sqlite:///unused.db"))


@service.workflow
def greet(name: str) -> str:
    return f"hello {name}"


@service.workflow
def approve(order_id: str) -> Wait:
    return Wait("event:approval")


@service.workflow
def boom() -> None:
    raise ValueError("boom")


def _add(state: Any, amount: int) -> tuple[int, int]:
    total = (state or 0) + amount
    return total, total


service.entities["counter.add"] = _add
