"""Platform events parsed into triggers: the shapes AWS, Google and Azure send."""

from __future__ import annotations

import base64
import json

import pytest

from runtime_support.aws_shapes import (
    http_event,
    scheduled_event,
    sqs_event,
    sqs_record,
)
from stateshift.runtime import aws_events, gcp_events
from stateshift.runtime.invocation import BatchOutcome
from stateshift.runtime.triggers import (
    HttpRequest,
    HttpResponse,
    MalformedEvent,
    QueueBatch,
    ScheduledTick,
)


def test_an_http_v2_event_becomes_a_request() -> None:
    event = http_event(
        "POST", "/runs/a%2Fb", {"x": 1}, headers={"X-Mixed": "v"}, raw_query="a=1&a=2"
    )
    request = aws_events.parse_event(event)
    assert isinstance(request, HttpRequest)
    assert request.method == "POST" and request.path == "/runs/a%2Fb"
    assert request.query == {"a": "1"} and request.headers["x-mixed"] == "v"
    assert request.headers["cookie"] == "session=abc"
    assert json.loads(request.body) == {"x": 1}
    assert request.request_id == event["requestContext"]["requestId"]


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.pop("requestContext"),
        lambda e: e["requestContext"].pop("http"),
        lambda e: e.update(body=5),
        lambda e: e.update(isBase64Encoded=True, body="%%%"),
        lambda e: e.update(headers=[1]),
    ],
)
def test_a_broken_http_v2_event_is_malformed(change: object) -> None:
    event = http_event("GET", "/health")
    change(event)  # type: ignore[operator]
    with pytest.raises(MalformedEvent):
        aws_events.parse_event(event)
    assert aws_events.is_http_event(event)


def test_sqs_records_keep_ids_counts_and_groups() -> None:
    standard = aws_events.parse_event(sqs_event(sqs_record("a", receive_count=3)))
    assert isinstance(standard, QueueBatch) and not standard.ordered
    assert standard.messages[0].receive_count == 3
    fifo = aws_events.parse_event(sqs_event(sqs_record("b", fifo=True, group="g7")))
    assert isinstance(fifo, QueueBatch) and fifo.ordered
    assert fifo.messages[0].group_id == "g7"


def test_an_sqs_record_without_a_string_body_fails_alone() -> None:
    record = sqs_record("x")
    record["body"] = {"not": "a string"}
    batch = aws_events.parse_event(sqs_event(record))
    assert isinstance(batch, QueueBatch) and batch.messages[0].body == ""


def test_an_sqs_record_without_an_id_is_malformed() -> None:
    record = sqs_record("x")
    del record["messageId"]
    with pytest.raises(MalformedEvent, match="messageId"):
        aws_events.parse_event(sqs_event(record))


def test_eventbridge_schedules_are_ticks_and_other_events_commands() -> None:
    tick = aws_events.parse_event(scheduled_event())
    assert isinstance(tick, ScheduledTick) and tick.source == "eventbridge"
    custom = {
        **scheduled_event(),
        "detail-type": "Order placed",
        "detail": {"op": "wake"},
    }
    batch = aws_events.parse_event(custom)
    assert isinstance(batch, QueueBatch)
    assert json.loads(batch.messages[0].body) == {"op": "wake"}


def test_responses_take_the_shapes_aws_expects() -> None:
    answer = aws_events.http_v2_response(HttpResponse.json(201, {"a": 1}))
    assert answer["statusCode"] == 201 and answer["isBase64Encoded"] is False
    binary = aws_events.http_v2_response(HttpResponse(200, b"\xff\xfe"))
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\xff\xfe"
    assert aws_events.batch_response(BatchOutcome(failed=("a", "b"))) == {
        "batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]
    }


def test_a_pubsub_cloudevent_is_a_batch_of_one() -> None:
    data = {
        "message": {
            "data": base64.b64encode(b'{"op": "wake"}').decode(),
            "messageId": "42",
            "orderingKey": "k",
            "attributes": {"a": "b"},
        },
        "subscription": "projects/p/subscriptions/s",
        "deliveryAttempt": 4,
    }
    attributes = {"type": gcp_events.PUBSUB_TYPE, "id": "42"}
    batch = gcp_events.parse_cloudevent(attributes, data)
    assert isinstance(batch, QueueBatch) and batch.ordered
    [message] = batch.messages
    assert (message.message_id, message.body, message.receive_count) == (
        "42",
        '{"op": "wake"}',
        4,
    )
    with pytest.raises(MalformedEvent):
        gcp_events.parse_cloudevent({"type": "something.else"}, data)
    with pytest.raises(MalformedEvent):
        gcp_events.parse_cloudevent(attributes, {"nothing": 1})
