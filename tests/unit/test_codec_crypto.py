"""Encryption at rest: envelopes, key rotation, associated data, key errors."""

from __future__ import annotations

import base64
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stateshift.codec import Codec, Keyring
from stateshift.errors import (
    ConfigError,
    DeserializationError,
    EncryptionError,
    PayloadTooLarge,
)

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_an_encrypted_value_round_trips_and_hides_its_content() -> None:
    codec = Codec(keyring=Keyring({"k1": KEY_1}))

    data = codec.encode({"card": "4111 1111"}, aad=b"workflow:o-1/step:3")

    assert data.startswith(b"E\x02k1")
    assert b"4111" not in data
    assert codec.decode(data, aad=b"workflow:o-1/step:3") == {"card": "4111 1111"}


@given(st.binary(max_size=64), st.recursive(st.text() | st.integers(), st.lists))
def test_any_value_round_trips_through_encryption(aad: bytes, value: object) -> None:
    codec = Codec(keyring=Keyring({"k1": KEY_1}))

    assert codec.decode(codec.encode(value, aad=aad), aad=aad) == value


def test_rotated_keys_still_read_old_values_and_write_with_the_new_one() -> None:
    old = Codec(keyring=Keyring.from_string(f"k1:{b64(KEY_1)}"))
    written_before = old.encode("old row")

    rotated = Codec(keyring=Keyring.from_string(f"k2:{b64(KEY_2)}, k1:{b64(KEY_1)}"))
    written_after = rotated.encode("new row")

    assert rotated.keyring is not None
    assert rotated.keyring.current_id == "k2"
    assert written_after.startswith(b"E\x02k2")
    assert rotated.decode(written_before) == "old row"
    assert rotated.decode(written_after) == "new row"


def test_a_ciphertext_moved_to_another_row_fails_authentication() -> None:
    codec = Codec(keyring=Keyring({"k1": KEY_1}))
    data = codec.encode("balance: 10", aad=b"accounts/alice")

    with pytest.raises(EncryptionError, match="'k1'.*associated data"):
        codec.decode(data, aad=b"accounts/bob", what="state accounts/bob")


def test_a_missing_key_is_named() -> None:
    data = Codec(keyring=Keyring({"k1": KEY_1})).encode("x")
    newer = Codec(keyring=Keyring({"k2": KEY_2}))

    with pytest.raises(EncryptionError, match="no key 'k1' in the keyring"):
        newer.decode(data)


def test_a_wrong_key_under_the_same_id_fails_authentication() -> None:
    data = Codec(keyring=Keyring({"k1": KEY_1})).encode("x")

    with pytest.raises(EncryptionError, match="authentication failed with key 'k1'"):
        Codec(keyring=Keyring({"k1": KEY_2})).decode(data)


def test_an_encrypted_value_without_a_keyring_names_its_key() -> None:
    data = Codec(keyring=Keyring({"k1": KEY_1})).encode("x")

    with pytest.raises(EncryptionError, match="key 'k1'.*STATESHIFT_ENCRYPTION_KEYS"):
        Codec().decode(data)


def test_a_changed_key_id_in_the_header_fails_authentication() -> None:
    keyring = Keyring({"k1": KEY_1, "k2": KEY_1})
    data = Codec(keyring=keyring).encode("x")

    forged = b"E\x02k2" + data[4:]

    with pytest.raises(EncryptionError):
        Codec(keyring=keyring).decode(forged)


@pytest.mark.parametrize("cut", [3, 10, 20, 30])
def test_a_truncated_or_flipped_envelope_is_refused(cut: int) -> None:
    codec = Codec(keyring=Keyring({"k1": KEY_1}))
    data = codec.encode("some value")

    flipped = bytearray(data)
    flipped[cut] ^= 1
    with pytest.raises((EncryptionError, DeserializationError)):
        codec.decode(data[:cut])
    with pytest.raises((EncryptionError, DeserializationError)):
        codec.decode(bytes(flipped))


def test_plaintext_rows_are_read_unless_encryption_is_required() -> None:
    plain = Codec().encode("written before encryption")
    keyring = Keyring({"k1": KEY_1})

    assert Codec(keyring=keyring).decode(plain) == "written before encryption"
    with pytest.raises(EncryptionError, match="unencrypted"):
        Codec(keyring=keyring, allow_plaintext=False).decode(plain)


def test_the_size_limit_is_measured_before_encryption() -> None:
    codec = Codec(max_value_bytes=12, keyring=Keyring({"k1": KEY_1}))

    assert codec.decode(codec.encode("x" * 9)) == "x" * 9
    with pytest.raises(PayloadTooLarge):
        codec.encode("x" * 10)


def test_a_specific_key_can_encrypt_for_per_subject_keys() -> None:
    keyring = Keyring({"k1": KEY_1, "subject:alice": KEY_2})
    data = keyring.encrypt(b"J1", b"", key_id="subject:alice")

    assert data.startswith(b"E\x0dsubject:alice")
    assert Codec(keyring=keyring).decode(data) == 1


def test_keyring_from_env_reads_the_variable() -> None:
    environ = {"STATESHIFT_ENCRYPTION_KEYS": f"new:{b64(KEY_2)},old:{b64(KEY_1)}"}

    keyring = Keyring.from_env(environ)

    assert keyring is not None
    assert keyring.key_ids == ("new", "old")
    assert Keyring.from_env({}) is None


def test_url_safe_base64_keys_are_accepted() -> None:
    key = bytes([0xFB] * 32)
    encoded = base64.urlsafe_b64encode(key).decode()

    assert Keyring.from_string(f"k:{encoded}").key_ids == ("k",)


def test_generated_keys_are_valid_256_bit_keys() -> None:
    keyring = Keyring.from_string(f"k:{Keyring.generate_key()}")

    assert keyring.current_id == "k"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected 'id:base64key'"),
        ("k1", "expected 'id:base64key'"),
        (f":{b64(KEY_1)}", "expected 'id:base64key'"),
        ("k1:***", "not valid base64"),
        (f"k1:{b64(b'short')}", "is 5 bytes"),
        (f"k1:{b64(KEY_1)},k1:{b64(KEY_2)}", "appears twice"),
    ],
)
def test_a_bad_key_string_is_a_config_error_that_shows_no_key(
    text: str, message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        Keyring.from_string(text)

    assert caught.value.setting == "STATESHIFT_ENCRYPTION_KEYS"
    assert b64(KEY_1) not in str(caught.value)


def test_keyring_repr_shows_ids_not_keys() -> None:
    keyring = Keyring({"k1": KEY_1})

    assert repr(keyring) == "Keyring(current='k1', key_ids=('k1',))"


def test_an_unknown_current_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'k9'"):
        Keyring({"k1": KEY_1}, current="k9")


def test_a_missing_cryptography_package_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(
        sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None
    )

    with pytest.raises(ConfigError, match=r"stateshift\[crypto\]"):
        Keyring({"k1": KEY_1})
