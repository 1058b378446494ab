"""Idempotent handlers on both store backends and on Redis."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import stateshift as ss
from stateshift.events import execution_owner
from stateshift.unit import current_unit


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config, pool_size=4)
    with application.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}t_effects (k TEXT PRIMARY KEY, n INTEGER)")
    yield application
    application.close()


def bump(key: str) -> None:
    """A store effect, buffered in the current unit."""
    unit = current_unit()
    assert unit is not None

    def write(tx: Any) -> None:
        if not tx.execute("UPDATE {p}t_effects SET n = n + 1 WHERE k = ?", (key,)):
            tx.execute("INSERT INTO {p}t_effects (k, n) VALUES (?, 1)", (key,))

    unit.add(write)


def effects(app: ss.App, key: str) -> int:
    with app.store.read() as tx:
        row = tx.fetchone("SELECT n FROM {p}t_effects WHERE k = ?", (key,))
    return int(row[0]) if row else 0


class LambdaContext:
    def __init__(self, millis: int) -> None:
        self.millis = millis

    def get_remaining_time_in_millis(self) -> int:
        return self.millis


def test_a_second_call_returns_the_stored_result_without_running(app: ss.App) -> None:
    calls = []

    @app.idempotent(key="payment_id", ttl=60)
    def charge(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event)
        bump(event["payment_id"])
        return {"charged": event["cents"], "at": len(calls)}

    first = charge({"payment_id": "p1", "cents": 500})
    second = charge({"payment_id": "p1", "cents": 500})
    assert first == second == {"charged": 500, "at": 1}
    assert len(calls) == 1
    assert effects(app, "p1") == 1


def test_the_same_key_with_another_payload_is_refused(app: ss.App) -> None:
    @app.idempotent(key="payment_id")
    def charge(event: dict[str, Any]) -> int:
        return int(event["cents"])

    charge({"payment_id": "p1", "cents": 500})
    with pytest.raises(ss.IdempotencyKeyMismatch) as caught:
        charge({"payment_id": "p1", "cents": 900})
    assert caught.value.key.endswith("#p1")


def test_redelivery_metadata_does_not_make_a_mismatch(app: ss.App) -> None:
    @app.idempotent(key="body.payment_id")
    def on_record(record: dict[str, Any]) -> str:
        return "ok"

    first = {
        "messageId": "m1",
        "receiptHandle": "AQEB-first",
        "body": '{"payment_id": "p7", "cents": 5}',
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "17"},
    }
    again = {
        **first,
        "receiptHandle": "AQEB-second",
        "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "17"},
    }
    assert on_record(first) == on_record(again) == "ok"


def test_a_key_callable_and_an_exclude_list_are_honoured(app: ss.App) -> None:
    @app.idempotent(key=lambda event, context=None: event["id"], exclude={"trace"})
    def handler(event: dict[str, Any], context: Any = None) -> int:
        return 1

    assert handler({"id": "a", "trace": "x"}, LambdaContext(3000)) == 1
    assert handler({"id": "a", "trace": "y"}, LambdaContext(10)) == 1


def test_a_missing_key_path_is_a_clear_error(app: ss.App) -> None:
    @app.idempotent(key="body.payment_id")
    def handler(event: dict[str, Any]) -> int:
        return 1

    with pytest.raises(ss.InvalidKey, match="payment_id"):
        handler({"body": {"other": 1}})


def test_a_duplicate_during_the_first_call_is_in_progress(app: ss.App) -> None:
    started, release = threading.Event(), threading.Event()

    @app.idempotent(key="id")
    def slow(event: dict[str, Any]) -> str:
        started.set()
        release.wait(10)
        return "done"

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(slow, {"id": "k"})
        assert started.wait(10)
        with pytest.raises(ss.IdempotencyInProgress) as caught:
            slow({"id": "k"})
        assert caught.value.retryable is True
        release.set()
        assert first.result(10) == "done"
    assert slow({"id": "k"}) == "done"


def test_a_handler_that_raises_releases_the_key_and_rolls_back(app: ss.App) -> None:
    attempts = []

    @app.idempotent(key="id")
    def flaky(event: dict[str, Any]) -> str:
        attempts.append(1)
        bump("flaky")
        if len(attempts) == 1:
            raise RuntimeError("boom")
        return "ok"

    with pytest.raises(RuntimeError):
        flaky({"id": "k"})
    assert effects(app, "flaky") == 0
    assert flaky({"id": "k"}) == "ok"
    assert effects(app, "flaky") == 1


def test_release_on_error_false_keeps_the_key_until_it_expires(app: ss.App) -> None:
    @app.idempotent(key="id", release_on_error=False, in_progress_expiry=0.3)
    def fails(event: dict[str, Any]) -> str:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fails({"id": "k"})
    with pytest.raises(ss.IdempotencyInProgress):
        fails({"id": "k"})
    time.sleep(0.4)
    with pytest.raises(RuntimeError):
        fails({"id": "k"})


def test_a_crashed_call_blocks_retries_only_until_the_platform_deadline(
    app: ss.App,
) -> None:
    from stateshift.events.idempotency import StoreIdempotencyStore

    holder = StoreIdempotencyStore(app)
    runs = []

    @app.idempotent(key="id", holder=holder)
    def handler(event: dict[str, Any], context: Any) -> str:
        runs.append(1)
        return "ran"

    # A call that wrote its in-progress record and then died, with 100 ms
    # of its invocation left: the record expires one second after that.
    key = f"{handler.__module__}.{handler.__qualname__}#k"
    wrapper = handler.__stateshift_idempotent__  # type: ignore[attr-defined]
    call = wrapper.prepare(({"id": "k"}, LambdaContext(100)), {})
    assert 1.0 < call.expiry < 1.2
    holder.begin(key, call.digest, "crashed-owner", call.expiry)
    with pytest.raises(ss.IdempotencyInProgress):
        handler({"id": "k"}, LambdaContext(5000))
    time.sleep(1.2)
    assert handler({"id": "k"}, LambdaContext(5000)) == "ran"


def test_the_same_execution_retaking_its_key_is_not_a_duplicate(app: ss.App) -> None:
    runs = []

    @app.idempotent(key="id", release_on_error=False)
    def step_body(event: dict[str, Any]) -> int:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("crash before the checkpoint")
        return len(runs)

    token = execution_owner.set("wf-1:step-3")
    try:
        with pytest.raises(RuntimeError):
            step_body({"id": "k"})
        assert step_body({"id": "k"}) == 2
    finally:
        execution_owner.reset(token)
    assert step_body({"id": "k"}) == 2


def test_inside_a_unit_the_record_commits_with_the_units_writes(app: ss.App) -> None:
    from stateshift.events._units import commit
    from stateshift.unit import Unit, unit_scope

    @app.idempotent(key="id")
    def handler(event: dict[str, Any]) -> str:
        bump("in-unit")
        return "ok"

    unit = Unit(app.store)
    with unit_scope(unit):
        assert handler({"id": "u"}) == "ok"
    # Not committed yet: a duplicate sees the call still in progress.
    with pytest.raises(ss.IdempotencyInProgress):
        handler({"id": "u"})
    commit(app.store, unit)
    assert handler({"id": "u"}) == "ok"
    assert effects(app, "in-unit") == 1


def test_async_handlers_follow_the_same_protocol(app: ss.App) -> None:
    runs = []

    @app.idempotent(key="id")
    async def handler(event: dict[str, Any]) -> dict[str, int]:
        runs.append(1)
        bump("async")
        await asyncio.sleep(0)
        return {"n": len(runs)}

    async def main() -> list[Any]:
        return [await handler({"id": "a"}), await handler({"id": "a"})]

    assert asyncio.run(main()) == [{"n": 1}, {"n": 1}]
    assert effects(app, "async") == 1


def test_thousand_messages_delivered_three_times_have_effects_once(
    app: ss.App,
) -> None:
    """Each message arrives at once (concurrently), during, and after."""

    @app.idempotent(key="id")
    def handle(event: dict[str, Any]) -> int:
        bump(f"m{event['id'] % 50}")
        return int(event["id"])

    def deliver(event: dict[str, Any]) -> str:
        try:
            assert handle(event) == event["id"]
            return "ok"
        except ss.IdempotencyInProgress:
            return "busy"

    events = [{"id": i, "amount": i * 3} for i in range(1000)]
    with ThreadPoolExecutor(4) as pool:
        # at once: two deliveries of each message race each other
        list(pool.map(deliver, [e for e in events for _ in range(2)]))
        # after: a third delivery of each, plus retries of the busy ones
        assert set(pool.map(deliver, events)) == {"ok"}
        mismatched = [{"id": e["id"], "amount": -1} for e in events[:100]]
        for event in mismatched:
            with pytest.raises(ss.IdempotencyKeyMismatch):
                handle(event)
    total = sum(effects(app, f"m{i}") for i in range(50))
    assert total == 1000


def test_records_can_live_in_redis(app: ss.App) -> None:
    redis = pytest.importorskip("redis")
    client = redis.Redis(host="127.0.0.1", port=6379)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"test:{uuid.uuid4().hex}:"
    holder = ss.RedisIdempotencyStore(prefix=prefix, client=client)
    runs = []
    started, release = threading.Event(), threading.Event()

    @app.idempotent(key="id", holder=holder, ttl=30)
    def handler(event: dict[str, Any]) -> dict[str, Any]:
        runs.append(1)
        if event.get("slow"):
            started.set()
            release.wait(10)
        return {"id": event["id"], "runs": len(runs)}

    try:
        assert handler({"id": "a"}) == handler({"id": "a"}) == {"id": "a", "runs": 1}
        with pytest.raises(ss.IdempotencyKeyMismatch):
            handler({"id": "a", "more": 1})
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(handler, {"id": "b", "slow": True})
            assert started.wait(10)
            with pytest.raises(ss.IdempotencyInProgress):
                handler({"id": "b", "slow": True})
            release.set()
            assert first.result(10)["runs"] == 2
        ttl_ms = client.pttl(prefix + f"{handler.__module__}.{handler.__qualname__}#a")
        assert 0 < ttl_ms <= 30_000
    finally:
        for name in client.scan_iter(match=prefix + "*"):
            client.delete(name)
        client.close()


def test_expired_records_can_be_purged(app: ss.App) -> None:
    @app.idempotent(key="id", ttl=0)
    def handler(event: dict[str, Any]) -> int:
        return 1

    handler({"id": "a"})
    time.sleep(0.01)
    assert app.purge_idempotency() == 1


def test_a_workflow_step_re_run_is_not_a_duplicate_of_itself(app: ss.App) -> None:
    runs: list[str] = []

    @app.idempotent(key="id", release_on_error=False)
    def charge(event: dict[str, Any]) -> str:
        runs.append(event["id"])
        bump("charged")
        return "charged"

    @app.step(retry=ss.RetryPolicy(max_attempts=3, initial_interval=0))
    def pay(order_id: str) -> str:
        result = charge({"id": order_id})
        if len(runs) == 1:
            raise ConnectionError("the step fails after the idempotent call")
        return str(result)

    @app.workflow()
    def checkout(order_id: str) -> str:
        return pay(order_id) + "/" + pay(order_id)

    handle = app.run(checkout, "o-1", workflow_id="wf-idem")
    app.run_until_idle()
    assert handle.result(timeout=10) == "charged/charged"
    # The first attempt's effects were dropped with its step; the re-run took
    # its own in-progress key over; the second step call found it completed.
    assert runs == ["o-1", "o-1"]
    assert effects(app, "charged") == 1


def test_the_same_key_twice_in_one_unit_runs_once(app: ss.App) -> None:
    runs = []

    @app.idempotent(key="id")
    def handler(event: dict[str, Any]) -> int:
        runs.append(1)
        bump("twice")
        return len(runs)

    with app.transaction():
        assert handler({"id": "a"}) == handler({"id": "a"}) == 1
        with pytest.raises(ss.IdempotencyKeyMismatch):
            handler({"id": "a", "other": True})
    assert effects(app, "twice") == 1
    assert handler({"id": "a"}) == 1
