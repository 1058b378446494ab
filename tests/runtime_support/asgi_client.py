"""A synchronous client that calls an ASGI app in-process, as a server would."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Response:
    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self) -> Any:
        return json.loads(self.content)


class AsgiClient:
    def __init__(self, app: Any, *, chunk_bytes: int = 65_536) -> None:
        self.app = app
        self.chunk_bytes = chunk_bytes

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def get(self, path: str, **kwargs: Any) -> Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Response:
        return self.request("POST", path, **kwargs)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> Response:
        if json is not None:
            content = _dumps(json)
        return asyncio.run(self._request(method, path, content, headers or {}))

    async def _request(
        self, method: str, url: str, body: bytes, headers: dict[str, str]
    ) -> Response:
        parts = urlsplit(url)
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "path": parts.path,
            "raw_path": parts.path.encode(),
            "query_string": parts.query.encode(),
            "headers": [
                (k.lower().encode(), v.encode())
                for k, v in {"content-type": "application/json", **headers}.items()
            ],
        }
        chunks = [
            body[i : i + self.chunk_bytes]
            for i in range(0, len(body), self.chunk_bytes)
        ] or [b""]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            if chunks:
                chunk = chunks.pop(0)
                return {
                    "type": "http.request",
                    "body": chunk,
                    "more_body": bool(chunks),
                }
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        start = sent[0]
        return Response(
            start["status"],
            {k.decode(): v.decode() for k, v in start["headers"]},
            b"".join(m.get("body", b"") for m in sent[1:]),
        )


def _dumps(value: Any) -> bytes:
    return json.dumps(value).encode()
