"""A long-running worker: a loop of invocations on a few threads.

``app.worker(concurrency=4)`` runs four threads that each claim one due
workflow at a time and run it, and one coordinating loop that starts due
schedule slots and the other periodic work of a tick. An idle thread
sleeps until the next due time the store knows of, at most ``max_sleep``
(events and starts from other processes are seen within that long); it
never spins.

SIGTERM or SIGINT (or :meth:`Worker.stop`) stops the claiming. A workflow
in flight finishes the step it is running, then is handed back, due at
once, for the next worker: its invocation's budget is cut to zero, which
the engine already honours between steps. Then the worker returns, and the
``stateshift worker`` command exits 0.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from stateshift._durations import Duration, to_seconds
from stateshift.workflows._context import Invocation
from stateshift.workflows._runner import run_claim

if TYPE_CHECKING:
    from stateshift.workflows.api import WorkflowsMixin

__all__ = ["Worker"]

logger = logging.getLogger(__name__)

ERROR_BACKOFF_SECONDS = 1.0
"""How long a thread waits after an unexpected error (a lost database)."""


class Worker:
    """Runs due work until stopped; see the module docstring."""

    def __init__(
        self,
        app: WorkflowsMixin,
        *,
        concurrency: int = 1,
        max_sleep: Duration = 1.0,
        shutdown_timeout: Duration = 30.0,
    ) -> None:
        """Prepare a worker (nothing runs until :meth:`run`).

        Args:
            app: the app whose workflows to run.
            concurrency: threads running workflows at once.
            max_sleep: the longest an idle thread sleeps between looks.
            shutdown_timeout: how long a stop waits for steps in flight.
        """
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError("concurrency must be a positive integer")
        self.app = app
        self.concurrency = concurrency
        self.max_sleep_seconds = to_seconds(max_sleep, name="max_sleep")
        if self.max_sleep_seconds <= 0:
            raise ValueError("max_sleep must be more than zero")
        self.shutdown_timeout_seconds = to_seconds(
            shutdown_timeout, name="shutdown_timeout"
        )
        self.invocations = 0
        """Workflow invocations run so far."""
        self._stopping = threading.Event()
        self._wakeup = threading.Condition()
        self._lock = threading.Lock()
        self._inflight: set[Invocation] = set()

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._stopping.is_set()

    def stop(self) -> None:
        """Stop claiming; hand in-flight workflows back after their step."""
        self._stopping.set()
        with self._lock:
            for invocation in self._inflight:
                # A zero budget: the engine releases the workflow before it
                # would start its next step.
                invocation.deadline = time.monotonic()
        with self._wakeup:
            self._wakeup.notify_all()

    def run(self) -> None:
        """Run until stopped; on the main thread, SIGTERM and SIGINT stop it."""
        logger.info(
            "worker %s starting with %d thread(s)",
            self.app.worker_id,
            self.concurrency,
            extra={"event": "worker.started", "worker_id": self.app.worker_id},
        )
        with self._signals():
            threads = [
                threading.Thread(
                    target=self._loop, name=f"stateshift-worker-{n}", daemon=True
                )
                for n in range(self.concurrency)
            ]
            for thread in threads:
                thread.start()
            self._coordinate()
            deadline = time.monotonic() + self.shutdown_timeout_seconds
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
        unfinished = sum(thread.is_alive() for thread in threads)
        if unfinished:
            # Their leases expire, or this worker id reclaims them at restart.
            logger.warning(
                "worker %s stopped with %d step(s) still running",
                self.app.worker_id,
                unfinished,
                extra={"event": "worker.abandoned", "worker_id": self.app.worker_id},
            )
        logger.info(
            "worker %s stopped after %d invocation(s)",
            self.app.worker_id,
            self.invocations,
            extra={"event": "worker.stopped", "worker_id": self.app.worker_id},
        )

    @contextmanager
    def _signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            logger.info(
                "worker %s got signal %d: finishing in-flight steps",
                self.app.worker_id,
                signum,
                extra={"event": "worker.stopping", "worker_id": self.app.worker_id},
            )
            self.stop()

        previous: dict[signal.Signals, Any] = {}
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            previous[stop_signal] = signal.signal(stop_signal, handle)
        try:
            yield
        finally:
            for stop_signal, handler in previous.items():
                signal.signal(stop_signal, handler)

    # --- the loops --------------------------------------------------------

    def _coordinate(self) -> None:
        """Start due schedule slots and do periodic upkeep until stopped."""
        while not self._stopping.is_set():
            try:
                wake_at = self.app._before_due_work()
            except Exception:
                logger.exception(
                    "worker %s: periodic work failed",
                    self.app.worker_id,
                    extra={"event": "worker.error", "worker_id": self.app.worker_id},
                )
                wake_at = None
            with self._wakeup:
                self._wakeup.notify_all()
            self._stopping.wait(self._sleep_seconds(wake_at))

    def _loop(self) -> None:
        retried = False
        while not self._stopping.is_set():
            try:
                ran = self._run_one()
            except Exception:
                logger.exception(
                    "worker %s: running due work failed",
                    self.app.worker_id,
                    extra={"event": "worker.error", "worker_id": self.app.worker_id},
                )
                self._stopping.wait(ERROR_BACKOFF_SECONDS)
                continue
            if ran:
                retried = False
                continue
            wake_at = self.app._workflow_engine.next_wake_at()
            if wake_at is not None and wake_at <= self.app.clock() and not retried:
                # Became due between our claim and this look: look again at
                # once, but only once, so unclaimable due work cannot spin.
                retried = True
                continue
            retried = False
            with self._wakeup:
                if not self._stopping.is_set():
                    self._wakeup.wait(self._sleep_seconds(wake_at))

    def _run_one(self) -> bool:
        invocation = Invocation()
        with self._lock:
            self._inflight.add(invocation)
        try:
            if self._stopping.is_set():
                return False
            claim = self.app._workflow_engine.claim_next()
            if claim is None:
                return False
            run_claim(self.app, claim, invocation)
            with self._lock:
                self.invocations += 1
            return True
        finally:
            with self._lock:
                self._inflight.discard(invocation)

    def _sleep_seconds(self, wake_at: float | None) -> float:
        if wake_at is None:
            return self.max_sleep_seconds
        delay = wake_at - float(self.app.clock())
        if delay <= 0:
            return self.max_sleep_seconds
        return min(delay, self.max_sleep_seconds)
