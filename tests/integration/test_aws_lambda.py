"""The Lambda handler, run by the real ``awslambdaric`` runtime client.

The test serves the Lambda Runtime API on loopback; the runtime client in a
child process fetches each event, calls ``stateshift.aws.handler(app)`` and
posts the answer back. Events have the shapes AWS documents.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import subprocess_env
from runtime_support.aws_shapes import (
    http_event,
    scheduled_event,
    sqs_event,
    sqs_record,
)
from runtime_support.lambda_api import RuntimeApi, start_runtime_client
from runtime_support.sample import TOKEN

TESTS = str(Path(__file__).resolve().parent.parent)
AUTH = {"authorization": f"Bearer {TOKEN}"}


class Lambda:
    def __init__(self, api: RuntimeApi, runs: Path) -> None:
        self.api = api
        self.runs = runs

    def __call__(self, event: dict[str, Any], budget_ms: int = 3000) -> Any:
        answer = self.api.invoke(event, budget_ms=budget_ms)
        assert answer.kind == "response", answer.body
        return answer.body

    def http(self, *args: Any, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        answer = self(http_event(*args, **kwargs))
        body = json.loads(answer["body"]) if answer["body"] else None
        return answer["statusCode"], body, answer["headers"]

    def state(self) -> dict[str, Any]:
        if not self.runs.exists():
            return {"runs": {}, "events": [], "ticks": []}
        data: dict[str, Any] = json.loads(self.runs.read_text())
        return data


@pytest.fixture(scope="module")
def function(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lambda]:
    folder = tmp_path_factory.mktemp("lambda")
    runs = folder / "runs.json"
    api = RuntimeApi()
    env = subprocess_env(STATESHIFT_TEST_RUNS=str(runs))
    env["PYTHONPATH"] += f":{TESTS}"
    process = start_runtime_client(
        api, "runtime_support.lambda_app.lambda_handler", env, folder
    )
    try:
        yield Lambda(api, runs)
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")
        api.close()
        assert api.init_errors == [], output


def test_an_http_start_that_finishes_answers_with_the_result(function: Lambda) -> None:
    status, body, headers = function.http(
        "POST",
        "/workflows/greet/start",
        {"args": ["ada"], "workflow_id": "g-1"},
        headers=AUTH,
    )
    assert status == 200
    assert body["status"] == "succeeded" and body["result"] == "hello ada"
    assert headers["location"] == "/runs/g-1"


def test_an_http_start_that_waits_answers_202_with_a_status_url(
    function: Lambda,
) -> None:
    status, body, headers = function.http(
        "POST",
        "/workflows/approve/start",
        {"args": ["o-1"], "workflow_id": "a-1"},
        headers=AUTH,
    )
    assert status == 202 and body["status"] == "waiting"
    status, body, _ = function.http("GET", headers["location"])
    assert status == 200 and body["waiting_for"] == "event:approval"


def test_an_http_v2_event_without_request_context_gets_400(function: Lambda) -> None:
    event = http_event("POST", "/workflows/greet/start", {"args": ["x"]}, headers=AUTH)
    del event["requestContext"]
    before = function.state()
    answer = function(event)
    assert answer["statusCode"] == 400
    assert json.loads(answer["body"])["error"]["code"] == "malformed_event"
    assert function.state() == before


def test_bad_http_input_gets_the_right_status_and_changes_nothing(
    function: Lambda,
) -> None:
    before = function.state()["runs"]
    cases = [
        (("POST", "/workflows/greet/start", "{not json"), 400),
        (("POST", "/workflows/nope/start", {"args": []}), 404),
        (("POST", "/workflows/greet/start", {"args": "ada"}), 422),
        (("POST", "/workflows/greet/start", {"args": [1, 2, 3]}), 422),
        (("POST", "/workflows/greet/start", {"args": ["x" * 2_000_000]}), 413),
        (("GET", "/runs/no-such-run", None), 404),
    ]
    for args, expected in cases:
        status, body, _ = function.http(*args, headers=AUTH)
        assert status == expected, (args[:2], body)
        assert set(body["error"]) == {"code", "message"}
    status, _, headers = function.http(
        "POST", "/workflows/greet/start", {"args": ["x"]}
    )
    assert status == 401 and headers["www-authenticate"] == "Bearer"
    assert function.state()["runs"] == before


def test_a_base64_body_is_decoded(function: Lambda) -> None:
    status, body, _ = function.http(
        "POST",
        "/workflows/greet/start",
        {"args": ["b64"], "workflow_id": "g-b64"},
        headers=AUTH,
        base64_body=True,
    )
    assert status == 200 and body["result"] == "hello b64"


def test_an_sqs_batch_reports_only_the_failed_records(function: Lambda) -> None:
    good = sqs_record(json.dumps({"op": "start", "workflow": "greet", "args": ["q"]}))
    not_json = sqs_record("this is not json")
    unknown = sqs_record(json.dumps({"op": "start", "workflow": "nope"}))
    missing = sqs_record(json.dumps({"op": "event", "workflow_id": "a-x"}))
    good_too = sqs_record(
        json.dumps({"op": "start", "workflow": "greet", "args": ["r"]})
    )
    answer = function(sqs_event(good, not_json, unknown, missing, good_too))
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [not_json["messageId"], unknown["messageId"], missing["messageId"]]
    runs = function.state()["runs"]
    assert runs[f"msg-{good['messageId']}"]["result"] == "hello q"
    assert runs[f"msg-{good_too['messageId']}"]["result"] == "hello r"


def test_a_redelivered_sqs_start_does_not_start_twice(function: Lambda) -> None:
    record = sqs_record(json.dumps({"op": "start", "workflow": "greet", "args": ["z"]}))
    assert function(sqs_event(record)) == {"batchItemFailures": []}
    count = len(function.state()["runs"])
    record["attributes"]["ApproximateReceiveCount"] = "2"
    assert function(sqs_event(record)) == {"batchItemFailures": []}
    assert len(function.state()["runs"]) == count


def test_a_fifo_batch_fails_the_first_failure_and_everything_after(
    function: Lambda,
) -> None:
    def start(name: str) -> str:
        return json.dumps(
            {"op": "start", "workflow": "greet", "args": [name], "workflow_id": name}
        )

    records = [
        sqs_record(start("f-1"), fifo=True),
        sqs_record("{broken", fifo=True),
        sqs_record(start("f-3"), fifo=True),
        sqs_record(start("f-4"), fifo=True),
    ]
    answer = function(sqs_event(*records))
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed == [r["messageId"] for r in records[1:]]
    runs = function.state()["runs"]
    assert "f-1" in runs and "f-3" not in runs and "f-4" not in runs


def test_an_event_message_resumes_a_waiting_workflow(function: Lambda) -> None:
    function.http(
        "POST",
        "/workflows/approve/start",
        {"args": ["o-2"], "workflow_id": "a-2"},
        headers=AUTH,
    )
    event = {"op": "event", "workflow_id": "a-2", "name": "approval", "payload": 7}
    assert function(sqs_event(sqs_record(json.dumps(event)))) == {
        "batchItemFailures": []
    }
    _, body, _ = function.http("GET", "/runs/a-2")
    assert body["status"] == "succeeded" and body["result"] == 7


def test_a_scheduled_tick_gets_its_budget_from_the_runtime_deadline(
    function: Lambda,
) -> None:
    ticks_before = len(function.state()["ticks"])
    assert function(scheduled_event(), budget_ms=4000) == {"ran": 0}
    ticks = function.state()["ticks"][ticks_before:]
    # 4 s less the 0.4 s safety margin, less the time to get there.
    assert len(ticks) == 1 and 3.0 < ticks[0] <= 3.6


def test_an_unknown_event_fails_the_invocation(function: Lambda) -> None:
    answer = function.api.invoke({"hello": "world"})
    assert answer.kind == "error"
    assert answer.body["errorType"] == "MalformedEvent"
