"""Value codec (interim: plain JSON; replaced by the full codec on merge)."""

from __future__ import annotations

import json
from typing import Any

from stateshift.errors import DeserializationError, PayloadTooLarge


class Keyring:
    @classmethod
    def from_string(cls, text: str) -> Keyring:
        raise NotImplementedError


class Codec:
    def __init__(
        self, *, max_value_bytes: int = 262144, keyring: Keyring | None = None
    ):
        self.max_value_bytes = max_value_bytes

    def encode(self, value: Any, *, what: str = "value", aad: bytes = b"") -> bytes:
        data = json.dumps(value, separators=(",", ":")).encode()
        if len(data) > self.max_value_bytes:
            raise PayloadTooLarge(what, len(data), self.max_value_bytes)
        return data

    def decode(
        self,
        data: bytes,
        *,
        type_hint: Any = None,
        what: str = "value",
        aad: bytes = b"",
    ) -> Any:
        try:
            return json.loads(data)
        except ValueError as exc:
            raise DeserializationError(str(exc)) from exc
