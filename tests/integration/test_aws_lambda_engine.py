"""The Lambda handler over the real engine and PostgreSQL, via ``awslambdaric``.

A workflow started over HTTP waits for an event (202), the event comes as
an SQS message, and a scheduled tick after its durable sleep finishes it:
no invocation stays alive in between.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("stateshift.workflows")

from conftest import POSTGRES_URL, drop_schema, require_postgres, subprocess_env  # noqa: E402
from runtime_support.aws_shapes import (  # noqa: E402
    http_event,
    scheduled_event,
    sqs_event,
    sqs_record,
)
from runtime_support.lambda_api import RuntimeApi, start_runtime_client  # noqa: E402
from runtime_support.sample import TOKEN  # noqa: E402

TESTS = str(Path(__file__).resolve().parent.parent)
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeApi]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    runtime_api = RuntimeApi()
    env = subprocess_env(STATESHIFT_STORE=POSTGRES_URL, STATESHIFT_SCHEMA=schema)
    env["PYTHONPATH"] += f":{TESTS}"
    process = start_runtime_client(
        runtime_api,
        "runtime_support.lambda_engine_app.lambda_handler",
        env,
        tmp_path_factory.mktemp("lambda-engine"),
    )
    try:
        yield runtime_api
    finally:
        process.terminate()
        process.communicate(timeout=10)
        runtime_api.close()
        drop_schema(schema)


def http(api: RuntimeApi, *args: object, **kwargs: object) -> tuple[int, dict]:
    answer = api.invoke(http_event(*args, **kwargs))  # type: ignore[arg-type]
    assert answer.kind == "response", answer.body
    return answer.body["statusCode"], json.loads(answer.body["body"])


def test_a_workflow_lives_through_http_sqs_and_scheduled_ticks(api: RuntimeApi) -> None:
    status, body = http(
        api,
        "POST",
        "/workflows/order/start",
        {"args": ["o-1"], "workflow_id": "o-1"},
        headers=AUTH,
    )
    assert status == 202 and body["status"] == "waiting"

    event = {"op": "event", "workflow_id": "o-1", "name": "approval", "payload": "ok"}
    record = sqs_record(json.dumps(event))
    bad = sqs_record("{")
    answer = api.invoke(sqs_event(record, bad))
    assert answer.body == {"batchItemFailures": [{"itemIdentifier": bad["messageId"]}]}

    # Redelivery of the event message changes nothing.
    record["attributes"]["ApproximateReceiveCount"] = "2"
    assert api.invoke(sqs_event(record)).body == {"batchItemFailures": []}

    time.sleep(0.35)  # the durable sleep is due now; only a tick wakes it
    assert api.invoke(scheduled_event()).kind == "response"
    status, body = http(api, "GET", "/runs/o-1")
    assert status == 200 and body["status"] == "succeeded", body
    assert body["result"] == {"reserved": "reserved o-1", "approved": "ok"}
