"""Idempotent handlers: one key, one execution, one stored result.

The protocol, shared by every record holder (:class:`IdempotencyStore`):

1. before the handler runs, write an *in-progress* record for the key, with
   the payload hash, an owner token and an expiry that is always set (from
   the platform's remaining time when known), so a crashed call never
   blocks its retries for longer than that;
2. a second call finds the record: another payload is refused
   (:class:`~stateshift.errors.IdempotencyKeyMismatch`), a running one is
   reported (:class:`~stateshift.errors.IdempotencyInProgress`), a
   completed one returns the stored result without running;
3. the handler runs inside a unit of work; its buffered store writes and the
   *completed* record commit in one transaction (with the store holder), so
   the effects and "this key is done" are never separated by a crash;
4. a handler that raises releases the record, so a retry runs it again.

Backends implement three primitives: ``_acquire``, ``_complete`` and
``_release``. The store holder keeps records in the ``idempotency`` table;
:class:`RedisIdempotencyStore` keeps them in Redis.

Workflow steps: a step whose result is recorded is skipped on replay, so an
idempotent function called inside it is never called again. A step that is
*re-run* (a crash, a version conflict at commit) runs as the same execution:
the owner of the record is then the step's stable id (workflow id and step
sequence, from ``ss.current()``, or :data:`execution_owner` when set), and
an in-progress record held by that owner is taken over instead of being
reported as a duplicate of itself.
"""

from __future__ import annotations

import base64
import functools
import inspect
import json
import logging
import typing
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateshift._durations import Duration, optional_seconds
from stateshift.errors import IdempotencyInProgress, IdempotencyKeyMismatch
from stateshift.events import _payload
from stateshift.events._units import commit
from stateshift.store.base import Tx
from stateshift.unit import Unit, current_unit, unit_scope

if TYPE_CHECKING:
    from stateshift.app import AppBase

logger = logging.getLogger(__name__)

execution_owner: ContextVar[str | None] = ContextVar(
    "stateshift_idempotency_owner", default=None
)
"""Stable id of the running execution (set by the workflow engine per step)."""

IN_PROGRESS = "in_progress"
COMPLETED = "completed"


@dataclass(frozen=True)
class IdempotencyRecord:
    """A record found under a key that this call could not take."""

    status: str
    """``in_progress`` or ``completed``."""
    payload_hash: str
    """SHA-256 of the payload that created the record."""
    result: bytes | None
    """The encoded result, once completed."""


class IdempotencyStore(ABC):
    """Holds idempotency records; the protocol lives here, storage below."""

    # --- primitives each backend implements ---------------------------

    @abstractmethod
    def _acquire(
        self, key: str, payload_hash: str, owner: str, expires_after_seconds: float
    ) -> IdempotencyRecord | None:
        """Write an in-progress record, or return the live one in the way.

        Must take the key when it is absent or expired, or when it is in
        progress under the same owner and payload; atomically.
        """

    @abstractmethod
    def _complete(
        self,
        key: str,
        owner: str,
        result: bytes,
        expires_after_seconds: float,
        unit: Unit,
    ) -> None:
        """Mark the key completed with ``result`` when ``unit`` commits."""

    @abstractmethod
    def _release(self, key: str, owner: str) -> None:
        """Delete the in-progress record if this owner still holds it."""

    # --- the protocol ---------------------------------------------------

    def begin(
        self, key: str, payload_hash: str, owner: str, expires_after_seconds: float
    ) -> bytes | None:
        """Claim ``key``; return ``None`` to run, or a completed call's result.

        Raises:
            IdempotencyKeyMismatch: the key was used with another payload.
            IdempotencyInProgress: another call with this key is running.
        """
        found = self._acquire(key, payload_hash, owner, expires_after_seconds)
        if found is None:
            return None
        # The payload is checked first: a reused key is a bug in the caller
        # whether or not the first call has finished.
        if found.payload_hash != payload_hash:
            raise IdempotencyKeyMismatch(
                key,
                f"idempotency key {key!r} was already used with a different "
                "payload; use a new key for a new request (delivery metadata "
                "such as receipt handles is ignored; see exclude=)",
            )
        if found.status == COMPLETED and found.result is not None:
            return found.result
        raise IdempotencyInProgress(
            key,
            f"a call with idempotency key {key!r} is running now; retry later",
        )

    def finish(
        self,
        key: str,
        owner: str,
        result: bytes,
        expires_after_seconds: float,
        unit: Unit,
    ) -> None:
        """Record the result so it commits with ``unit``."""
        self._complete(key, owner, result, expires_after_seconds, unit)

    def release(self, key: str, owner: str) -> None:
        """Give the key up after a failed call, so a retry runs again."""
        try:
            self._release(key, owner)
        except Exception:
            # The record expires anyway; the caller's own error matters more.
            logger.warning(
                "could not release idempotency key %r",
                key,
                exc_info=True,
                extra={"event": "idempotency.release_failed"},
            )


