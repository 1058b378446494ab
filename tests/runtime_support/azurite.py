"""Azurite's queue service on loopback, installed by npm into ``.ci``."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from runtime_support.servers import free_port, start_server, stop_server

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "devstoreaccount1"
# Azurite's documented, well-known development key.
KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)


def azurite_queue_binary() -> str | None:
    local = ROOT / ".ci" / "node_modules" / ".bin" / "azurite-queue"
    if local.exists():
        return str(local)
    return shutil.which("azurite-queue")


@contextmanager
def azurite_queue(folder: Path) -> Iterator[str]:
    """Run azurite-queue and yield its connection string."""
    binary = azurite_queue_binary()
    if binary is None:
        message = "azurite-queue is not installed (bash .ci/run installs it)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    port = free_port()
    command = [binary, "--queueHost", "127.0.0.1", "--queuePort", str(port)]
    command += ["--disableTelemetry", "--silent", "--location", str(folder)]
    command += ["--skipApiVersionCheck"]
    process = start_server(command, port, env=dict(os.environ), cwd=folder)
    try:
        yield (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"QueueEndpoint=http://127.0.0.1:{port}/{ACCOUNT};"
        )
    finally:
        stop_server(process)
