"""The HTTP API through its ASGI app: routes, error codes, token, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime_support.asgi_client import AsgiClient
from runtime_support.file_service import FileService, Wait
from stateshift.app import App

TOKEN = "s3cret"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def service(tmp_path: Path) -> FileService:
    service = FileService(tmp_path / "runs.json")

    @service.workflow
    def greet(name: str, punctuation: str = "!") -> str:
        return f"hello {name}{punctuation}"

    @service.workflow
    def approve(order_id: str) -> Wait:
        return Wait("event:approval")

    service.entities["counter.add"] = lambda state, n: ((state or 0) + n,) * 2
    return service


@pytest.fixture
def app(tmp_path: Path) -> App:
    return App(f"sqlite:///{tmp_path / 'unused.db'}")


@pytest.fixture
def client(app: App, service: FileService) -> Iterator[AsgiClient]:
    with AsgiClient(app.asgi(token=TOKEN, service=service)) as client:
        yield client


def test_start_answers_200_with_the_result_when_it_finishes(client: AsgiClient) -> None:
    answer = client.post(
        "/workflows/greet/start",
        json={"args": ["ada"], "kwargs": {"punctuation": "?"}, "workflow_id": "g1"},
        headers=AUTH,
    )
    assert answer.status_code == 200
    assert answer.json() == {
        "workflow_id": "g1",
        "workflow": "greet",
        "status": "succeeded",
        "result": "hello ada?",
    }
    assert answer.headers["location"] == "/runs/g1"


def test_start_answers_202_and_the_status_url_tells_the_rest(
    client: AsgiClient,
) -> None:
    answer = client.post(
        "/workflows/approve/start",
        json={"args": ["o-1"], "workflow_id": "a1"},
        headers=AUTH,
    )
    assert answer.status_code == 202 and answer.json()["status"] == "waiting"
    sent = client.post(
        "/runs/a1/events/approval", json={"payload": {"ok": True}}, headers=AUTH
    )
    assert sent.status_code == 202 and sent.json()["delivered"] is True
    done = client.get(answer.headers["location"]).json()
    assert done["status"] == "succeeded" and done["result"] == {"ok": True}
    again = client.post("/runs/a1/events/approval", json={}, headers=AUTH)
    assert again.status_code == 200 and again.json()["delivered"] is False


def test_starting_an_id_again_is_idempotent_or_a_conflict(client: AsgiClient) -> None:
    body = {"args": ["x"], "workflow_id": "same"}
    first = client.post("/workflows/greet/start", json=body, headers=AUTH)
    again = client.post("/workflows/greet/start", json=body, headers=AUTH)
    assert first.json() == again.json()
    other = client.post(
        "/workflows/greet/start",
        json={"args": ["y"], "workflow_id": "same"},
        headers=AUTH,
    )
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "workflow_conflict"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/workflows/greet/start", b"{oops", 400, "malformed_json"),
        ("/workflows/greet/start", b"[1]", 422, "invalid_body"),
        ("/workflows/greet/start", b'{"args": {}}', 422, "invalid_arguments"),
        ("/workflows/greet/start", b'{"args": []}', 422, "invalid_arguments"),
        ("/workflows/greet/start", b'{"workflow_id": 5}', 422, "invalid_field"),
        ("/workflows/missing/start", b"{}", 404, "unknown_workflow"),
        ("/runs/nobody/cancel", b"", 404, "workflow_not_found"),
        ("/runs/nobody/events/go", b"{}", 404, "workflow_not_found"),
        ("/entities/nope/k/add", b"{}", 404, "unknown_entity"),
        ("/nowhere", b"", 404, "no_route"),
    ],
)
def test_bad_requests_get_json_errors_and_change_nothing(
    client: AsgiClient,
    service: FileService,
    path: str,
    body: bytes,
    status: int,
    code: str,
) -> None:
    answer = client.post(path, content=body, headers=AUTH)
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/json"
    assert answer.json()["error"]["code"] == code
    assert service.load()["runs"] == {}


def test_a_body_over_the_limit_gets_413_before_it_is_read(
    app: App, service: FileService
) -> None:
    with AsgiClient(app.asgi(token=TOKEN, service=service, max_body_bytes=100)) as c:
        answer = c.post("/workflows/greet/start", content=b"x" * 101, headers=AUTH)
    assert answer.status_code == 413
    assert service.load()["runs"] == {}


def test_operations_that_change_things_need_the_token(client: AsgiClient) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": TOKEN}):
        answer = client.post(
            "/workflows/greet/start", json={"args": ["x"]}, headers=headers
        )
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == "Bearer"
    assert client.get("/health").status_code == 200
    assert client.get("/workflows").json() == {"workflows": ["approve", "greet"]}


def test_without_a_token_changes_are_refused_unless_anonymous_is_allowed(
    app: App, service: FileService
) -> None:
    with AsgiClient(app.asgi(service=service)) as closed:
        refused = closed.post("/workflows/greet/start", json={"args": ["x"]})
    assert refused.status_code == 401
    assert "STATESHIFT_API_TOKEN" in refused.json()["error"]["message"]
    with AsgiClient(app.asgi(service=service, allow_anonymous=True)) as open_api:
        assert (
            open_api.post("/workflows/greet/start", json={"args": ["x"]}).status_code
            == 200
        )


def test_the_token_can_come_from_the_api_token_setting(
    tmp_path: Path, service: FileService
) -> None:
    app = App(f"sqlite:///{tmp_path / 'unused.db'}", api_token="from-settings")
    with AsgiClient(app.asgi(service=service)) as client:
        headers = {"authorization": "Bearer from-settings"}
        answer = client.post(
            "/workflows/greet/start", json={"args": ["s"]}, headers=headers
        )
    assert answer.status_code == 200


def test_a_wrong_method_gets_405_with_allow(client: AsgiClient) -> None:
    answer = client.get("/workflows/greet/start")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"


def test_cancel_entity_call_and_tick(client: AsgiClient, service: FileService) -> None:
    client.post(
        "/workflows/approve/start",
        json={"args": ["o"], "workflow_id": "c1"},
        headers=AUTH,
    )
    cancelled = client.post("/runs/c1/cancel", headers=AUTH)
    assert cancelled.json()["status"] == "cancelled"
    for expected in (2, 5):
        added = client.post(
            "/entities/counter/k1/add",
            json={"args": [expected - (expected > 2) * 2]},
            headers=AUTH,
        )
        assert added.json() == {"result": expected}
    ticked = client.post("/tick", headers=AUTH)
    assert ticked.status_code == 200 and ticked.json()["ran"] == 0


def test_ids_with_slashes_round_trip_through_the_status_url(client: AsgiClient) -> None:
    answer = client.post(
        "/workflows/greet/start",
        json={"args": ["s"], "workflow_id": "tenant/7"},
        headers=AUTH,
    )
    assert answer.headers["location"] == "/runs/tenant%2F7"
    assert client.get(answer.headers["location"]).json()["workflow_id"] == "tenant/7"


def test_the_openapi_document_describes_every_route(client: AsgiClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    operations = {
        (method.upper(), path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    assert set(operations) == {
        ("GET", "/health"),
        ("GET", "/openapi.json"),
        ("GET", "/workflows"),
        ("POST", "/workflows/{workflow}/start"),
        ("GET", "/runs/{workflow_id}"),
        ("POST", "/runs/{workflow_id}/events/{name}"),
        ("POST", "/runs/{workflow_id}/cancel"),
        ("POST", "/entities/{entity}/{key}/{operation}"),
        ("POST", "/tick"),
    }
    for (method, _), operation in operations.items():
        assert ("security" in operation) == (method == "POST")
        assert {"400", "404", "413", "422"} <= set(operation["responses"])
    ids = [operation["operationId"] for operation in operations.values()]
    assert len(set(ids)) == len(ids)