class StoreIdempotencyStore(IdempotencyStore):
    """Records in the app's store: the completed record commits with effects."""

    def __init__(self, app: AppBase) -> None:
        self._app = app

    def _acquire(
        self, key: str, payload_hash: str, owner: str, expires_after_seconds: float
    ) -> IdempotencyRecord | None:
        store = self._app.store
        q = store.queries("events")
        with store.transaction() as tx:
            taken = tx.execute(
                q["idempotency_acquire"],
                (key, payload_hash, owner, expires_after_seconds),
            )
            if taken:
                return None
            row = tx.fetchone(q["idempotency_get"], (key,))
        assert row is not None
        result = bytes(row[2]) if row[2] is not None else None
        return IdempotencyRecord(str(row[0]), str(row[1]), result)

    def _complete(
        self,
        key: str,
        owner: str,
        result: bytes,
        expires_after_seconds: float,
        unit: Unit,
    ) -> None:
        store = self._app.store
        sql = store.queries("events")["idempotency_complete"]

        def complete(tx: Tx) -> None:
            if tx.execute(sql, (result, expires_after_seconds, key, owner)) != 1:
                # Our in-progress record expired and another call took the
                # key: it will commit its own effects, so ours roll back.
                raise IdempotencyInProgress(
                    key,
                    f"the in-progress record of idempotency key {key!r} expired "
                    "while this call ran and another call took it over; this "
                    "call's effects were rolled back (raise the expiry?)",
                )

        unit.bind(store)
        unit.add(complete)

    def _release(self, key: str, owner: str) -> None:
        store = self._app.store
        with store.transaction() as tx:
            tx.execute(store.queries("events")["idempotency_release"], (key, owner))


_REDIS_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
    local record = cjson.decode(current)
    if not (record.status == 'in_progress' and record.owner == ARGV[2]
            and record.hash == ARGV[1]) then
        return current
    end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
return false
"""

_REDIS_IF_OWNER = """
local current = redis.call('GET', KEYS[1])
if not current then return 0 end
local record = cjson.decode(current)
if record.owner ~= ARGV[1] or record.status ~= 'in_progress' then return 0 end
if ARGV[2] == '' then
    redis.call('DEL', KEYS[1])
else
    record.status = 'completed'
    record.result = ARGV[2]
    redis.call('SET', KEYS[1], cjson.encode(record), 'PX', ARGV[3])
