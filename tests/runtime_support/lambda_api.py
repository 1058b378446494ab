"""A Lambda Runtime API on loopback, driving the real ``awslambdaric`` client.

The test queues events with :meth:`RuntimeApi.invoke`; the runtime client,
running the function in a child process, fetches them from
``/2018-06-01/runtime/invocation/next`` and posts the answer back, exactly
as it does on Lambda.
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

PREFIX = "/2018-06-01/runtime"
ARN = "arn:aws:lambda:eu-west-1:123456789012:function:stateshift-test"


@dataclass
class Answer:
    kind: str  # "response" or "error"
    body: Any


class RuntimeApi:
    def __init__(self) -> None:
        self._pending: queue.Queue[tuple[str, bytes, int] | None] = queue.Queue()
        self._answers: dict[str, queue.Queue[Answer]] = {}
        self.init_errors: list[Any] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self.send_error(404)
                    return
                item = api._pending.get()
                if item is None:
                    self.send_error(500)
                    return
                request_id, body, deadline_ms = item
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Lambda-Runtime-Aws-Request-Id", request_id)
                self.send_header("Lambda-Runtime-Deadline-Ms", str(deadline_ms))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", ARN)
                self.send_header(
                    "Lambda-Runtime-Trace-Id", f"Root=1-{uuid.uuid4().hex[:24]}"
                )
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                parts = self.path[len(PREFIX) :].strip("/").split("/")
                if parts[:2] == ["init", "error"]:
                    api.init_errors.append(body)
                    return
                if len(parts) == 3 and parts[0] == "invocation":
                    answers = api._answers.get(parts[1])
                    if answers is not None:
                        answers.put(Answer(parts[2], json.loads(body or b"null")))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def invoke(
        self, event: Mapping[str, Any], *, budget_ms: int = 3000, wait: float = 20.0
    ) -> Answer:
        request_id = str(uuid.uuid4())
        answers: queue.Queue[Answer] = queue.Queue()
        self._answers[request_id] = answers
        deadline_ms = int(time.time() * 1000) + budget_ms
        self._pending.put((request_id, json.dumps(event).encode(), deadline_ms))
        try:
            return answers.get(timeout=wait)
        except queue.Empty:
            raise AssertionError(f"no answer to {request_id} in {wait} s") from None
        finally:
            del self._answers[request_id]

    def close(self) -> None:
        self._pending.put(None)
        self.server.shutdown()
        self.server.server_close()


def start_runtime_client(
    api: RuntimeApi, handler: str, env: dict[str, str], cwd: Path
) -> subprocess.Popen[bytes]:
    """Run ``python -m awslambdaric HANDLER`` against ``api``."""
    env = {
        **env,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "stateshift-test",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/stateshift-test",
        "AWS_LAMBDA_LOG_STREAM_NAME": "test",
        "AWS_REGION": "eu-west-1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", handler],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
