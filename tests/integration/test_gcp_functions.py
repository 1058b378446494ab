"""The Cloud Functions adapter, served by the real ``functions-framework``.

Two servers on loopback: the HTTP function (the HTTP API) and the CloudEvent
function (Pub/Sub messages in binary and structured content mode).
"""

from __future__ import annotations

import base64
import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import subprocess_env
from runtime_support.sample import TOKEN
from runtime_support.servers import free_port, start_server, stop_server

TESTS = Path(__file__).resolve().parent.parent
SOURCE = TESTS / "runtime_support" / "gcf_main.py"
CLI = str(Path(sys.executable).parent / "functions-framework")
AUTH = {"authorization": f"Bearer {TOKEN}"}
PUBSUB = "google.cloud.pubsub.topic.v1.messagePublished"
TOPIC = "//pubsub.googleapis.com/projects/demo/topics/stateshift"


class Deployment:
    def __init__(self, http: str, events: str, runs: Path) -> None:
        self.http = httpx.Client(base_url=http, timeout=10)
        self.events = httpx.Client(base_url=events, timeout=10)
        self.runs = runs

    def state(self) -> dict[str, Any]:
        if not self.runs.exists():
            return {"runs": {}, "events": [], "ticks": []}
        data: dict[str, Any] = json.loads(self.runs.read_text())
        return data

    def publish(self, body: bytes, *, structured: bool = False) -> httpx.Response:
        message_id = uuid.uuid4().hex
        data = {
            "message": {
                "data": base64.b64encode(body).decode(),
                "attributes": {"origin": "test"},
                "messageId": message_id,
                "publishTime": "2024-01-01T00:00:00.000Z",
            },
            "subscription": "projects/demo/subscriptions/stateshift",
        }
        attributes = {
            "specversion": "1.0",
            "id": message_id,
            "source": TOPIC,
            "type": PUBSUB,
        }
        if structured:
            return self.events.post(
                "/",
                content=json.dumps({**attributes, "data": data}),
                headers={"content-type": "application/cloudevents+json"},
            )
        headers = {f"ce-{k}": v for k, v in attributes.items()}
        return self.events.post("/", json=data, headers=headers)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    folder = tmp_path_factory.mktemp("gcf")
    runs = folder / "runs.json"
    env = subprocess_env(STATESHIFT_TEST_RUNS=str(runs))
    env["PYTHONPATH"] += f":{TESTS}"
    servers = []
    urls = []
    for target, signature in (("api", "http"), ("on_message", "cloudevent")):
        port = free_port()
        command = [CLI, "--target", target, "--source", str(SOURCE)]
        command += ["--signature-type", signature, "--host", "127.0.0.1"]
        command += ["--port", str(port)]
        servers.append(start_server(command, port, env=env, cwd=folder))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deployed = Deployment(urls[0], urls[1], runs)
        yield deployed
        deployed.http.close()
        deployed.events.close()
    finally:
        for server in servers:
            stop_server(server)


def test_the_http_function_starts_and_reports_workflows(
    deployment: Deployment,
) -> None:
    answer = deployment.http.post(
        "/workflows/greet/start",
        json={"args": ["gcf"], "workflow_id": "g/1"},
        headers=AUTH,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "hello gcf"
    assert answer.headers["location"] == "/runs/g%2F1"
    status = deployment.http.get(answer.headers["location"])
    assert status.status_code == 200 and status.json()["workflow_id"] == "g/1"


def test_the_http_function_rejects_bad_input_without_changes(
    deployment: Deployment,
) -> None:
    before = deployment.state()["runs"]
    post = deployment.http.post
    assert post("/workflows/greet/start", content=b"{", headers=AUTH).status_code == 400
    assert post("/workflows/nope/start", json={}, headers=AUTH).status_code == 404
    assert (
        post("/workflows/greet/start", json={"kwargs": []}, headers=AUTH).status_code
        == 422
    )
    big = post("/workflows/greet/start", content=b"x" * 1_100_000, headers=AUTH)
    assert big.status_code == 413
    assert post("/workflows/greet/start", json={"args": ["x"]}).status_code == 401
    assert deployment.http.get("/openapi.json").json()["openapi"] == "3.1.0"
    assert deployment.state()["runs"] == before


def test_a_pubsub_message_in_binary_mode_starts_a_workflow(
    deployment: Deployment,
) -> None:
    command = {"op": "start", "workflow": "greet", "args": ["ps"], "workflow_id": "p1"}
    answer = deployment.publish(json.dumps(command).encode())
    assert answer.status_code == 200, answer.text
    assert deployment.state()["runs"]["p1"]["result"] == "hello ps"


def test_a_pubsub_message_in_structured_mode_delivers_an_event(
    deployment: Deployment,
) -> None:
    deployment.http.post(
        "/workflows/approve/start",
        json={"args": ["o"], "workflow_id": "p-wait"},
        headers=AUTH,
    )
    event = {"op": "event", "workflow_id": "p-wait", "name": "approval", "payload": 1}
    answer = deployment.publish(json.dumps(event).encode(), structured=True)
    assert answer.status_code == 200, answer.text
    assert deployment.state()["runs"]["p-wait"]["status"] == "succeeded"


def test_a_bad_pubsub_message_is_refused_so_it_is_redelivered(
    deployment: Deployment,
) -> None:
    before = deployment.state()["runs"]
    assert deployment.publish(b"not json").status_code == 500
    assert deployment.publish(b'{"op": "start"}').status_code == 500
    assert deployment.state()["runs"] == before


def test_malformed_cloudevents_are_refused(deployment: Deployment) -> None:
    before = deployment.state()["runs"]
    broken = deployment.events.post(
        "/",
        content=b"{broken",
        headers={"content-type": "application/cloudevents+json"},
    )
    assert broken.status_code == 400
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": TOPIC,
        "ce-type": PUBSUB,
    }
    no_message = deployment.events.post("/", json={"data": 1}, headers=headers)
    assert no_message.status_code == 500
    assert deployment.state()["runs"] == before
