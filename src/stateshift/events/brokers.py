"""Relays to real brokers, both ways: NATS JetStream and Redis Streams.

Outbound, a sink is handed to ``app.relay_outbox(sink)``. The broker gets
the outbox message id as its deduplication id (NATS ``Nats-Msg-Id``; for
Redis, a ``SET NX`` marker checked in the same script as the ``XADD``), so
a relay that crashes after sending and before recording sends a duplicate
the broker drops within its deduplication window.

Inbound, a source reads the broker and hands each message to ``deliver``
(the inbox) before acknowledging it. A consumer killed between its effect
and its acknowledgement gets the message again, and the inbox row written
with the effect makes the second delivery a no-op.

nats-py is asynchronous: these classes run it on a private event loop in a
background thread, so they can be called from sync code (and from async
code through ``asyncio.to_thread``). Payloads on the wire are the codec's
bytes; message id, topic and key travel as headers (NATS) or fields (Redis).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from stateshift._durations import Duration, to_seconds
from stateshift.events.topics import HeldBack, Message, deliver, send_each

if TYPE_CHECKING:
    from stateshift.app import AppBase

logger = logging.getLogger(__name__)

T = TypeVar("T")

MSG_ID_HEADER = "Nats-Msg-Id"
TOPIC_HEADER = "Stateshift-Topic"
KEY_HEADER = "Stateshift-Key"


class _LoopThread:
    """An event loop of our own, running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="stateshift-broker", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


def _import_nats() -> Any:
    try:
        import nats
    except ModuleNotFoundError as exc:  # pragma: no cover
        raise ImportError(
            "the NATS relay needs nats-py: pip install 'stateshift[nats]'"
        ) from exc
    return nats


class _NatsClient:
    """One lazily opened NATS connection with its JetStream context."""

    def __init__(self, servers: str | list[str], options: dict[str, Any]) -> None:
        self.servers = servers
        self.options = options
        self.loop = _LoopThread()
        self.nc: Any = None
        self.js: Any = None

    async def connect(self) -> Any:
        if self.nc is None:
            nats = _import_nats()
            self.nc = await nats.connect(self.servers, **self.options)
            self.js = self.nc.jetstream()
        return self.js

    def close(self) -> None:
        if self.nc is not None:
            try:
                self.loop.run(self.nc.close(), 10)
            except Exception:
                logger.debug("closing the NATS connection failed", exc_info=True)
            self.nc = None
        self.loop.close()


class NatsJetStreamSink:
    """Publishes outbox messages to JetStream subjects ``prefix + topic``.

    The stream covering those subjects must exist; its ``duplicate_window``
    is the deduplication window.
    """

    def __init__(
        self,
        servers: str | list[str] = "nats://127.0.0.1:4222",
        *,
        subject_prefix: str = "",
        name: str = "nats",
        timeout: Duration = 5.0,
        region: str | None = None,
        **connect_options: Any,
    ) -> None:
        self.name = name
        self.region = region
        """Region of the consumers; the relay sends only what it may process."""
        self.subject_prefix = subject_prefix
        self.timeout_seconds = to_seconds(timeout, name="timeout")
        self._client = _NatsClient(servers, connect_options)

    def send(self, messages: list[Message]) -> list[BaseException | None]:
        return self._client.loop.run(self._send(messages))

    async def _send(self, messages: list[Message]) -> list[BaseException | None]:
        js = await self._client.connect()
        failed_keys: set[str] = set()
        outcomes: list[BaseException | None] = []
        for message in messages:
            if message.key is not None and message.key in failed_keys:
                outcomes.append(HeldBack(message.message_id))
                continue
            headers = {MSG_ID_HEADER: message.message_id, TOPIC_HEADER: message.topic}
            if message.key is not None:
                headers[KEY_HEADER] = message.key
            try:
                await js.publish(
                    self.subject_prefix + message.topic,
                    message.payload,
                    timeout=self.timeout_seconds,
                    headers=headers,
                )
                outcomes.append(None)
            except Exception as exc:
                if message.key is not None:
                    failed_keys.add(message.key)
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        """Close the connection and the background loop."""
        self._client.close()


class NatsJetStreamSource:
    """Consumes a JetStream durable pull consumer into the app's subscribers."""

    def __init__(
        self,
        app: AppBase,
        *,
        stream: str,
        durable: str,
        subject: str = ">",
        servers: str | list[str] = "nats://127.0.0.1:4222",
        subject_prefix: str = "",
        batch_size: int = 50,
        retry_delay: Duration = 1.0,
        **connect_options: Any,
    ) -> None:
        self.app = app
        self.stream = stream
        self.durable = durable
        self.subject = subject
        self.subject_prefix = subject_prefix
        self.batch_size = batch_size
        self.retry_delay_seconds = to_seconds(retry_delay, name="retry_delay")
        self._client = _NatsClient(servers, connect_options)
        self._subscription: Any = None

    def consume(self, budget: Duration = 10.0) -> int:
        """Handle messages until none arrives or ``budget`` is spent."""
        seconds = to_seconds(budget, name="budget")
        return self._client.loop.run(self._consume(seconds), seconds + 30)

    async def _consume(self, budget_seconds: float) -> int:
        nats = _import_nats()
        js = await self._client.connect()
        if self._subscription is None:
            self._subscription = await js.pull_subscribe(
                self.subject, durable=self.durable, stream=self.stream
            )
        deadline = time.monotonic() + budget_seconds
        handled = 0
        while (left := deadline - time.monotonic()) > 0:
            try:
                batch = await self._subscription.fetch(
                    self.batch_size, timeout=max(0.05, min(left, 1.0))
                )
            except nats.errors.TimeoutError:
                break
            for raw in batch:
                handled += await self._handle(raw)
        return handled

    async def _handle(self, raw: Any) -> int:
        headers = raw.headers or {}
        message_id = headers.get(MSG_ID_HEADER) or (
            f"{self.stream}:{raw.metadata.sequence.stream}"
        )
        topic = headers.get(TOPIC_HEADER) or raw.subject.removeprefix(
            self.subject_prefix
        )
        message = Message(message_id, topic, headers.get(KEY_HEADER), raw.data)
        try:
            await asyncio.to_thread(deliver, self.app, message)
        except Exception:
            await raw.nak(delay=self.retry_delay_seconds)
            return 0
        await raw.ack()
        return 1

    def close(self) -> None:
        """Close the connection and the background loop."""
        self._client.close()