end
return 1
"""


class RedisIdempotencyStore(IdempotencyStore):
    """Records in Redis, expired by Redis itself.

    The completed record is written after the unit commits: a crash between
    the two leaves the key in progress until it expires, and the retry then
    runs the handler again. Use the store holder (the default) when the
    handler's effects are in the store and must happen once.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "stateshift:idempotency:",
        client: Any = None,
    ) -> None:
        if client is None:
            try:
                import redis
            except ModuleNotFoundError as exc:  # pragma: no cover
                raise ImportError(
                    "the Redis idempotency store needs redis: "
                    "pip install 'stateshift[redis]'"
                ) from exc
            client = redis.Redis.from_url(url)
        self._redis = client
        self.prefix = prefix
        self._acquire_script = client.register_script(_REDIS_ACQUIRE)
        self._if_owner_script = client.register_script(_REDIS_IF_OWNER)

    def _acquire(
        self, key: str, payload_hash: str, owner: str, expires_after_seconds: float
    ) -> IdempotencyRecord | None:
        record = json.dumps(
            {"status": IN_PROGRESS, "hash": payload_hash, "owner": owner}
        )
        found = self._acquire_script(
            keys=[self.prefix + key],
            args=[payload_hash, owner, record, _millis(expires_after_seconds)],
        )
        if found is None:
            return None
        data = json.loads(found)
        result = base64.b64decode(data["result"]) if "result" in data else None
        return IdempotencyRecord(data["status"], data["hash"], result)

    def _complete(
        self,
        key: str,
        owner: str,
        result: bytes,
        expires_after_seconds: float,
        unit: Unit,
    ) -> None:
        encoded = base64.b64encode(result).decode("ascii")

        def complete() -> None:
            done = self._if_owner_script(
                keys=[self.prefix + key],
                args=[owner, encoded, _millis(expires_after_seconds)],
            )
            if not done:
                logger.warning(
                    "idempotency key %r expired in Redis before its call finished",
                    key,
                    extra={"event": "idempotency.expired_while_running"},
                )

        unit.after_commit.append(complete)

    def _release(self, key: str, owner: str) -> None:
        self._if_owner_script(keys=[self.prefix + key], args=[owner, "", 0])


