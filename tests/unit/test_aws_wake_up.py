"""``sqs_wake_up`` sends the message boto3's SQS client would send.

No SQS is reachable from CI, so a recording client stands in for
``boto3.client("sqs")``; the Azure twin is tested against Azurite.
"""

from __future__ import annotations

import json
from typing import Any

from stateshift.aws import sqs_wake_up

URL = "https://sqs.eu-west-1.amazonaws.com/123456789012/stateshift"


class RecordingClient:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> dict[str, str]:
        self.sent.append(kwargs)
        return {"MessageId": str(len(self.sent))}


def test_the_delay_is_rounded_up_and_capped_at_fifteen_minutes() -> None:
    client = RecordingClient()
    wake_up = sqs_wake_up(URL, client)
    for delay in (0.0, 2.2, 5_000.0):
        wake_up(delay)
    assert [m["DelaySeconds"] for m in client.sent] == [0, 3, 900]
    assert {m["QueueUrl"] for m in client.sent} == {URL}
    assert all(json.loads(m["MessageBody"]) == {"op": "wake"} for m in client.sent)
