"""The outbox and its relay, on both store backends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.events import Message
from stateshift.events._units import commit
from stateshift.events.topics import relay_outbox
from stateshift.unit import Unit, unit_scope


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config)
    yield application
    application.close()


class RecordingSink:
    """A sink that fails on chosen message payloads."""

    def __init__(
        self, app: ss.App, name: str = "recording", fail: set[Any] | None = None
    ) -> None:
        self.app = app
        self.name = name
        self.fail = fail or set()
        self.sent: list[tuple[str | None, Any]] = []

    def send(self, messages: list[Message]) -> list[BaseException | None]:
        from stateshift.events import send_each

        def one(message: Message) -> None:
            value = self.app.codec.decode(
                message.payload, aad=message.message_id.encode()
            )
            if value in self.fail:
                raise ConnectionError(f"broker refused {value}")
            self.sent.append((message.key, value))

        return send_each(messages, one)


def test_a_message_published_in_a_unit_leaves_only_if_the_unit_commits(
    app: ss.App,
) -> None:
    sink = RecordingSink(app)
    rolled_back = Unit(app.store)
    with unit_scope(rolled_back):
        app.publish("orders", "never")
    kept = Unit(app.store)
    with unit_scope(kept):
        app.publish("orders", "kept")
    commit(app.store, kept)
    assert app.relay_outbox(sink) == 1
    assert sink.sent == [(None, "kept")]


def test_published_messages_are_relayed_once_in_order(app: ss.App) -> None:
    sink = RecordingSink(app)
    ids = [app.publish("t", n, key=f"k{n % 3}") for n in range(30)]
    assert len(set(ids)) == 30
    assert app.relay_outbox(sink, batch_size=7) == 30
    assert [v for _, v in sink.sent] == list(range(30))
    assert app.relay_outbox(sink) == 0
    other = RecordingSink(app, "another-sink")
    assert app.relay_outbox(other) == 30, "each sink gets every message"


def test_a_failing_message_holds_back_its_key_only(app: ss.App) -> None:
    sink = RecordingSink(app, fail={1})
    for n in range(6):
        app.publish("t", n, key="even" if n % 2 == 0 else "odd")
    assert relay_outbox(app, sink, retry_delay=0) == 3
    assert sink.sent == [("even", 0), ("even", 2), ("even", 4)]
    sink.fail.clear()
    assert relay_outbox(app, sink, retry_delay=0) == 3
    assert [v for k, v in sink.sent if k == "odd"] == [1, 3, 5]


def test_a_message_the_sink_always_refuses_is_given_up_after_max_attempts(
    app: ss.App,
) -> None:
    sink = RecordingSink(app, fail={"poison"})
    app.publish("t", "poison", key="k")
    app.publish("t", "after", key="k")
    for _ in range(3):
        relay_outbox(app, sink, max_attempts=3, retry_delay=0)
    assert sink.sent == [("k", "after")]
    with app.store.read() as tx:
        row = tx.fetchone(
            "SELECT status, attempts, last_error FROM {p}outbox_deliveries "
            "WHERE sink = ? AND status = 'dead'",
            ("recording",),
        )
    assert row == ("dead", 3, "ConnectionError: broker refused poison")


def test_a_second_relay_waits_for_the_first_ones_lease(app: ss.App) -> None:
    app.publish("t", 1)
    with app.store.transaction() as tx:
        tx.execute(
            "INSERT INTO {p}relay_leases (sink, owner, expires_at) "
            "VALUES ('recording', 'someone-else', {now} + 60)"
        )
    sink = RecordingSink(app)
    assert app.relay_outbox(sink) == 0
    assert sink.sent == []


def test_old_outbox_messages_can_be_pruned(app: ss.App) -> None:
    app.publish("t", 1)
    app.relay_outbox(RecordingSink(app))
    assert app.prune_outbox(older_than=3600) == 0
    time.sleep(0.01)  # the database clock has millisecond steps
    assert app.prune_outbox(older_than=0) == 1


def test_bad_topics_and_keys_are_refused(app: ss.App) -> None:
    with pytest.raises(ValueError):
        app.publish("", 1)
    with pytest.raises(TypeError):
        app.publish("t", 1, key=5)  # type: ignore[arg-type]
    with pytest.raises(ss.PayloadTooLarge):
        app.publish("t", "x" * 300_000)