def _millis(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class IdempotentFunction:
    """The protocol applied to one function; ``__call__`` is the wrapper."""

    def __init__(
        self,
        app: AppBase,
        fn: Callable[..., Any],
        *,
        key: _payload.KeySpec,
        ttl: Duration | None,
        in_progress_expiry: Duration | None,
        name: str | None,
        exclude: Collection[str],
        payload: _payload.KeySpec | None,
        release_on_error: bool,
        holder: IdempotencyStore | None,
    ) -> None:
        if not (callable(key) or (isinstance(key, str) and key)):
            raise TypeError(
                "key= must be a dotted path such as 'body.id' or a callable"
            )
        self.app = app
        self.fn = fn
        self.key = key
        self.name = name or f"{fn.__module__}.{fn.__qualname__}"
        self.ttl_seconds = optional_seconds(ttl, name="ttl")
        self.in_progress_seconds = optional_seconds(
            in_progress_expiry, name="in_progress_expiry"
        )
        self.excluded = frozenset(_payload.DEFAULT_EXCLUDED_FIELDS | set(exclude))
        self.payload = payload
        self.release_on_error = release_on_error
        self.holder = holder or StoreIdempotencyStore(app)
        self.is_async = inspect.iscoroutinefunction(fn)

    # --- the steps of one call -------------------------------------------

    def prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
        """Key, payload hash, owner and in-progress expiry of one call."""
        key = f"{self.name}#{_payload.extract_key(self.key, args, kwargs)}"
        digest = _payload.payload_hash(
            args, kwargs, excluded=self.excluded, select=self.payload
        )
        owner = execution_owner.get() or _step_execution() or uuid.uuid4().hex
        expiry = self.in_progress_seconds
        if expiry is None:
            remaining = _payload.remaining_seconds(args, kwargs)
            # One second past the platform's deadline: by then the platform
            # has killed the call, so a retry may run.
            expiry = (
                remaining + 1.0
                if remaining is not None
                else self.app.settings.idempotency_in_progress_seconds
            )
        return _Call(key, digest, owner, max(expiry, 0.001))

    def earlier_in_unit(self, call: _Call) -> bytes | None:
        """The result of the same key completed earlier in the current unit.

        Its record is not committed yet, so the holder would report the key
        in progress (or, for the same execution, let it run twice).

        Raises:
            IdempotencyKeyMismatch: the earlier call had another payload.
        """
        unit = current_unit()
        earlier = None if unit is None else unit.cache.get(("idempotency", call.key))
        if earlier is None:
            return None
        digest, result = earlier
        if digest != call.digest:
            raise IdempotencyKeyMismatch(
                call.key,
                f"idempotency key {call.key!r} was already used with a different "
                "payload in this transaction",
            )
        return bytes(result)

    def replay(self, call: _Call, stored: bytes) -> Any:
        """Decode a completed call's stored result."""
        logger.debug(
            "idempotency key %r already completed: returning its result",
            call.key,
            extra={"event": "idempotency.replayed"},
        )
        return self.app.codec.decode(
            stored,
            type_hint=_return_hint(self.fn),
            what=f"stored result of {self.name!r}",
            aad=call.key.encode(),
        )

    def record(self, call: _Call, result: Any, unit: Unit) -> None:
        """Encode the result and buffer the completed record in ``unit``."""
        encoded = self.app.codec.encode(
            result, what=f"result of idempotent {self.name!r}", aad=call.key.encode()
        )
        ttl = self.ttl_seconds
        if ttl is None:
            ttl = self.app.settings.idempotency_ttl_seconds
        self.holder.finish(call.key, call.owner, encoded, ttl, unit)
        unit.cache[("idempotency", call.key)] = (call.digest, encoded)

    def failed(self, call: _Call) -> None:
        if self.release_on_error:
            self.holder.release(call.key, call.owner)

    # --- sync and async wrappers ------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = self.prepare(args, kwargs)
        stored = self.earlier_in_unit(call)
        if stored is None:
            stored = self.holder.begin(call.key, call.digest, call.owner, call.expiry)
        if stored is not None:
            return self.replay(call, stored)
        outer = current_unit()
        unit = outer if outer is not None else Unit(self.app.store)
        try:
            with unit_scope(unit):
                result = self.fn(*args, **kwargs)
            self.record(call, result, unit)
            if outer is None:
                commit(self.app.store, unit)
        except BaseException:
            self.failed(call)
            raise
        return result

    async def call_async(self, *args: Any, **kwargs: Any) -> Any:
        """The same protocol for a coroutine function; never blocks the loop."""
        import asyncio

        call = self.prepare(args, kwargs)
        stored = self.earlier_in_unit(call)
        if stored is None:
            stored = await asyncio.to_thread(
                self.holder.begin, call.key, call.digest, call.owner, call.expiry
            )
        if stored is not None:
            return self.replay(call, stored)
        outer = current_unit()
        unit = outer if outer is not None else Unit(self.app.store)
        try:
            with unit_scope(unit):
                result = await self.fn(*args, **kwargs)
            self.record(call, result, unit)
            if outer is None:
                await asyncio.to_thread(commit, self.app.store, unit)
        except BaseException:
            await asyncio.to_thread(self.failed, call)
            raise
        return result

    def wrapper(self) -> Callable[..., Any]:
        """A function with ``fn``'s name and signature that runs the protocol."""
        if self.is_async:

            @functools.wraps(self.fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                return await self.call_async(*args, **kwargs)

            run_async.__stateshift_idempotent__ = self  # type: ignore[attr-defined]
            return run_async

        @functools.wraps(self.fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            return self(*args, **kwargs)

        run.__stateshift_idempotent__ = self  # type: ignore[attr-defined]
        return run


@dataclass(frozen=True)
class _Call:
    key: str
    digest: str
    owner: str
    expiry: float


def _step_execution() -> str | None:
    """The running workflow step's stable id (workflow id and sequence)."""
    from stateshift.workflows import current

    context = current()
    return None if context is None else context.idempotency_key


def _return_hint(fn: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(fn).get("return")
    except Exception:
        return None
