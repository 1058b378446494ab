"""Erasure by crypto-shredding: one data key per data subject.

Every value written for a data subject (a user, a customer) is sealed with
that subject's own AES-GCM key, kept in the ``subject_keys`` table of the
subject's home region. Forgetting the subject destroys the key: every
stored copy of their values, in state, workflow inputs and checkpoints,
events, outbox messages and backups, becomes unreadable at once without
rewriting any of it, and reading one raises :class:`~stateshift.errors.DataErased`.

Envelopes have the codec's format (``E`` | key id length | key id | nonce
| ciphertext), with key ids ``subject:<region>:<subject>``, so
:class:`SubjectKeyring` can serve as a :class:`stateshift.codec.Codec`
keyring: it seals with the current subject's key (see
:func:`data_subject`) and opens subject and ordinary envelopes alike.

Keys are read from the store on every use unless ``cache_seconds`` is set:
a cached key keeps a forgotten subject readable in *other* processes for
up to that long.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from stateshift.codec._keyring import (
    envelope_parts,
    read_envelope_header,
    seal_envelope,
)
from stateshift.errors import (
    ConfigError,
    DataErased,
    DeserializationError,
    EncryptionError,
    InvalidKey,
)

if TYPE_CHECKING:
    from stateshift.placement.router import Placement

__all__ = [
    "ForgetReport",
    "SubjectKeyring",
    "SubjectKeys",
    "current_subject",
    "data_subject",
]

_PREFIX = "subject:"
_MAX_SUBJECT_BYTES = 200

_subject: ContextVar[tuple[str, str | None] | None] = ContextVar(
    "stateshift_data_subject", default=None
)


class _Keyring(Protocol):
    def encrypt(
        self, plaintext: bytes, aad: bytes = b"", *, key_id: str | None = None
    ) -> bytes: ...

    def decrypt(self, envelope: bytes, aad: bytes = b"") -> bytes: ...


@contextmanager
def data_subject(subject: str, residency: str | None = None) -> Iterator[str]:
    """Seal values written inside the block with ``subject``'s key."""
    _check_subject(subject)
    token = _subject.set((subject, residency))
    try:
        yield subject
    finally:
        _subject.reset(token)


def current_subject() -> tuple[str, str | None] | None:
    """The ``(subject, residency)`` set by :func:`data_subject`, if any."""
    return _subject.get()


def _check_subject(subject: str) -> None:
    if (
        not isinstance(subject, str)
        or not subject
        or not subject.isprintable()
        or len(subject.encode("utf-8")) > _MAX_SUBJECT_BYTES
    ):
        raise InvalidKey(
            f"data subject {subject!r} must be printable text of 1 to "
            f"{_MAX_SUBJECT_BYTES} bytes"
        )


def _aesgcm() -> tuple[Any, type[Exception]]:
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigError(
            "erasure",
            "per-subject encryption needs the 'cryptography' package: "
            "pip install 'stateshift[crypto]'",
        ) from None
    return AESGCM, InvalidTag


@dataclass(frozen=True)
class ForgetReport:
    """What :meth:`SubjectKeys.forget` destroyed."""

    subject: str
    """The forgotten data subject."""

    regions: tuple[str, ...]
    """Regions whose key for the subject was destroyed."""

    at: float
    """When, in epoch seconds."""


