"""The Azure Functions adapter, on the ``azure-functions`` library's own types.

The functions ``register`` adds are taken from the ``FunctionApp`` as the
host would and called with ``func.HttpRequest``, ``QueueMessage`` and
``TimerRequest``. Redelivery and dequeue counts come from Azurite's queue,
on loopback, playing the host's queue loop: receive, run, delete on success.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.queue import QueueMessage as HostQueueMessage
from azure.functions.timer import TimerRequest

from runtime_support.azurite import azurite_queue
from runtime_support.file_service import FileService, Wait
from runtime_support.sample import TOKEN
from stateshift.app import App
from stateshift.azure import function_app, queue_wake_up
from stateshift.runtime.invocation import MessageFailed

AUTH = {"authorization": f"Bearer {TOKEN}"}


class Functions:
    def __init__(self, service: FileService, functions: Any) -> None:
        self.service = service
        self.by_name: dict[str, Callable[..., Any]] = {
            f.get_function_name(): f.get_user_function()
            for f in functions.get_functions()
        }

    def http(
        self, method: str, path: str, body: bytes = b"", headers: Any = None
    ) -> tuple[int, Any]:
        request = func.HttpRequest(
            method,
            f"https://demo.azurewebsites.net/api{path}",
            headers={"content-type": "application/json", **(headers or {})},
            params={},
            route_params={"path": path.lstrip("/")},
            body=body,
        )
        response = self.by_name["stateshift_http"](request)
        assert isinstance(response, func.HttpResponse)
        text = response.get_body()
        return response.status_code, json.loads(text) if text else None

    def queue(
        self, body: str, *, message_id: str = "m1", dequeue_count: int = 1
    ) -> None:
        message = HostQueueMessage(
            id=message_id,
            body=body.encode(),
            dequeue_count=dequeue_count,
            pop_receipt="receipt",
        )
        self.by_name["stateshift_queue"](message)


@pytest.fixture
def functions(tmp_path: Path) -> Functions:
    service = FileService(tmp_path / "runs.json")

    @service.workflow
    def greet(name: str) -> str:
        return f"hello {name}"

    @service.workflow
    def approve(order_id: str) -> Wait:
        return Wait("event:approval")

    app = App(f"sqlite:///{tmp_path / 'unused.db'}")
    built = function_app(app, token=TOKEN, service=service, queue_name="work")
    return Functions(service, built)


def test_register_adds_http_queue_and_timer_functions(functions: Functions) -> None:
    assert set(functions.by_name) == {
        "stateshift_http",
        "stateshift_queue",
        "stateshift_tick",
    }


def test_the_http_trigger_serves_the_api(functions: Functions) -> None:
    status, body = functions.http(
        "POST", "/workflows/greet/start", b'{"args": ["az"]}', AUTH
    )
    assert status == 200 and body["result"] == "hello az"
    status, body = functions.http("POST", "/workflows/approve/start", b"{}", AUTH)
    assert status == 422  # approve needs its order id
    status, body = functions.http("GET", "/health")
    assert status == 200 and body["status"] == "ok"


def test_bad_http_input_changes_nothing(functions: Functions) -> None:
    before = functions.service.load()
    assert functions.http("POST", "/workflows/greet/start", b"[", AUTH)[0] == 400
    assert functions.http("POST", "/workflows/x/start", b"{}", AUTH)[0] == 404
    assert functions.http("POST", "/runs/none/cancel", b"", AUTH)[0] == 404
    assert functions.http("POST", "/workflows/greet/start", b"{}")[0] == 401
    assert functions.service.load() == before


def test_a_queue_message_runs_its_command(functions: Functions) -> None:
    functions.queue(json.dumps({"op": "start", "workflow": "greet", "args": ["q"]}))
    assert functions.service.status("msg-m1").result == "hello q"


def test_a_bad_queue_message_raises_so_the_host_redelivers(
    functions: Functions,
) -> None:
    with pytest.raises(MessageFailed) as failed:
        functions.queue("not json", message_id="bad")
    assert failed.value.message_id == "bad"
    assert functions.service.load()["runs"] == {}


def test_the_timer_trigger_runs_due_work(functions: Functions) -> None:
    functions.by_name["stateshift_tick"](TimerRequest(past_due=True))
    ticks = functions.service.load()["ticks"]
    assert len(ticks) == 1 and ticks[0] > 200  # five minutes less the margin


@pytest.fixture
def engine_functions(tmp_path: Path) -> Iterator[tuple[Any, Functions]]:
    import stateshift as ss

    app = ss.App(f"sqlite:///{tmp_path / 'azure.db'}", api_token=TOKEN)

    @app.workflow(name="approve")
    def approve(order_id: str) -> Any:
        return ss.wait_for_event("approval", timeout=3600)

    built = function_app(app, queue_name="work")
    yield app, Functions(FileService(tmp_path / "unused.json"), built)
    app.close()


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with azurite_queue(tmp_path_factory.mktemp("azurite")) as connection:
        yield connection


def test_a_failed_message_comes_back_from_azurite_with_a_higher_dequeue_count(
    engine_functions: tuple[Any, Functions], azurite: str
) -> None:
    from azure.storage.queue import (
        QueueClient,
        TextBase64DecodePolicy,
        TextBase64EncodePolicy,
    )

    app, functions = engine_functions
    queue = QueueClient.from_connection_string(
        azurite,
        "work",
        message_encode_policy=TextBase64EncodePolicy(),
        message_decode_policy=TextBase64DecodePolicy(),
    )
    queue.create_queue()
    status, body = functions.http(
        "POST",
        "/workflows/approve/start",
        b'{"args": ["o"], "workflow_id": "w1"}',
        AUTH,
    )
    assert status == 202, body
    event = {"op": "event", "workflow_id": "w1", "name": "approval", "payload": 3}
    queue.send_message(json.dumps(event))

    # The host's loop: receive, run, delete on success, else let it reappear.
    seen: list[int] = []
    failures_left = 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(seen) < 2:
        for message in queue.receive_messages(visibility_timeout=1):
            seen.append(message.dequeue_count)
            body = message.content
            if failures_left:
                # The first delivery arrives cut short, say: it fails alone.
                failures_left -= 1
                body = "{truncated"
            try:
                functions.queue(
                    body, message_id=message.id, dequeue_count=message.dequeue_count
                )
            except MessageFailed:
                continue
            queue.delete_message(message)
        time.sleep(0.2)
    assert seen == [1, 2]
    assert app.status("w1").result == 3
    assert queue.peek_messages() == []
    queue.close()


def test_a_queue_wake_up_stays_hidden_until_its_delay(azurite: str) -> None:
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy

    queue = QueueClient.from_connection_string(
        azurite, "wake", message_decode_policy=TextBase64DecodePolicy()
    )
    queue.create_queue()
    sent = time.monotonic()
    queue_wake_up(azurite, "wake")(0.8)  # rounded up to whole seconds
    assert list(queue.receive_messages()) == []
    received: list[Any] = []
    while not received and time.monotonic() - sent < 5:
        time.sleep(0.1)
        received = list(queue.receive_messages())
    assert time.monotonic() - sent >= 0.8
    assert [json.loads(m.content) for m in received] == [{"op": "wake"}]
    queue.close()
