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
:class:`LocalDirectoryBlobStore` is such a store, for development only;
:class:`S3BlobStore` keeps blobs in an S3-compatible bucket (extra ``s3``).
"""

from __future__ import annotations

import os
import re
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from stateshift.errors import (
    ConfigError,
    DeserializationError,
    StoreError,
    StoreUnavailable,
)
from stateshift.store.base import Store, Tx

__all__ = ["BlobStore", "DatabaseBlobStore", "LocalDirectoryBlobStore", "S3BlobStore"]

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

    @property
    def store(self) -> Store:
        """The store whose table holds the blobs."""
        return self._store

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


# Error codes of S3 that a later attempt may not get.
_S3_TRANSIENT = frozenset(
    {
        "InternalError",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
    }
)
_S3_DELETE_BATCH = 1000  # the most keys one DeleteObjects request may name


class S3BlobStore(BlobStore):
    """Blobs as objects of an S3-compatible bucket (``pip install 'stateshift[s3]'``).

    Each blob is one object, ``prefix`` followed by its reference. An object
    is written whole or not at all, so a reader never sees part of one. The
    bucket must exist; stateshift never creates or configures it.

    Objects are outside the database: they are not covered by store
    transactions, ``residency check`` or store copies, so choose a bucket in
    the region the data may live in. Values of a data subject are sealed
    before they are written, so :meth:`App.forget` still makes them
    unreadable.

    Args:
        bucket: name of an existing bucket.
        prefix: prepended to every object key.
        client: a ready boto3 S3 client; built with ``client_options``
            (``endpoint_url``, ``region_name``, credentials...) when omitted.
    """

    transactional = False

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "stateshift-blobs/",
        client: Any = None,
        **client_options: Any,
    ) -> None:
        if not isinstance(bucket, str) or not bucket.strip():
            raise ConfigError("blob_store", "S3BlobStore needs a bucket name")
        if not isinstance(prefix, str):
            raise ConfigError("blob_store", "the S3 prefix must be a string")
        if client is None:
            try:
                import boto3
            except ModuleNotFoundError as exc:
                raise ImportError(
                    "the S3 blob store needs boto3: pip install 'stateshift[s3]'"
                ) from exc
            client = boto3.client("s3", **client_options)
        elif client_options:
            raise TypeError("pass either client= or client options, not both")
        self.bucket = bucket
        self.prefix = prefix
        self._client = client

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _key(self, blob_ref: str) -> str:
        if not _REF.match(blob_ref):
            raise DeserializationError(f"{blob_ref!r} is not a blob reference")
        return self.prefix + blob_ref

    def write(self, tx: Tx, blob_ref: str, data: bytes) -> None:
        key = self._key(blob_ref)
        with self._translated("write", key):
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def read(self, tx: Tx, blob_ref: str) -> bytes:
        key = self._key(blob_ref)
        with self._translated("read", key):
            body = self._client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()

    def remove(self, tx: Tx | None, blob_refs: Iterable[str]) -> None:
        keys = [self._key(ref) for ref in blob_refs]
        for start in range(0, len(keys), _S3_DELETE_BATCH):
            batch = keys[start : start + _S3_DELETE_BATCH]
            with self._translated("remove", batch[0]):
                answer = self._client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                )
            errors = answer.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    f"S3 kept {len(errors)} blob(s) of bucket {self.bucket!r} "
                    f"it was asked to delete, first {first.get('Key')!r}: "
                    f"{first.get('Code')} {first.get('Message')}"
                )

    @contextmanager
    def _translated(self, action: str, key: str) -> Iterator[None]:
        """Turn botocore's errors into stateshift's, in this one place."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        where = f"s3://{self.bucket}/{key}"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            metadata = exc.response.get("ResponseMetadata", {})
            status = int(metadata.get("HTTPStatusCode", 0))
            if code in {"NoSuchKey", "404"} and action == "read":
                raise DeserializationError(
                    f"the blob of a state item is missing from {where}"
                ) from None
            if code == "NoSuchBucket":
                raise ConfigError(
                    "blob_store",
                    f"the bucket {self.bucket!r} does not exist; create it "
                    "(stateshift never creates buckets) or name another one",
                ) from None
            if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
                raise ConfigError(
                    "blob_store",
                    f"S3 refused to {action} {where} ({code}): check the "
                    "credentials and the bucket policy",
                ) from None
            if code in _S3_TRANSIENT or status >= 500:
                raise StoreUnavailable(
                    f"S3 could not {action} {where} ({code}); try again"
                ) from exc
            raise StoreError(f"S3 could not {action} {where}: {code} {error}") from exc
        except NoCredentialsError:
            raise ConfigError(
                "blob_store",
                "no AWS credentials were found for the S3 blob store: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a role",
            ) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(
                f"S3 could not {action} {where}: {exc}; try again"
            ) from exc
