"""Encryption at rest: a keyring of AES-GCM keys and the envelope format.

An envelope is::

    b"E" | key id length (1 byte) | key id (UTF-8) | nonce (12 bytes) | ciphertext+tag

The header (marker and key id) is authenticated together with the caller's
associated data, so neither the key id nor the row a ciphertext belongs to
can be changed without decryption failing. Because each envelope names its
key, a keyring can hold old keys for reading while a new one writes: keys
rotate without rewriting rows. Keys are looked up by id alone, so an id can
just as well name a per-subject data key.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from typing import Any

from stateshift.codec._tags import MARKER_ENVELOPE
from stateshift.errors import ConfigError, DeserializationError, EncryptionError

__all__ = ["ENV_VAR", "Keyring", "envelope_key_id"]

ENV_VAR = "STATESHIFT_ENCRYPTION_KEYS"
"""The environment variable :meth:`Keyring.from_env` reads."""

_NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_SIZES = (16, 24, 32)


class Keyring:
    """AES-GCM keys by id, one of them current for new writes.

    Args:
        keys: key id to raw key (16, 24 or 32 bytes), in order of preference.
        current: the id that encrypts new values; the first key when omitted.

    Raises:
        ConfigError: a key or id is invalid, or ``cryptography`` is not
            installed (``pip install 'stateshift[crypto]'``).
    """

    def __init__(
        self, keys: Mapping[str, bytes], *, current: str | None = None
    ) -> None:
        if not keys:
            raise ConfigError("keyring", "needs at least one key")
        for key_id, key in keys.items():
            _check_key_id(key_id, "keyring")
            if not isinstance(key, bytes) or len(key) not in _KEY_SIZES:
                raise ConfigError(
                    "keyring", f"key {key_id!r} must be 16, 24 or 32 bytes"
                )
        if current is None:
            current = next(iter(keys))
        elif current not in keys:
            raise ConfigError("keyring", f"the current key {current!r} is not in it")

        self._aead, self._invalid_tag = _load_aesgcm()
        self._keys = dict(keys)
        self._ciphers: dict[str, Any] = {}
        self.current_id = current

    @classmethod
    def from_string(cls, text: str, *, setting: str = ENV_VAR) -> Keyring:
        """Build a keyring from ``"k2:BASE64,k1:BASE64"``; the first is current.

        Keys are standard or URL-safe base64 of 16, 24 or 32 random bytes.
        ``setting`` names the source in error messages, which never show keys.
        """
        keys: dict[str, bytes] = {}
        for entry in text.split(","):
            key_id, sep, encoded = entry.strip().partition(":")
            key_id = key_id.strip()
            if not sep or not key_id:
                raise ConfigError(
                    setting, "expected 'id:base64key' entries, comma separated"
                )
            _check_key_id(key_id, setting)
            if key_id in keys:
                raise ConfigError(setting, f"key id {key_id!r} appears twice")
            keys[key_id] = _decode_key(key_id, encoded.strip(), setting)
        return cls(keys)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Keyring | None:
        """Build a keyring from ``STATESHIFT_ENCRYPTION_KEYS``, or None when unset."""
        text = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        return cls.from_string(text) if text else None

    @staticmethod
    def generate_key() -> str:
        """Return a new random 256-bit key in base64, for ``id:key`` settings."""
        return base64.b64encode(secrets.token_bytes(32)).decode("ascii")

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every key id, the current one included."""
        return tuple(self._keys)

    def __repr__(self) -> str:
        return f"Keyring(current={self.current_id!r}, key_ids={self.key_ids!r})"

    def encrypt(
        self, plaintext: bytes, aad: bytes = b"", *, key_id: str | None = None
    ) -> bytes:
        """Seal ``plaintext`` in an envelope with the current key (or ``key_id``).

        Args:
            plaintext: the bytes to protect.
            aad: associated data that decryption must present again, such as
                the identity of the row the value is stored in.
            key_id: a key other than the current one.
        """
        key_id = self.current_id if key_id is None else key_id
        return seal_envelope(self._cipher(key_id), key_id, plaintext, aad)

    def decrypt(self, envelope: bytes, aad: bytes = b"") -> bytes:
        """Open an envelope made by :meth:`encrypt` with the same ``aad``.

        Raises:
            EncryptionError: the key is not in the keyring, or authentication
                failed (another key, another ``aad``, or tampered bytes).
            DeserializationError: the bytes are not an envelope.
        """
        key_id, header_bytes = read_envelope_header(envelope)
        nonce, sealed, associated = envelope_parts(envelope, header_bytes, aad)
        cipher = self._cipher(key_id)
        try:
            plaintext: bytes = cipher.decrypt(nonce, sealed, associated)
        except self._invalid_tag:
            raise EncryptionError(
                f"authentication failed with key {key_id!r}: the key's bytes differ "
                "from the ones that encrypted it, the associated data differs (the "
                "value was moved from another row), or the bytes were tampered with"
            ) from None
        return plaintext

    def _cipher(self, key_id: str) -> Any:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            key = self._keys.get(key_id)
            if key is None:
                raise EncryptionError(
                    f"no key {key_id!r} in the keyring (it has "
                    f"{', '.join(map(repr, self._keys))}): keep retired keys in "
                    f"{ENV_VAR} until every value they encrypted is rewritten"
                )
            cipher = self._ciphers[key_id] = self._aead(key)
        return cipher


