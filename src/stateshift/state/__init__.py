"""Externalized state: versioned namespaces, transactions, entities, caching.

Everything here lives in the app's store; see ``docs/state.md``. Sessions
for web apps are in :mod:`stateshift.state.sessions` (and
:mod:`stateshift.state.flask_sessions` for Flask).
"""

from __future__ import annotations

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
