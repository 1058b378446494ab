"""Spans per workflow invocation and step attempt; log records that carry
the workflow id and step; silence while replaying."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock
from stateshift.workflows.telemetry import WorkflowLogFilter

trace = pytest.importorskip("opentelemetry.trace")
sdk_trace = pytest.importorskip("opentelemetry.sdk.trace")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip(
    "opentelemetry.sdk.trace.export.in_memory_span_exporter"
)


@pytest.fixture(scope="module")
def exporter() -> Any:
    # The global provider can be set once per process: reuse an SDK one if
    # another test set it, and add our exporter to it.
    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk_trace.TracerProvider):
        provider = sdk_trace.TracerProvider()
        trace.set_tracer_provider(provider)
    memory = in_memory.InMemorySpanExporter()
    provider.add_span_processor(export.SimpleSpanProcessor(memory))
    return memory


@pytest.fixture
def spans(exporter: Any) -> Iterator[Any]:
    exporter.clear()
    yield exporter
    exporter.clear()


@pytest.fixture
def app(tmp_path: Any) -> Iterator[ss.App]:
    application = ss.App(
        f"sqlite:///{tmp_path / 't.db'}",
        clock=ManualClock(5_000_000.0),
        default_retry=ss.RetryPolicy(max_attempts=2, initial_interval=0.001),
    )
    yield application
    application.close()


def test_each_invocation_and_step_attempt_has_a_span(app: ss.App, spans: Any) -> None:
    calls = {"flaky": 0}

    @app.step(name="flaky")
    def flaky() -> str:
        calls["flaky"] += 1
        if calls["flaky"] == 1:
            raise ConnectionError("first try fails")
        return "ok"

    @app.workflow(name="traced")
    def traced() -> str:
        value = flaky()
        ss.sleep(60)
        return value

    app.run(traced, workflow_id="t-1")
    assert isinstance(app.clock, ManualClock)
    app.clock.advance(60)
    app.run_until_idle()

    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    assert names == ["step flaky", "step flaky", "workflow traced", "workflow traced"]
    first, second, suspended, completed = finished
    assert first.attributes["stateshift.attempt"] == 1
    assert first.attributes["stateshift.status"] == "error"
    assert second.attributes["stateshift.attempt"] == 2
    assert second.attributes["stateshift.status"] == "ok"
    assert second.attributes["stateshift.workflow_id"] == "t-1"
    assert second.parent is not None
    assert second.parent.span_id == suspended.context.span_id
    assert suspended.attributes["stateshift.outcome"] == "suspended"
    assert completed.attributes["stateshift.outcome"] == "completed"
    assert completed.attributes["stateshift.workflow"] == "traced"
    # The replayed step did not run again, so it has no second span.
    assert calls["flaky"] == 2


def test_a_failing_workflow_span_records_the_error(app: ss.App, spans: Any) -> None:
    @app.workflow(name="broken")
    def broken() -> None:
        raise ValueError("bad input")

    app.run(broken, workflow_id="b-1")
    assert app.status("b-1").status is ss.WorkflowStatus.FAILED
    (span,) = spans.get_finished_spans()
    assert span.attributes["stateshift.outcome"] == "failed"
    assert span.status.status_code.name == "ERROR"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.addFilter(WorkflowLogFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger()
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(previous)


def test_records_carry_workflow_and_step_and_replay_is_silent(
    app: ss.App, captured: Capture
) -> None:
    log = logging.getLogger("shop")

    @app.step(name="charge")
    def charge(cents: int) -> int:
        log.info("charging %d", cents)
        return cents

    @app.workflow(name="checkout")
    def checkout() -> int:
        log.info("checkout begins")
        paid = charge(500)
        log.info("charged, waiting")
        ss.sleep(3_600)
        log.info("done")
        return paid

    app.run(checkout, workflow_id="c-1")
    assert isinstance(app.clock, ManualClock)
    app.clock.advance(3_600)
    app.run_until_idle()
    app.run_until_idle()

    shop = [r for r in captured.records if r.name == "shop"]
    assert [(r.getMessage(), r.workflow_id, r.step) for r in shop] == [  # type: ignore[attr-defined]
        ("checkout begins", "c-1", None),
        ("charging 500", "c-1", "charge"),
        ("charged, waiting", "c-1", None),
        ("done", "c-1", None),
    ]
    engine = [
        r
        for r in captured.records
        if str(getattr(r, "event", "")).startswith(("step.", "workflow."))
    ]
    succeeded = [r for r in engine if getattr(r, "event", "") == "step.succeeded"]
    assert len(succeeded) == 1  # the replayed step logged nothing
    assert len(engine) == 3
    assert all(getattr(r, "workflow_id", None) == "c-1" for r in engine)


def test_records_outside_workflows_pass_untouched(captured: Capture) -> None:
    logging.getLogger("shop").warning("plain")
    (record,) = [r for r in captured.records if r.name == "shop"]
    assert not hasattr(record, "workflow_id")