def envelope_key_id(envelope: bytes) -> str:
    """Return the id of the key an envelope was encrypted with."""
    return read_envelope_header(envelope)[0]


def seal_envelope(cipher: Any, key_id: str, plaintext: bytes, aad: bytes) -> bytes:
    """An envelope of ``plaintext`` sealed by the AES-GCM ``cipher`` of ``key_id``.

    Shared by the app keyring and the per-subject keys of erasure, so both
    write the one format :meth:`Keyring.decrypt` and the subject store read.
    """
    header = _header(key_id)
    nonce = os.urandom(_NONCE_BYTES)
    sealed: bytes = cipher.encrypt(nonce, plaintext, header + aad)
    return header + nonce + sealed


def envelope_parts(
    envelope: bytes, header_bytes: int, aad: bytes
) -> tuple[bytes, bytes, bytes]:
    """The nonce, the ciphertext with its tag, and the data to authenticate."""
    if len(envelope) < header_bytes + _NONCE_BYTES + _TAG_BYTES:
        raise DeserializationError("the encrypted envelope is truncated")
    nonce = envelope[header_bytes : header_bytes + _NONCE_BYTES]
    return nonce, envelope[header_bytes + _NONCE_BYTES :], envelope[:header_bytes] + aad


def _header(key_id: str) -> bytes:
    encoded = key_id.encode("utf-8")
    return MARKER_ENVELOPE + bytes((len(encoded),)) + encoded


def read_envelope_header(envelope: bytes) -> tuple[str, int]:
    """The key id of an envelope and the length of its header."""
    if envelope[:1] != MARKER_ENVELOPE or len(envelope) < 2:
        raise DeserializationError("the bytes are not an encrypted envelope")
    end = 2 + envelope[1]
    try:
        key_id = envelope[2:end].decode("utf-8")
    except UnicodeDecodeError:
        key_id = ""
    if len(envelope) < end or not key_id:
        raise DeserializationError("the encrypted envelope has a malformed key id")
    return key_id, end


def _check_key_id(key_id: Any, setting: str) -> None:
    if (
        not isinstance(key_id, str)
        or not key_id
        or not key_id.isprintable()
        or len(key_id.encode("utf-8")) > 255
    ):
        raise ConfigError(
            setting, f"key id {key_id!r} must be printable text of 1 to 255 bytes"
        )


def _decode_key(key_id: str, encoded: str, setting: str) -> bytes:
    standard = encoded.replace("-", "+").replace("_", "/")
    try:
        key = base64.b64decode(standard, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(setting, f"key {key_id!r} is not valid base64") from None
    if len(key) not in _KEY_SIZES:
        raise ConfigError(
            setting,
            f"key {key_id!r} is {len(key)} bytes; AES-GCM needs 16, 24 or 32 "
            "(make one with 'python -c \"import base64, os; "
            "print(base64.b64encode(os.urandom(32)).decode())\"')",
        )
    return key


def _load_aesgcm() -> tuple[Any, type[Exception]]:
    try:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ConfigError(
            "keyring",
            "encryption at rest needs the 'cryptography' package: "
            "pip install 'stateshift[crypto]'",
        ) from None
    return AESGCM, InvalidTag
