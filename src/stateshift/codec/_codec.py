"""The Codec: user values to stored bytes and back.

Stored bytes start with a one-byte format marker: ``J`` for UTF-8 JSON,
``E`` for an encrypted envelope around a ``J`` value. Any other first byte
(a pickle, bare JSON, a format from the future) is refused before anything
else is looked at.
"""

from __future__ import annotations

from typing import Any

from stateshift.codec._decode import MalformedValue, load_text
from stateshift.codec._encode import dump_bytes, dump_text
from stateshift.codec._keyring import ENV_VAR, Keyring, envelope_key_id
from stateshift.codec._paths import Located, render_path
from stateshift.codec._tags import MARKER_ENVELOPE, MARKER_JSON
from stateshift.errors import (
    ConfigError,
    DeserializationError,
    EncryptionError,
    PayloadTooLarge,
)

__all__ = ["DEFAULT_MAX_VALUE_BYTES", "Codec"]

DEFAULT_MAX_VALUE_BYTES = 262_144
"""256 KiB: the largest encoded value stored inline."""


class Codec:
    """Encodes values as tagged JSON, optionally encrypted, and decodes them.

    Args:
        max_value_bytes: the largest encoded value :meth:`encode` accepts,
            measured before encryption so that turning encryption on never
            makes a value too large.
        keyring: encrypts new values and decrypts stored ones when given.
        allow_plaintext: with a keyring, still read values stored without
            encryption (written before it was turned on). Set it to False
            once every row is encrypted, so that plaintext written into the
            database by someone else is refused.
    """

    __slots__ = ("allow_plaintext", "keyring", "max_value_bytes")

    def __init__(
        self,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        keyring: Keyring | None = None,
        *,
        allow_plaintext: bool = True,
    ) -> None:
        if type(max_value_bytes) is not int or max_value_bytes <= 0:
            raise ConfigError("max_value_bytes", "must be a positive number of bytes")
        self.max_value_bytes = max_value_bytes
        self.keyring = keyring
        self.allow_plaintext = allow_plaintext

    def __repr__(self) -> str:
        return (
            f"Codec(max_value_bytes={self.max_value_bytes}, keyring={self.keyring!r})"
        )

    def encode(self, value: Any, what: str = "value", aad: bytes = b"") -> bytes:
        """Encode a value for storage.

        Args:
            value: a JSON-native value, or one built of the supported types.
            what: names the value in errors, like ``result of step 'charge'``.
            aad: associated data binding an encrypted value to its row; the
                same bytes must be given to :meth:`decode`.

        Raises:
            UnsupportedType: a part of the value has no encoding.
            PayloadTooLarge: the encoded value exceeds ``max_value_bytes``.
        """
        stored = MARKER_JSON + dump_bytes(value)
        if len(stored) > self.max_value_bytes:
            raise PayloadTooLarge(what, len(stored), self.max_value_bytes)
        if self.keyring is None:
            return stored
        return self.keyring.encrypt(stored, aad)

    def decode(
        self,
        data: bytes,
        type_hint: Any = None,
        what: str = "value",
        aad: bytes = b"",
    ) -> Any:
        """Decode stored bytes, building ``type_hint`` when one is given.

        Raises:
            DeserializationError: the bytes are malformed, tampered with, or
                do not fit ``type_hint``.
            EncryptionError: the value is encrypted and its key is missing,
                or it fails authentication (wrong key or ``aad``).
        """
        if not isinstance(data, bytes):
            if not isinstance(data, bytearray | memoryview):
                raise DeserializationError(
                    f"cannot decode {what}: expected bytes, found {type(data).__name__}"
                )
            data = bytes(data)

        marker = data[:1]
        if marker == MARKER_JSON:
            if self.keyring is not None and not self.allow_plaintext:
                raise EncryptionError(
                    f"cannot decode {what}: it is stored unencrypted, and this codec "
                    "only reads encrypted values (allow_plaintext=False)"
                )
        elif marker == MARKER_ENVELOPE:
            data = self._decrypt(data, what, aad)
        else:
            raise DeserializationError(
                f"cannot decode {what}: unknown format marker {marker!r}; it was "
                "not written by this version of stateshift, or was tampered with"
            )

        try:
            text = data[1:].decode("utf-8")
        except UnicodeDecodeError:
            raise DeserializationError(
                f"cannot decode {what}: it is not UTF-8"
            ) from None
        return self._load(text, type_hint, what)

    def encode_json(self, value: Any) -> str:
        """Encode a value as JSON text, tagged as in storage, for logs and HTTP.

        No size limit and no encryption apply.
        """
        return dump_text(value)

    def decode_json(self, text: str, type_hint: Any = None) -> Any:
        """Decode JSON text, building ``type_hint`` when one is given.

        Plain strings become datetimes, UUIDs, Decimals and bytes (base64)
        where the hint asks for them, so hand-written JSON decodes too.
        """
        return self._load(text, type_hint, "JSON text", compact=False)

    def _decrypt(self, data: bytes, what: str, aad: bytes) -> bytes:
        if self.keyring is None:
            try:
                key_id = envelope_key_id(data)
            except DeserializationError as exc:
                raise DeserializationError(f"cannot decode {what}: {exc}") from None
            raise EncryptionError(
                f"cannot decode {what}: it is encrypted with key {key_id!r} and no "
                f"keyring is configured; set {ENV_VAR}"
            )
        try:
            plaintext = self.keyring.decrypt(data, aad)
        except EncryptionError as exc:
            raise EncryptionError(f"cannot decode {what}: {exc}") from None
        except DeserializationError as exc:
            raise DeserializationError(f"cannot decode {what}: {exc}") from None
        if plaintext[:1] != MARKER_JSON:
            raise DeserializationError(
                f"cannot decode {what}: the decrypted value has an unknown format "
                f"marker {plaintext[:1]!r}"
            )
        return plaintext

    def _load(
        self, text: str, type_hint: Any, what: str, *, compact: bool = True
    ) -> Any:
        try:
            value = load_text(text, compact=compact)
        except MalformedValue as exc:
            raise DeserializationError(f"cannot decode {what}: {exc}") from None
        if type_hint is None:
            return value
        # Typed decoding is imported on first use: untyped apps never pay for it.
        from stateshift.codec._typed import converter

        try:
            return converter(type_hint)(value)
        except Located as exc:
            raise DeserializationError(
                f"cannot decode {what} at {render_path(exc.parts)}: {exc.message}"
            ) from exc.__cause__
