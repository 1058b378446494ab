"""Flask sessions kept in a namespace: ``app.session_interface = ...``.

::

    store = SessionStore(ss_app.state("sessions"), secret=SECRET, ttl=3600)
    flask_app.session_interface = StateSessionInterface(store)

``flask.session`` then reads and writes the namespace item; the cookie
holds only the signed session id (see :mod:`stateshift.state.sessions`).
"""

from __future__ import annotations

from typing import Any

from flask.sessions import SessionInterface, SessionMixin

from stateshift.state.sessions import Session, SessionStore

__all__ = ["FlaskSession", "StateSessionInterface"]


class FlaskSession(Session, SessionMixin):
    """A :class:`~stateshift.state.sessions.Session` that Flask accepts."""


class StateSessionInterface(SessionInterface):
    """Flask's session interface backed by a :class:`SessionStore`."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def open_session(self, app: Any, request: Any) -> FlaskSession:
        cookie = request.cookies.get(self.store.cookie_name)
        loaded = self.store.load(cookie)
        session = FlaskSession(
            dict(loaded), session_id=loaded.session_id, expires_at=loaded.expires_at
        )
        return session

    def save_session(self, app: Any, session: Any, response: Any) -> None:
        if not isinstance(session, Session):
            return
        set_cookie = self.store.save(session)
        if set_cookie is not None:
            response.headers.add("Set-Cookie", set_cookie)
            response.vary.add("Cookie")
