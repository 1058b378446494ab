"""The state methods of :class:`stateshift.App`: namespaces, transactions, entities."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar, overload

from stateshift._durations import Duration, to_seconds
from stateshift.state._keys import DEFAULT_UPDATE_ATTEMPTS

# The state modules are imported on first use: a function that keeps no
# state does not pay for them at cold start.
if TYPE_CHECKING:
    from stateshift.codec import Codec
    from stateshift.config import Settings
    from stateshift.placement.router import Placement
    from stateshift.state._rows import ItemRows
    from stateshift.state.blobs import BlobStore
    from stateshift.state.cache import RedisCache
    from stateshift.state.entities import EntityRef, EntityType
    from stateshift.state.namespace import Namespace
    from stateshift.state.transactions import Transaction
    from stateshift.store import Store

__all__ = ["StateMixin"]

C = TypeVar("C", bound=type)

DEFAULT_TOMBSTONE_SECONDS = 86_400.0


class StateMixin:
    """Versioned state on the app's store."""

    settings: Settings
    codec: Codec

    if TYPE_CHECKING:

        @property
        def store(self) -> Store: ...

        @property
        def placement(self) -> Placement: ...

    # --- namespaces -------------------------------------------------------

    def state(
        self,
        name: str,
        *,
        type: Any = None,
        cache: RedisCache | None = None,
        residency: str | None = None,
        tenant: str | None = None,
    ) -> Namespace[Any]:
        """The namespace ``name`` of versioned key-value state.

        Args:
            name: the namespace, like ``"carts"``.
            type: decode values as this type (a dataclass, a pydantic
                model, ``list[Item]``...).
            cache: a :class:`~stateshift.state.cache.RedisCache` to read
                through.
            residency: the residency tag of calls that name none (``EU``).
            tenant: resolve the tag from this tenant when no tag is named.
        """
        from stateshift.state.namespace import Namespace

        return Namespace(
            self, name, type=type, cache=cache, residency=residency, tenant=tenant
        )

    def transaction(self) -> AbstractContextManager[Transaction]:
        """A block whose state writes commit together, or not at all.

        Every key read or written in the block is version-checked at the
        end; a change by someone else meanwhile raises
        :class:`~stateshift.errors.ConflictError` and nothing is written.
        Inside a workflow step the block joins the step's commit.
        """
        from stateshift.state.transactions import transaction

        return transaction(self)

    def purge_expired(
        self,
        *,
        limit: int = 1000,
        tombstones_after: Duration = DEFAULT_TOMBSTONE_SECONDS,
    ) -> int:
        """Clear expired values and drop old tombstones; return rows purged.

        Expired items are invisible at once; this frees their space. It is
        called by ticks; call it yourself from a scheduled job otherwise.
        A deleted key's tombstone (its version) is kept ``tombstones_after``,
        so a stale ``expected_version`` cannot match a re-created key.
        """
        from stateshift.state._rows import remove_blobs_later

        if limit < 1:
            raise ValueError("limit must be at least 1")
        keep_seconds = to_seconds(tombstones_after, name="tombstones_after")
        purged = 0
        # Each region purges its own shards: a worker never touches rows of
        # a region whose data it may not process.
        for store in self.placement.local_stores():
            rows = self._state_rows_for(store)
            with rows.store.transaction() as tx:
                count, later = rows.purge(
                    tx,
                    now=self._state_now(),
                    tombstone_seconds=keep_seconds,
                    limit=limit,
                )
            remove_blobs_later(rows.blobs, later)
            purged += count
        return purged

    # --- blobs --------------------------------------------------------------

    @property
    def blob_store(self) -> BlobStore:
        """Where values over ``blob_threshold_bytes`` go; the store by default."""
        from stateshift.state.blobs import DatabaseBlobStore

        chosen: BlobStore | None = self.__dict__.get("_state_blob_store")
        return chosen if chosen is not None else DatabaseBlobStore(self.store)

    @blob_store.setter
    def blob_store(self, blobs: BlobStore) -> None:
        from stateshift.state.blobs import BlobStore

        if not isinstance(blobs, BlobStore):
            raise TypeError("blob_store must be a stateshift.state.BlobStore")
        self.__dict__["_state_blob_store"] = blobs
        self.__dict__.pop("_state_rows_cache", None)
        self.__dict__.pop("_state_rows_by_store", None)

    # --- entities ---------------------------------------------------------

    @overload
    def entity(self, cls: C, /) -> C: ...

    @overload
    def entity(
        self,
        cls: None = None,
        key: None = None,
        /,
        *,
        name: str | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
    ) -> Callable[[C], C]: ...

    @overload
    def entity(
        self,
        cls: type,
        key: str,
        /,
        *,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> EntityRef[Any]: ...

    def entity(
        self,
        cls: type | None = None,
        key: str | None = None,
        /,
        *,
        name: str | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> Any:
        """Register an entity class, or address one entity.

        ``@app.entity`` (or ``@app.entity(name=..., attempts=...)``)
        registers a class; ``app.entity(Cart, "u42")`` returns an
        :class:`~stateshift.state.entities.EntityRef` whose operations
        load, run and save atomically. ``residency=`` tags the entity's
        state and ``partition_key=`` co-locates it with that key's rows
        (a workflow's, for instance).
        """
        if cls is not None and key is not None:
            from stateshift.state.entities import EntityRef

            return EntityRef(
                self,
                self._entity_type(cls),
                key,
                residency=residency,
                partition_key=partition_key,
            )
        if cls is not None:
            return self._register_entity(cls, name=name, attempts=attempts)

        def register(target: C) -> C:
            return self._register_entity(target, name=name, attempts=attempts)

        return register

    def _register_entity(self, cls: C, *, name: str | None, attempts: int) -> C:
        from stateshift.state.entities import EntityType

        registry = self._entities()
        entity: EntityType[Any] = EntityType(cls, name=name, attempts=attempts)
        for other in registry.values():
            if other.name == entity.name and other.cls is not cls:
                raise ValueError(
                    f"two entity classes are named {entity.name!r}; pass name= to "
                    "one of them"
                )
        registry[cls] = entity
        return cls

    def _entity_type(self, cls: type) -> EntityType[Any]:
        entity = self._entities().get(cls)
        if entity is None:
            raise TypeError(
                f"{getattr(cls, '__qualname__', cls)!r} is not an entity of this "
                "app: decorate the class with @app.entity"
            )
        return entity

    def _entities(self) -> dict[type, EntityType[Any]]:
        registry: dict[type, EntityType[Any]] | None = self.__dict__.get(
            "_state_entities"
        )
        if registry is None:
            registry = self.__dict__.setdefault("_state_entities", {})
        return registry

    # --- internals --------------------------------------------------------

    def _state_now(self) -> float:
        """The app's clock (``app.clock`` when set, so tests can move it)."""
        clock: Callable[[], float] | None = getattr(self, "clock", None)
        return float(clock()) if clock is not None else time.time()

    def _state_rows(self) -> ItemRows:
        return self._state_rows_for(self.store)

    def _state_rows_for(self, store: Store) -> ItemRows:
        """The state queries of one shard's store (made once per store)."""
        by_store: dict[int, ItemRows] | None = self.__dict__.get("_state_rows_by_store")
        if by_store is None:
            by_store = self.__dict__.setdefault("_state_rows_by_store", {})
        cached = by_store.get(id(store))
        if cached is None or cached.store is not store:
            from stateshift.state._rows import ItemRows
            from stateshift.state.blobs import DatabaseBlobStore

            chosen: BlobStore | None = self.__dict__.get("_state_blob_store")
            # Large values of a shard stay in that shard's own blob table,
            # so they share its transactions, residency and erasure.
            blobs = chosen if chosen is not None else DatabaseBlobStore(store)
            cached = ItemRows(store, blobs, self.settings.blob_threshold_bytes)
            by_store[id(store)] = cached
        return cached
