"""Web sessions kept in a namespace, for ASGI and WSGI apps.

The cookie holds only a random session id and its HMAC-SHA256 signature;
the session's contents live in a namespace item with a TTL, so any
instance of a serverless function can serve the next request. The item's
key is a hash of the id, so a copy of the store does not hand out live
session ids.

::

    sessions = SessionStore(app.state("sessions"), secret=SECRET, ttl=3600)
    starlette_app.add_middleware(SessionMiddleware, store=sessions)  # ASGI
    wsgi_app = WSGISessionMiddleware(wsgi_app, store=sessions)       # WSGI

In ASGI apps the session is ``scope["session"]`` (Starlette's and FastAPI's
``request.session``); in WSGI apps it is ``environ["stateshift.session"]``.
Flask apps use :class:`stateshift.state.flask_sessions.StateSessionInterface`.

A session is saved when the response starts, if its contents changed, or
when more than half its TTL has passed (sliding expiry). Two concurrent
requests of one session that both change it: the last to finish wins, as
with cookie sessions.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any

from stateshift._durations import to_seconds
from stateshift.state.namespace import Namespace

__all__ = ["Session", "SessionMiddleware", "SessionStore", "WSGISessionMiddleware"]

ASGIApp = Callable[..., Awaitable[None]]
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_MIN_SECRET_BYTES = 16


class Session(dict[str, Any]):
    """The contents of one session: a dict, plus its id and bookkeeping."""

    def __init__(
        self,
        data: dict[str, Any] | None = None,
        *,
        session_id: str | None = None,
        expires_at: float | None = None,
    ) -> None:
        super().__init__(data or {})
        self.session_id = session_id
        """The id in the cookie; ``None`` until the session is first saved."""
        self.expires_at = expires_at
        self._loaded = copy.deepcopy(dict(self))
        self._rotate = False

    @property
    def changed(self) -> bool:
        """True when the contents differ from what was loaded."""
        return dict(self) != self._loaded

    def rotate(self) -> None:
        """Give the session a new id when saved (do it at login)."""
        self._rotate = True


class SessionStore:
    """Loads and saves sessions in a namespace; signs and checks cookies.

    Args:
        namespace: where sessions live, like ``app.state("sessions")``.
        secret: the signing key (at least 16 bytes); keep it out of the code.
        old_secrets: earlier keys still accepted, while rotating ``secret``.
        ttl: how long an idle session lives.
        cookie_name: name of the cookie.
        secure: send the cookie over HTTPS only.
        same_site: the cookie's ``SameSite`` attribute.
        path: the cookie's ``Path``.
        domain: the cookie's ``Domain``, if any.
    """

    def __init__(
        self,
        namespace: Namespace[Any],
        *,
        secret: str | bytes,
        old_secrets: Sequence[str | bytes] = (),
        ttl: timedelta | float = 14 * 86_400,
        cookie_name: str = "session",
        secure: bool = True,
        same_site: str = "lax",
        path: str = "/",
        domain: str | None = None,
    ) -> None:
        self.namespace = namespace
        self._keys = [_key(s) for s in (secret, *old_secrets)]
        self.ttl_seconds = to_seconds(ttl, name="ttl")
        if self.ttl_seconds < 1:
            raise ValueError("a session ttl must be at least one second")
        if same_site.lower() not in {"lax", "strict", "none"}:
            raise ValueError("same_site must be 'lax', 'strict' or 'none'")
        self.cookie_name = cookie_name
        self.secure = secure
        self.same_site = same_site.capitalize()
        self.path = path
        self.domain = domain

    # --- cookies ----------------------------------------------------------

    def sign(self, session_id: str) -> str:
        """The cookie value for ``session_id``."""
        return f"{session_id}.{self._signature(self._keys[0], session_id)}"

    def verify(self, cookie_value: str) -> str | None:
        """The session id of a cookie value, or ``None`` if it is not ours."""
        session_id, _, signature = cookie_value.rpartition(".")
        if not session_id or not signature:
            return None
        for key in self._keys:
            if hmac.compare_digest(signature, self._signature(key, session_id)):
                return session_id
        return None

    @staticmethod
    def _signature(key: bytes, session_id: str) -> str:
        digest = hmac.new(key, session_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def cookie_from_header(self, header: str | None) -> str | None:
        """This store's cookie value in a ``Cookie`` request header."""
        if not header:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            return None
        morsel = jar.get(self.cookie_name)
        return None if morsel is None else morsel.value

    def set_cookie_header(self, value: str, *, max_age: int) -> str:
        """A ``Set-Cookie`` header value."""
        parts = [f"{self.cookie_name}={value}", f"Path={self.path}"]
        parts.append(f"Max-Age={max_age}")
        if self.domain:
            parts.append(f"Domain={self.domain}")
        parts += ["HttpOnly", f"SameSite={self.same_site}"]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)

    # --- load and save ----------------------------------------------------

    def load(self, cookie_value: str | None) -> Session:
        """The session a cookie points at; a new, empty one otherwise."""
        session_id = None if cookie_value is None else self.verify(cookie_value)
        if session_id is None:
            return Session()
        item = self.namespace.get(_item_key(session_id))
        if item is None or not isinstance(item.value, dict):
            return Session()
        return Session(item.value, session_id=session_id, expires_at=item.expires_at)

    def save(self, session: Session) -> str | None:
        """Store ``session`` if needed; return a ``Set-Cookie`` value, if any."""
        if not session and session.session_id is None:
            return None
        if not session:
            # Emptied (logout): forget it and expire the cookie.
            self.namespace.delete(_item_key(session.session_id or ""))
            return self.set_cookie_header("", max_age=0)

        now = self.namespace.now()
        stale = (
            session.expires_at is not None
            and session.expires_at - now < self.ttl_seconds / 2
        )
        if not (session.changed or session._rotate or stale):
            return None
        if session._rotate and session.session_id is not None:
            self.namespace.delete(_item_key(session.session_id))
            session.session_id = None
        if session.session_id is None:
            session.session_id = secrets.token_urlsafe(32)
        self.namespace.put(
            _item_key(session.session_id), dict(session), ttl=self.ttl_seconds
        )
        return self.set_cookie_header(
            self.sign(session.session_id), max_age=int(self.ttl_seconds)
        )