class SubjectKeys:
    """Per-subject data keys in the ``subject_keys`` tables of a placement."""

    def __init__(self, placement: Placement, *, cache_seconds: float = 0.0) -> None:
        self._placement = placement
        self._aead, self._invalid_tag = _aesgcm()
        self._cache: dict[str, tuple[float, bytes]] = {}
        self._cache_seconds = cache_seconds
        self._lock = threading.Lock()

    # --- keys -------------------------------------------------------------------

    def key_id(self, subject: str, residency: str | None = None) -> str:
        """The key id of ``subject``'s data key in its home region."""
        _check_subject(subject)
        tag = self._placement.policy.resolve(residency)
        return f"{_PREFIX}{self._placement.home_region(tag)}:{subject}"

    def _store(self, region: str, subject: str) -> Any:
        shard_id = self._placement.maps[region].shard_for(_PREFIX + subject)
        return self._placement.shard_store(region, shard_id)

    def _key(self, key_id: str, *, create: bool) -> bytes:
        region, subject = _parse_key_id(key_id)
        if self._cache_seconds > 0:
            with self._lock:
                cached = self._cache.get(key_id)
            if (
                cached is not None
                and time.monotonic() - cached[0] < self._cache_seconds
            ):
                return cached[1]

        store = self._store(region, subject)
        queries = store.queries("placement")
        with store.read() as tx:
            row = tx.fetchone(queries["subject_key_get"], (subject,))
        if row is None and create:
            with store.transaction() as tx:
                tx.execute(
                    queries["subject_key_create"],
                    (subject, key_id, os.urandom(32), region),
                )
                row = tx.fetchone(queries["subject_key_get"], (subject,))
        if row is None:
            raise EncryptionError(
                f"no data key for subject {subject!r} in region {region!r}: the "
                "value was sealed by another deployment, or its store was replaced"
            )
        if row[1] is None or row[2] is not None:
            raise DataErased(subject)

        key = bytes(row[1])
        if self._cache_seconds > 0:
            with self._lock:
                self._cache[key_id] = (time.monotonic(), key)
        return key

    def forget(self, subject: str) -> ForgetReport:
        """Destroy ``subject``'s keys in every region and record the erasure.

        The home region keeps a tombstone row (subject, when), so reading a
        value of theirs says :class:`~stateshift.errors.DataErased` rather
        than "unknown key". Forgetting twice is harmless.
        """
        _check_subject(subject)
        destroyed = []
        for region in self._placement.maps:
            store = self._store(region, subject)
            with store.transaction() as tx:
                row = tx.fetchone(
                    store.queries("placement")["subject_key_get"], (subject,)
                )
                if row is not None:
                    tx.execute(
                        store.queries("placement")["subject_key_forget"],
                        (subject, region),
                    )
                    destroyed.append(region)
        with self._lock:
            for key_id in [k for k in self._cache if _parse_key_id(k)[1] == subject]:
                del self._cache[key_id]
        return ForgetReport(subject, tuple(destroyed), time.time())

    # --- sealing ------------------------------------------------------------------

    def seal(
        self,
        subject: str,
        plaintext: bytes,
        aad: bytes = b"",
        *,
        residency: str | None = None,
    ) -> bytes:
        """Encrypt ``plaintext`` with ``subject``'s key (made on first use)."""
        key_id = self.key_id(subject, residency)
        cipher = self._aead(self._key(key_id, create=True))
        return seal_envelope(cipher, key_id, plaintext, aad)

    def open(self, envelope: bytes, aad: bytes = b"") -> bytes:
        """Decrypt an envelope made by :meth:`seal`.

        Raises:
            DataErased: the subject was forgotten.
            EncryptionError: authentication failed (other ``aad``, tampering).
        """
        key_id, header_bytes = read_envelope_header(envelope)
        if not key_id.startswith(_PREFIX):
            raise EncryptionError(f"key {key_id!r} is not a data subject's key")
        nonce, sealed, associated = envelope_parts(envelope, header_bytes, aad)
        cipher = self._aead(self._key(key_id, create=False))
        try:
            plaintext: bytes = cipher.decrypt(nonce, sealed, associated)
        except self._invalid_tag:
            raise EncryptionError(
                f"authentication failed with key {key_id!r}: the associated data "
                "differs (the value was moved from another row) or the bytes were "
                "tampered with"
            ) from None
        return plaintext

    def keyring(
        self, subject: str | None = None, *, fallback: _Keyring | None = None
    ) -> SubjectKeyring:
        """A codec keyring sealing with ``subject`` (else the current subject)."""
        return SubjectKeyring(self, subject=subject, fallback=fallback)


class SubjectKeyring:
    """A keyring for :class:`stateshift.codec.Codec` that seals per subject.

    It seals with the key of ``subject``, else of the subject set by
    :func:`data_subject`, else with ``fallback`` (the app's keyring); with
    neither it stores the value unencrypted. It opens subject envelopes
    through the store and any other envelope through ``fallback``.
    """

    def __init__(
        self,
        keys: SubjectKeys | Callable[[], SubjectKeys],
        *,
        subject: str | None = None,
        fallback: _Keyring | None = None,
    ) -> None:
        if subject is not None:
            _check_subject(subject)
        self._keys_or_factory = keys
        self._subject = subject
        self._fallback = fallback

    @property
    def _keys(self) -> SubjectKeys:
        # Built on first use, so an app that never names a data subject
        # needs neither the 'cryptography' package nor the subject tables.
        keys = self._keys_or_factory
        if not isinstance(keys, SubjectKeys):
            keys = self._keys_or_factory = keys()
        return keys

    def encrypt(
        self, plaintext: bytes, aad: bytes = b"", *, key_id: str | None = None
    ) -> bytes:
        """Seal ``plaintext`` for the subject in force."""
        if key_id is not None and self._fallback is not None:
            return self._fallback.encrypt(plaintext, aad, key_id=key_id)
        current = (self._subject, None) if self._subject else current_subject()
        if current is not None:
            return self._keys.seal(current[0], plaintext, aad, residency=current[1])
        if self._fallback is not None:
            return self._fallback.encrypt(plaintext, aad)
        # No subject and no app key: the codec reads a bare value back as is.
        return plaintext

    def decrypt(self, envelope: bytes, aad: bytes = b"") -> bytes:
        """Open a subject envelope, or pass another one to the fallback."""
        key_id, _ = read_envelope_header(envelope)
        if key_id.startswith(_PREFIX):
            return self._keys.open(envelope, aad)
        if self._fallback is None:
            raise EncryptionError(
                f"the value is encrypted with key {key_id!r} and no app keyring "
                "is configured; set STATESHIFT_ENCRYPTION_KEYS"
            )
        return self._fallback.decrypt(envelope, aad)


def envelope_subject(envelope: bytes) -> str | None:
    """The data subject an envelope was sealed for, or None."""
    key_id, _ = read_envelope_header(envelope)
    return _parse_key_id(key_id)[1] if key_id.startswith(_PREFIX) else None


def _parse_key_id(key_id: str) -> tuple[str, str]:
    region, sep, subject = key_id[len(_PREFIX) :].partition(":")
    if not key_id.startswith(_PREFIX) or not sep or not subject:
        raise DeserializationError(f"{key_id!r} is not a data subject's key id")
    return region, subject