def _redis_client(url: str, client: Any) -> Any:
    if client is not None:
        return client
    try:
        import redis
    except ModuleNotFoundError as exc:  # pragma: no cover
        raise ImportError(
            "the Redis relay needs redis: pip install 'stateshift[redis]'"
        ) from exc
    return redis.Redis.from_url(url)


_XADD_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[5]) then
    return redis.call('XADD', KEYS[1], '*', 'id', ARGV[1], 'topic', ARGV[2],
                      'key', ARGV[3], 'payload', ARGV[4])
end
return false
"""


class RedisStreamsSink:
    """Appends outbox messages to the stream ``prefix + topic`` with XADD."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Any = None,
        stream_prefix: str = "stateshift:",
        name: str = "redis",
        dedup_window: Duration = 86_400,
        region: str | None = None,
    ) -> None:
        self.name = name
        self.region = region
        """Region of the consumers; the relay sends only what it may process."""
        self.stream_prefix = stream_prefix
        self.dedup_window_seconds = max(1, int(to_seconds(dedup_window)))
        self._redis = _redis_client(url, client)
        self._xadd = self._redis.register_script(_XADD_ONCE)

    def send(self, messages: list[Message]) -> list[BaseException | None]:
        return send_each(messages, self._add)

    def _add(self, message: Message) -> None:
        # XADD unless this message id was added within the dedup window.
        self._xadd(
            keys=[
                self.stream_prefix + message.topic,
                f"{self.stream_prefix}sent:{message.message_id}",
            ],
            args=[
                message.message_id,
                message.topic,
                message.key or "",
                message.payload,
                self.dedup_window_seconds,
            ],
        )


class RedisStreamsSource:
    """Reads streams with a consumer group into the app's subscribers.

    Entries left pending by a consumer that died are claimed again once
    they have been idle for ``claim_idle``.
    """

    def __init__(
        self,
        app: AppBase,
        *,
        topics: Iterable[str],
        group: str,
        consumer: str | None = None,
        url: str = "redis://127.0.0.1:6379/0",
        client: Any = None,
        stream_prefix: str = "stateshift:",
        batch_size: int = 50,
        claim_idle: Duration = 30.0,
    ) -> None:
        self.app = app
        self.streams = {stream_prefix + t: t for t in topics}
        self.group = group
        self.consumer = consumer or app.worker_id
        self.batch_size = batch_size
        self.claim_idle_ms = int(to_seconds(claim_idle, name="claim_idle") * 1000)
        self._redis = _redis_client(url, client)
        self._groups_ready = False

    def _ensure_groups(self) -> None:
        if self._groups_ready:
            return
        for stream in self.streams:
            try:
                self._redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except Exception as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def consume(self, budget: Duration = 10.0) -> int:
        """Handle entries until none is waiting or ``budget`` is spent."""
        self._ensure_groups()
        deadline = time.monotonic() + to_seconds(budget, name="budget")
        handled = 0
        for stream in self.streams:
            # Entries a dead consumer left pending come first.
            reply = self._redis.xautoclaim(
                stream,
                self.group,
                self.consumer,
                self.claim_idle_ms,
                start_id="0-0",
                count=self.batch_size,
            )
            handled += self._handle(stream, reply[1])
        while time.monotonic() < deadline:
            block_ms = max(1, int(min(deadline - time.monotonic(), 0.2) * 1000))
            replies = self._redis.xreadgroup(
                self.group,
                self.consumer,
                {stream: ">" for stream in self.streams},
                count=self.batch_size,
                block=block_ms,
            )
            if not replies:
                break
            for stream, entries in replies:
                handled += self._handle(_text(stream), entries)
        return handled

    def _handle(self, stream: str, entries: list[Any]) -> int:
        handled = 0
        for entry_id, fields in entries:
            if not fields:
                continue  # deleted from the stream while pending
            data = {_text(k): v for k, v in fields.items()}
            key = _text(data.get("key", b"")) or None
            message = Message(
                _text(data["id"]),
                _text(data.get("topic", b"")) or self.streams[stream],
                key,
                bytes(data["payload"]),
            )
            try:
                deliver(self.app, message)
            except Exception:
                # Left pending: claimed again after claim_idle.
                continue
            self._redis.xack(stream, self.group, entry_id)
            handled += 1
        return handled


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)
