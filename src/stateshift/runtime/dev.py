"""The local dev server: the HTTP API, a tick loop and a pool of workers.

``stateshift dev app:app`` serves the app's HTTP API with uvicorn and runs
``--workers`` tick loops beside it, on the app's store (the embedded SQLite
file by default). With ``--ephemeral`` every invocation, request or tick,
runs in a fresh process; ``--chaos P`` kills each with probability ``P``
while it works. A service that keeps nothing in memory loses nothing.
"""

from __future__ import annotations

import base64
import importlib
import json
import logging
import os
import random
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from queue import Queue
from typing import Any

from stateshift.errors import ConfigError
from stateshift.runtime.deadline import Deadline
from stateshift.runtime.http import problem_response
from stateshift.runtime.invocation import Outcome, TickOutcome
from stateshift.runtime.service import TickReport
from stateshift.runtime.triggers import (
    HttpRequest,
    HttpResponse,
    ScheduledTick,
    Trigger,
)

logger = logging.getLogger(__name__)

HTTP_SLOTS = 4


@dataclass(frozen=True, kw_only=True)
class DevOptions:
    """How ``stateshift dev`` runs."""

    target: str
    """``module:attribute`` naming the :class:`stateshift.App`."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    """Tick loops running beside the HTTP API."""

    tick_interval_seconds: float = 1.0
    """Longest pause of an idle tick loop."""

    budget_seconds: float = 10.0
    """Time budget of every invocation."""

    ephemeral: bool = False
    """Run every invocation in a fresh process."""

    chaos: float = 0.0
    """Probability that an ephemeral invocation is killed while it works."""

    token: str | None = None
    """Bearer token of the API; without one, anyone may change things."""

    seed: int | None = None
    """Seed of the chaos, to replay a run."""


def load_app(target: str) -> Any:
    """Import ``module:attribute`` (the working directory is importable)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ConfigError("target", f"{target!r} is not 'module:attribute'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    module = importlib.import_module(module_name)
    try:
        app = getattr(module, attribute)
    except AttributeError:
        raise ConfigError(
            "target", f"module {module_name!r} has no {attribute!r}"
        ) from None
    if not callable(getattr(app, "invoker", None)):
        raise ConfigError("target", f"{target!r} is not a stateshift.App")
    return app


class ProcessInvoker:
    """Runs each trigger in a fresh child process, killing some on purpose."""

    def __init__(self, options: DevOptions) -> None:
        self.options = options
        self.random = random.Random(options.seed)
        self.killed = 0
        self._slots: Queue[str] = Queue()
        for number in range(HTTP_SLOTS):
            self._slots.put(f"dev-http-{number}")

    @contextmanager
    def slot(self) -> Iterator[str]:
        # Stable worker ids per slot: a killed invocation's successor in the
        # same slot reclaims its leases at once instead of waiting them out.
        worker_id = self._slots.get()
        try:
            yield worker_id
        finally:
            self._slots.put(worker_id)

    def invoke(self, trigger: Trigger, deadline: Deadline) -> Outcome:
        with self.slot() as worker_id:
            return self.run(trigger, deadline, worker_id)

    def run(self, trigger: Trigger, deadline: Deadline, worker_id: str) -> Outcome:
        request: dict[str, Any] = {
            "budget": deadline.remaining_seconds(),
            "token": self.options.token,
            "anonymous": self.options.token is None,
        }
        if isinstance(trigger, HttpRequest):
            request.update(
                trigger="http",
                method=trigger.method,
                path=trigger.path,
                headers=dict(trigger.headers),
                query=dict(trigger.query),
                body=base64.b64encode(trigger.body).decode("ascii"),
                request_id=trigger.request_id,
            )
        else:
            request["trigger"] = "tick"
        answer = self._child(request, worker_id, deadline)

        if isinstance(trigger, HttpRequest):
            if answer is None:
                return problem_response(
                    503,
                    "invocation_killed",
                    "the invocation was killed (chaos); retry the request",
                    {"retry-after": "0"},
                )
            return HttpResponse(
                answer["status"], base64.b64decode(answer["body"]), answer["headers"]
            )
        if answer is None:
            return TickOutcome(None)
        return TickOutcome(
            TickReport(
                ran=answer["ran"], next_wake_up_seconds=answer["next_wake_up_seconds"]
            )
        )

    def _child(
        self, request: dict[str, Any], worker_id: str, deadline: Deadline
    ) -> dict[str, Any] | None:
        env = dict(os.environ, STATESHIFT_WORKER_ID=worker_id)
        env["PYTHONPATH"] = os.pathsep.join(
            [os.getcwd(), *filter(None, [env.get("PYTHONPATH")])]
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "stateshift.runtime.dev_child", self.options.target],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(json.dumps(request) + "\n")
        child.stdin.close()
        ready = child.stdout.readline()
        timer: threading.Timer | None = None
        if ready == "ready\n" and self.random.random() < self.options.chaos:
            timer = threading.Timer(self.random.uniform(0.0, 0.3), child.kill)
            timer.start()
        try:
            line = child.stdout.readline()
            child.wait(timeout=deadline.remaining_seconds() + 5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            line = ""
        finally:
            if timer is not None:
                timer.cancel()
            child.stdout.close()
        if child.returncode != 0 or not line:
            self.killed += child.returncode == -9
            logger.warning(
                "invocation in process %d ended with %s",
                child.pid,
                child.returncode,
                extra={"event": "runtime.dev.killed"},
            )
            return None
        answer: dict[str, Any] = json.loads(line)
        return answer


class DevServer:
    """The HTTP API and the tick loops, until stopped."""

    def __init__(self, options: DevOptions) -> None:
        if not 0.0 <= options.chaos < 1.0:
            raise ConfigError("chaos", "must be a probability from 0 up to 1")
        if options.workers < 0:
            raise ConfigError("workers", "must be zero or more")
        self.options = options
        self.stopping = threading.Event()
        ephemeral = options.ephemeral or options.chaos > 0
        self.process_invoker = ProcessInvoker(options) if ephemeral else None
        self.app = None if ephemeral else load_app(options.target)

    def invoker(self) -> Any:
        if self.process_invoker is not None:
            return self.process_invoker
        assert self.app is not None
        return self.app.invoker(
            token=self.options.token, allow_anonymous=self.options.token is None
        )

    def tick_loop(self, number: int) -> None:
        invoker = self.invoker()
        while not self.stopping.is_set():
            deadline = Deadline.after(self.options.budget_seconds)
            try:
                if isinstance(invoker, ProcessInvoker):
                    outcome = invoker.run(
                        ScheduledTick("dev"), deadline, f"dev-worker-{number}"
                    )
                else:
                    outcome = invoker.invoke(ScheduledTick("dev"), deadline)
            except Exception:
                logger.exception("tick loop %d failed", number)
                outcome = TickOutcome(None)
            assert isinstance(outcome, TickOutcome)
            report = outcome.tick
            if report is not None and report.ran:
                continue
            pause = self.options.tick_interval_seconds
            if report is not None and report.next_wake_up_seconds is not None:
                pause = min(pause, max(0.01, report.next_wake_up_seconds))
            self.stopping.wait(pause)

    def serve(self) -> None:
        """Run until interrupted (Ctrl-C)."""
        import uvicorn

        from stateshift.runtime.asgi import AsgiApp

        threads = [
            threading.Thread(
                target=self.tick_loop, args=(n,), name=f"tick-{n}", daemon=True
            )
            for n in range(self.options.workers)
        ]
        for thread in threads:
            thread.start()
        asgi = AsgiApp(
            self.invoker(), request_timeout_seconds=self.options.budget_seconds
        )
        config = uvicorn.Config(
            asgi,
            host=self.options.host,
            port=self.options.port,
            log_level="warning",
            lifespan="on",
        )
        try:
            uvicorn.Server(config).run()
        finally:
            self.stopping.set()
            for thread in threads:
                thread.join(timeout=self.options.budget_seconds + 5)
            if self.app is not None:
                self.app.close()
