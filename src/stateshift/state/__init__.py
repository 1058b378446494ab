"""Externalized state: versioned namespaces, transactions, entities, caching.

Everything here lives in the app's store; see ``docs/state.md``. Sessions
for web apps are in :mod:`stateshift.state.sessions` (and
:mod:`stateshift.state.flask_sessions` for Flask).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateshift._lazy import lazy_getattr

if TYPE_CHECKING:
    from stateshift.state.blobs import (
        BlobStore,
        DatabaseBlobStore,
        LocalDirectoryBlobStore,
        S3BlobStore,
    )
    from stateshift.state.cache import CacheStats, RedisCache
    from stateshift.state.entities import EntityRef
    from stateshift.state.namespace import Item, Namespace, Page
    from stateshift.state.transactions import Transaction

# Each name is imported on first use (see stateshift._lazy).
_HOMES = {
    "BlobStore": "stateshift.state.blobs",
    "CacheStats": "stateshift.state.cache",
    "DatabaseBlobStore": "stateshift.state.blobs",
    "EntityRef": "stateshift.state.entities",
    "Item": "stateshift.state.namespace",
    "LocalDirectoryBlobStore": "stateshift.state.blobs",
    "Namespace": "stateshift.state.namespace",
    "Page": "stateshift.state.namespace",
    "RedisCache": "stateshift.state.cache",
    "S3BlobStore": "stateshift.state.blobs",
    "Transaction": "stateshift.state.transactions",
}
__getattr__ = lazy_getattr(__name__, globals(), _HOMES)

__all__ = [
    "BlobStore",
    "CacheStats",
    "DatabaseBlobStore",
    "EntityRef",
    "Item",
    "LocalDirectoryBlobStore",
    "Namespace",
    "Page",
    "RedisCache",
    "S3BlobStore",
    "Transaction",
]
