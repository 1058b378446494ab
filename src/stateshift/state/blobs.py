"""Blob stores: where values over the inline threshold are kept.

An item whose encoded value is larger than the threshold keeps only a
reference (``blob_ref``); the bytes go to a :class:`BlobStore`. The default,
:class:`DatabaseBlobStore`, is a table of the same database, so a blob is
written and removed in the same transaction as its item and everything
that covers the store (transactions, residency, erasure, store copies)
covers blobs too.

Other stores cannot join the database transaction. A blob is then written
before the commit under a fresh reference (a rolled-back commit leaves an
orphan file, never a wrong value) and old blobs are removed after it.
:class:`LocalDirectoryBlobStore` is such a store, for development only.
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar

from stateshift.errors import DeserializationError
from stateshift.store.base import Store, Tx

__all__ = ["BlobStore", "DatabaseBlobStore", "LocalDirectoryBlobStore"]

_REF = re.compile(r"^[0-9a-f]{32}$")


class BlobStore(ABC):
    """Where large values live; a reference is a 32-digit hex string."""

    transactional: ClassVar[bool]
    """True when writes and removals join the database transaction."""

    @abstractmethod
    def write(self, tx: Tx, blob_ref: str, data: bytes) -> None:
        """Store ``data`` under the new reference ``blob_ref``."""

    @abstractmethod
    def read(self, tx: Tx, blob_ref: str) -> bytes:
        """The bytes stored under ``blob_ref``."""

    @abstractmethod
    def remove(self, tx: Tx | None, blob_refs: Iterable[str]) -> None:
        """Remove blobs; ``tx`` is ``None`` after the commit (other stores)."""


class DatabaseBlobStore(BlobStore):
    """Blobs in a table of the app's own store (the default)."""

    transactional = True

    def __init__(self, store: Store) -> None:
        self._store = store

    def write(self, tx: Tx, blob_ref: str, data: bytes) -> None:
        query = self._store.queries("state")["put_blob"]
        tx.execute(query, (blob_ref, data, time.time()))

    def read(self, tx: Tx, blob_ref: str) -> bytes:
        row = tx.fetchone(self._store.queries("state")["get_blob"], (blob_ref,))
        if row is None:
            raise DeserializationError(
                f"the blob {blob_ref} of a state item is missing from the store"
            )
        return bytes(row[0])

    def remove(self, tx: Tx | None, blob_refs: Iterable[str]) -> None:
        assert tx is not None, "a database blob store removes inside the commit"
        query = self._store.queries("state")["delete_blob"]
        tx.executemany(query, [(ref,) for ref in blob_refs])


class LocalDirectoryBlobStore(BlobStore):
    """Blobs as files in one directory: for development on one machine only.

    Files are not covered by store transactions, residency or erasure, and
    are lost with the machine on a serverless platform.
    """

    transactional = False

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, blob_ref: str) -> Path:
        if not _REF.match(blob_ref):
            raise DeserializationError(f"{blob_ref!r} is not a blob reference")
        return self.directory / blob_ref[:2] / blob_ref

    def write(self, tx: Tx, blob_ref: str, data: bytes) -> None:
        path = self._path(blob_ref)
        path.parent.mkdir(exist_ok=True)
        # Write then rename, so a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def read(self, tx: Tx, blob_ref: str) -> bytes:
        try:
            return self._path(blob_ref).read_bytes()
        except FileNotFoundError:
            raise DeserializationError(
                f"the blob {blob_ref} of a state item is missing from {self.directory}"
            ) from None

    def remove(self, tx: Tx | None, blob_refs: Iterable[str]) -> None:
        for blob_ref in blob_refs:
            self._path(blob_ref).unlink(missing_ok=True)
