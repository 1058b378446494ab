"""One invocation in a fresh process, for ``stateshift dev --ephemeral``.

Reads one JSON request from stdin, loads the app, says ``ready``, runs the
trigger and writes one JSON answer to stdout, then exits: nothing it held
in memory survives it.
"""

from __future__ import annotations

import base64
import json
import sys
from typing import Any

from stateshift.runtime.deadline import Deadline
from stateshift.runtime.dev import load_app
from stateshift.runtime.invocation import TickOutcome
from stateshift.runtime.triggers import HttpRequest, HttpResponse, ScheduledTick


def main(argv: list[str]) -> int:
    target = argv[1]
    request: dict[str, Any] = json.loads(sys.stdin.readline())
    app = load_app(target)
    invoker = app.invoker(
        token=request.get("token"), allow_anonymous=request.get("anonymous", False)
    )
    sys.stdout.write("ready\n")
    sys.stdout.flush()

    deadline = Deadline.after(float(request["budget"]))
    answer: dict[str, Any]
    if request["trigger"] == "http":
        outcome = invoker.invoke(
            HttpRequest(
                method=request["method"],
                path=request["path"],
                headers=request["headers"],
                query=request["query"],
                body=base64.b64decode(request["body"]),
                request_id=request["request_id"],
            ),
            deadline,
        )
        assert isinstance(outcome, HttpResponse)
        answer = {
            "status": outcome.status,
            "headers": dict(outcome.headers),
            "body": base64.b64encode(outcome.body).decode("ascii"),
        }
    else:
        tick = invoker.invoke(ScheduledTick("dev"), deadline)
        assert isinstance(tick, TickOutcome)
        report = tick.tick
        answer = {
            "ran": report.ran if report else 0,
            "next_wake_up_seconds": report.next_wake_up_seconds if report else None,
        }
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()
    app.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
