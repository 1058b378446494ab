"""Session middleware for Starlette (ASGI), plain WSGI and Flask."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.state.sessions import (
    SessionMiddleware,
    SessionStore,
    WSGISessionMiddleware,
)

SECRET = "a-test-secret-of-enough-length"


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config)
    application.clock = Clock()  # type: ignore[attr-defined]
    yield application
    application.close()


@pytest.fixture
def sessions(app: ss.App) -> SessionStore:
    return SessionStore(app.state("sessions"), secret=SECRET, ttl=600, secure=False)


def _starlette_client(sessions: SessionStore) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def visit(request: Request) -> JSONResponse:
        request.session["visits"] = request.session.get("visits", 0) + 1
        return JSONResponse({"visits": request.session["visits"]})

    async def peek(request: Request) -> JSONResponse:
        return JSONResponse(dict(request.session))

    async def logout(request: Request) -> JSONResponse:
        request.session.clear()
        return JSONResponse({})

    web = Starlette(
        routes=[Route("/visit", visit), Route("/peek", peek), Route("/logout", logout)],
        middleware=[Middleware(SessionMiddleware, store=sessions)],
    )
    return AsgiClient(web)


class AsgiClient:
    """A small synchronous client that calls an ASGI app in-process."""

    def __init__(self, web: Any) -> None:
        import httpx

        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=web), base_url="http://testserver"
        )
        self.cookies = self.client.cookies

    def get(self, path: str) -> Any:
        return asyncio.run(self.client.get(path))

    def __enter__(self) -> AsgiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        asyncio.run(self.client.aclose())


def test_an_asgi_session_survives_between_requests(
    app: ss.App, sessions: SessionStore
) -> None:
    with _starlette_client(sessions) as client:
        assert client.get("/visit").json() == {"visits": 1}
        assert client.get("/visit").json() == {"visits": 2}
        cookie = client.cookies["session"]
    session_id = sessions.verify(cookie)
    assert session_id is not None and session_id not in str(
        [i.key for i in app.state("sessions").scan().items]
    )
    # A new instance (another serverless invocation) serves the same session.
    with _starlette_client(sessions) as other:
        other.cookies.set("session", cookie)
        assert other.get("/visit").json() == {"visits": 3}


def test_a_request_that_changes_nothing_writes_nothing(sessions: SessionStore) -> None:
    with _starlette_client(sessions) as client:
        client.get("/visit")
        response = client.get("/peek")
        assert "set-cookie" not in response.headers
        item = sessions.namespace.scan().items[0]
        assert item.version == 1


def test_a_tampered_cookie_gets_a_fresh_session(sessions: SessionStore) -> None:
    with _starlette_client(sessions) as client:
        client.get("/visit")
        session_id = sessions.verify(client.cookies["session"])
        client.cookies.set("session", f"{session_id}.forged")
        assert client.get("/visit").json() == {"visits": 1}
        client.cookies.set("session", "garbage")
        assert client.get("/peek").json() == {}


def test_a_session_expires_after_its_ttl_and_slides_when_used(
    app: ss.App, sessions: SessionStore
) -> None:
    clock: Clock = app.clock  # type: ignore[attr-defined]
    with _starlette_client(sessions) as client:
        client.get("/visit")
        clock.now += 400  # past half the TTL: the next read refreshes it
        assert "set-cookie" in client.get("/peek").headers
        clock.now += 400
        assert client.get("/peek").json() == {"visits": 1}
        clock.now += 601
        assert client.get("/peek").json() == {}


def test_logout_deletes_the_session_and_expires_the_cookie(
    sessions: SessionStore,
) -> None:
    with _starlette_client(sessions) as client:
        client.get("/visit")
        response = client.get("/logout")
        assert "Max-Age=0" in response.headers["set-cookie"]
    assert sessions.namespace.scan().items == []


def test_a_rotated_secret_still_accepts_old_cookies(app: ss.App) -> None:
    old = SessionStore(app.state("s"), secret=SECRET)
    new = SessionStore(
        app.state("s"), secret="another-long-secret-key", old_secrets=[SECRET]
    )
    cookie = old.sign("abc")
    assert new.verify(cookie) == "abc"
    assert old.verify(new.sign("abc")) is None


def test_a_short_secret_is_refused(app: ss.App) -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SessionStore(app.state("s"), secret="short")


def test_the_cookie_carries_safe_attributes(app: ss.App) -> None:
    store = SessionStore(app.state("s"), secret=SECRET)
    header = store.set_cookie_header("v", max_age=10)
    assert "HttpOnly" in header and "Secure" in header and "SameSite=Lax" in header


def test_a_wsgi_session_survives_between_requests(sessions: SessionStore) -> None:
    from werkzeug.test import Client

    def counter(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        session = environ["stateshift.session"]
        session["n"] = session.get("n", 0) + 1
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(session["n"]).encode()]

    client = Client(WSGISessionMiddleware(counter, store=sessions))
    assert client.get("/").get_data() == b"1"
    assert client.get("/").get_data() == b"2"


def test_a_flask_session_survives_between_requests(sessions: SessionStore) -> None:
    import flask

    from stateshift.state.flask_sessions import StateSessionInterface

    web = flask.Flask(__name__)
    web.session_interface = StateSessionInterface(sessions)

    @web.route("/cart/<sku>")
    def add(sku: str) -> dict[str, Any]:
        flask.session.setdefault("cart", [])
        flask.session["cart"] = [*flask.session["cart"], sku]
        return {"cart": flask.session["cart"]}

    @web.route("/login")
    def login() -> dict[str, Any]:
        flask.session.rotate()  # type: ignore[attr-defined]
        return {}

    client = web.test_client()
    assert client.get("/cart/a").get_json() == {"cart": ["a"]}
    before = client.get_cookie("session")
    assert client.get("/cart/b").get_json() == {"cart": ["a", "b"]}
    client.get("/login")
    after = client.get_cookie("session")
    assert before is not None and after is not None and before.value != after.value
    assert client.get("/cart/c").get_json() == {"cart": ["a", "b", "c"]}
    assert len(sessions.namespace.scan().items) == 1
