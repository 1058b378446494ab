"""The deployment examples in ``examples/deploy`` work as documented.

Each example is loaded as its platform loads it: the Lambda handler is
called with an API Gateway event and a context, the Cloud Functions source
is served by functions-framework's own app, and the Azure functions are
taken from the ``FunctionApp`` the worker would index.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("stateshift.workflows")

from runtime_support.aws_shapes import http_event, sqs_event, sqs_record  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "deploy"
TOKEN = "example-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STATESHIFT_STORE", f"sqlite:///{tmp_path / 'example.db'}")
    monkeypatch.setenv("STATESHIFT_API_TOKEN", TOKEN)
    # functions-framework marks the process as Cloud Functions; the examples
    # run on a throwaway SQLite file here.
    monkeypatch.setenv("STATESHIFT_ALLOW_SQLITE_ON_SERVERLESS", "1")


def load(path: Path) -> ModuleType:
    name = f"example_{path.parent.name}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 5000


def test_the_lambda_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STATESHIFT_WAKE_QUEUE_URL", raising=False)
    example = load(EXAMPLES / "aws" / "app.py")
    start = http_event(
        "POST",
        "/workflows/checkout/start",
        {"args": ["o-1"], "workflow_id": "o-1"},
        headers=AUTH,
    )
    answer = example.lambda_handler(start, Context())
    assert answer["statusCode"] == 202, answer
    event = {"op": "event", "workflow_id": "o-1", "name": "approval", "payload": "y"}
    batch = example.lambda_handler(sqs_event(sqs_record(json.dumps(event))), Context())
    assert batch == {"batchItemFailures": []}
    status = example.app.status("o-1")
    assert status.waiting_for is not None and "timer" in status.waiting_for
    example.app.close()


def test_the_cloud_functions_example(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions_framework import create_app

    # create_app writes these into os.environ; monkeypatch takes them back.
    for name in (
        "FUNCTION_TARGET",
        "FUNCTION_SIGNATURE_TYPE",
        "FUNCTION_TRIGGER_TYPE",
        "FUNCTION_NAME",
    ):
        monkeypatch.setenv(name, "")

    source = str(EXAMPLES / "gcp" / "main.py")
    api = create_app("api", source).test_client()
    answer = api.post(
        "/workflows/checkout/start",
        json={"args": ["o-2"], "workflow_id": "o-2"},
        headers=AUTH,
    )
    assert answer.status_code == 202, answer.get_json()
    events = create_app("on_message", source, "cloudevent").test_client()
    command = {"op": "event", "workflow_id": "o-2", "name": "approval", "payload": 1}
    data = {
        "message": {
            "data": base64.b64encode(json.dumps(command).encode()).decode(),
            "messageId": "m-1",
        },
        "subscription": "projects/p/subscriptions/s",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "m-1",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/t",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
    }
    assert events.post("/", json=data, headers=headers).status_code == 200
    ticked = api.post("/tick", headers=AUTH)
    assert ticked.status_code == 200


def test_the_azure_example(monkeypatch: pytest.MonkeyPatch) -> None:
    import azure.functions as func

    monkeypatch.delenv("AzureWebJobsStorage", raising=False)
    example = load(EXAMPLES / "azure" / "function_app.py")
    functions: dict[str, Any] = {
        f.get_function_name(): f.get_user_function()
        for f in example.functions.get_functions()
    }
    request = func.HttpRequest(
        "POST",
        "https://example.azurewebsites.net/api/workflows/checkout/start",
        headers=AUTH,
        body=json.dumps({"args": ["o-3"], "workflow_id": "o-3"}).encode(),
    )
    response = functions["stateshift_http"](request)
    assert response.status_code == 202, response.get_body()
    example.app.close()