class SessionMiddleware:
    """ASGI middleware (Starlette, FastAPI): ``scope["session"]`` per request.

    Store calls run in a worker thread, so the event loop never blocks.
    """

    def __init__(self, app: ASGIApp, *, store: SessionStore) -> None:
        self.app = app
        self.store = store

    async def __call__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Any]],
        send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = _header(scope.get("headers", ()), b"cookie")
        cookie = self.store.cookie_from_header(header)
        session = await asyncio.to_thread(self.store.load, cookie)
        scope["session"] = session

        async def send_with_cookie(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                set_cookie = await asyncio.to_thread(self.store.save, session)
                if set_cookie is not None:
                    headers = list(message.get("headers", []))
                    headers.append((b"set-cookie", set_cookie.encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class WSGISessionMiddleware:
    """WSGI middleware: ``environ["stateshift.session"]`` per request.

    The session is saved when the app calls ``start_response``; changes
    made while a streamed body is being produced are not saved.
    """

    environ_key = "stateshift.session"

    def __init__(self, app: WSGIApp, *, store: SessionStore) -> None:
        self.app = app
        self.store = store

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        cookie = self.store.cookie_from_header(environ.get("HTTP_COOKIE"))
        session = self.store.load(cookie)
        environ[self.environ_key] = session

        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            set_cookie = self.store.save(session)
            if set_cookie is not None:
                headers = [*headers, ("Set-Cookie", set_cookie)]
            return start_response(status, headers, *exc_info)

        return self.app(environ, start)


def _item_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _key(secret: str | bytes) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < _MIN_SECRET_BYTES:
        raise ValueError(
            f"a session secret must be at least {_MIN_SECRET_BYTES} bytes; "
            "generate one with secrets.token_urlsafe(32)"
        )
    return key


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    values = [value.decode("latin-1") for key, value in headers if key.lower() == name]
    return "; ".join(values) if values else None
