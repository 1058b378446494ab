"""The public surface is what we mean it to be, and importing it is light."""

from __future__ import annotations

import json
import subprocess
import sys

import stateshift
from conftest import subprocess_env

# Modules a cold start must not pay for when only the core is used.
HEAVY = (
    "psycopg",
    "psycopg_pool",
    "redis",
    "nats",
    "starlette",
    "uvicorn",
    "pydantic",
    "cryptography",
    "asyncio",
    "concurrent.futures",
    "http.server",
)


def test_all_is_sorted_and_every_name_exists() -> None:
    names = [n for n in stateshift.__all__ if n != "__version__"]
    assert names == sorted(names)
    for name in stateshift.__all__:
        assert hasattr(stateshift, name), name


def test_every_exported_name_has_a_docstring() -> None:
    for name in stateshift.__all__:
        value = getattr(stateshift, name)
        if callable(value):
            assert (value.__doc__ or "").strip(), f"{name} lacks a docstring"


def test_import_stateshift_pulls_in_no_heavy_module() -> None:
    code = "import sys, json, stateshift; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env=subprocess_env(),
    )
    loaded = set(json.loads(result.stdout))
    assert not [m for m in HEAVY if m in loaded]
