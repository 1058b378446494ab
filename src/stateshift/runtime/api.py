"""The runtime's methods on :class:`stateshift.App`: invoke, ASGI app, invoker."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stateshift._durations import Duration, to_seconds

if TYPE_CHECKING:
    from stateshift.runtime.asgi import AsgiApp
    from stateshift.runtime.deadline import Deadline
    from stateshift.runtime.invocation import (
        InvocationPolicy,
        Invoker,
        Outcome,
        WakeUp,
    )
    from stateshift.runtime.service import Service
    from stateshift.runtime.triggers import Trigger


class RuntimeMixin:
    """Serve the app over HTTP and run it inside serverless invocations."""

    settings: Any

    def runtime_service(self) -> Service:
        """The operations of this app as the runtime calls them."""
        from stateshift.runtime.app_service import AppService

        return AppService(self)

    def invoker(
        self,
        *,
        token: str | None = None,
        allow_anonymous: bool = False,
        policy: InvocationPolicy | None = None,
        wake_up: WakeUp | None = None,
        max_body_bytes: int | None = None,
        service: Service | None = None,
    ) -> Invoker:
        """The invocation entry point that platform adapters call.

        Args:
            token: bearer token for the operations that change things; by
                default the ``api_token`` setting (``STATESHIFT_API_TOKEN``).
            allow_anonymous: with no token, let anyone change things.
            policy: how an invocation shares time with due work.
            wake_up: asks the platform for a later invocation (a delayed
                queue message), so short timers need no one-minute tick.
            max_body_bytes: larger HTTP bodies are refused with 413.
            service: what to act on; by default this app.
        """
        from stateshift.runtime.http import DEFAULT_MAX_BODY_BYTES, HttpApi
        from stateshift.runtime.invocation import Invoker

        service = service if service is not None else self.runtime_service()
        api = HttpApi(
            service,
            token=token if token is not None else (self.settings.api_token or None),
            allow_anonymous=allow_anonymous,
            max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
        )
        return Invoker(service, http=api, policy=policy, wake_up=wake_up)

    def invoke(self, trigger: Trigger, deadline: Deadline | Duration) -> Outcome:
        """Run one trigger within ``deadline`` (a :class:`Deadline` or seconds)."""
        from stateshift.runtime.deadline import Deadline

        if not isinstance(deadline, Deadline):
            deadline = Deadline.after(to_seconds(deadline, name="deadline"))
        return self.invoker(allow_anonymous=True).invoke(trigger, deadline)

    def asgi(
        self,
        *,
        token: str | None = None,
        allow_anonymous: bool = False,
        request_timeout: Duration = 30.0,
        max_body_bytes: int | None = None,
        service: Service | None = None,
    ) -> AsgiApp:
        """The HTTP API as an ASGI app (``pip install 'stateshift[server]'``).

        Serve it with ``uvicorn module:asgi_app``. Each request has
        ``request_timeout`` to finish the workflow it starts; a workflow
        still running or waiting then answers ``202`` with its status URL.
        """
        from stateshift.runtime.asgi import AsgiApp

        invoker = self.invoker(
            token=token,
            allow_anonymous=allow_anonymous,
            max_body_bytes=max_body_bytes,
            service=service,
        )
        from stateshift.runtime.http import DEFAULT_MAX_BODY_BYTES

        return AsgiApp(
            invoker,
            max_body_bytes=max_body_bytes or DEFAULT_MAX_BODY_BYTES,
            request_timeout_seconds=to_seconds(request_timeout, name="request_timeout"),
        )
