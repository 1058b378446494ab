"""Lambda events in the shapes AWS documents (HTTP API 2.0, SQS, EventBridge)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from typing import Any

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def http_event(
    method: str,
    path: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    raw_query: str = "",
    base64_body: bool = False,
) -> dict[str, Any]:
    if body is None:
        text = None
    elif isinstance(body, bytes | str):
        text = body.decode() if isinstance(body, bytes) else body
    else:
        text = json.dumps(body)
    if text is not None and base64_body:
        text = base64.b64encode(text.encode()).decode()
    now = time.time()
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "cookies": ["session=abc"],
        "headers": {
            "content-type": "application/json",
            "host": "abc123.execute-api.eu-west-1.amazonaws.com",
            "user-agent": "pytest",
            "x-forwarded-proto": "https",
            **(headers or {}),
        },
        "queryStringParameters": dict(
            pair.split("=", 1) for pair in raw_query.split("&") if "=" in pair
        )
        or None,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "abc123",
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "domainPrefix": "abc123",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "pytest",
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "body": text,
        "isBase64Encoded": base64_body,
    }


def sqs_record(
    body: str, *, fifo: bool = False, group: str = "g1", receive_count: int = 1
) -> dict[str, Any]:
    queue = "stateshift.fifo" if fifo else "stateshift"
    attributes = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(int(time.time() * 1000)),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str(int(time.time() * 1000)),
    }
    if fifo:
        attributes.update(
            MessageGroupId=group,
            MessageDeduplicationId=uuid.uuid4().hex,
            SequenceNumber=str(int(time.time() * 1e6)),
        )
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "AQEB" + uuid.uuid4().hex,
        "body": body,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:{queue}",
        "awsRegion": REGION,
    }


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def scheduled_event() -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT}:rule/stateshift-tick"],
        "detail": {},
    }
