"""The HTTP API, independent of any web framework.

One :class:`HttpApi` answers :class:`~stateshift.runtime.triggers.HttpRequest`
values; the ASGI app, API Gateway, functions-framework and Azure adapters
only translate requests and responses. Errors are JSON objects
``{"error": {"code", "message"}}`` with the status that fits: 400 malformed,
401 no or wrong token, 404 unknown id or name, 409 conflict, 413 too large,
422 invalid arguments, 503 store unavailable.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from stateshift.errors import (
    ConfigError,
    ConflictError,
    DeserializationError,
    EncryptionError,
    IdempotencyError,
    IdempotencyInProgress,
    InvalidKey,
    PayloadTooLarge,
    ResidencyViolation,
    SchemaError,
    StateshiftError,
    StoreError,
    StoreUnavailable,
    UnsupportedType,
    WorkflowConflict,
    WorkflowNotFound,
)
from stateshift.runtime import commands
from stateshift.runtime.deadline import Deadline
from stateshift.runtime.service import Problem, Service
from stateshift.runtime.triggers import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1_048_576

Handler = Callable[["Call"], HttpResponse]


@dataclass(frozen=True)
class Call:
    """A routed request: the path parameters and the time it may take."""

    request: HttpRequest
    params: Mapping[str, str]
    deadline: Deadline

    def body(self) -> dict[str, Any]:
        """The body as a JSON object; an empty body is ``{}``."""
        if not self.request.body.strip():
            return {}
        return commands.parse_json_object(self.request.body, what="the request body")


@dataclass(frozen=True)
class Route:
    """One operation of the API."""

    method: str
    template: str
    """Path template with ``{name}`` parameters, as in the OpenAPI document."""

    handler: Handler
    changes_state: bool
    """Operations that change things need the bearer token."""

    summary: str

    def match(self, path: str) -> dict[str, str] | None:
        """The decoded path parameters if ``path`` fits the template."""
        found = _pattern(self.template).match(path)
        if found is None:
            return None
        return {name: unquote(value) for name, value in found.groupdict().items()}


@functools.lru_cache(maxsize=64)
def _pattern(template: str) -> re.Pattern[str]:
    # A parameter is one path segment: ids with "/" arrive encoded as %2F.
    return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "$")


class HttpApi:
    """Start, inspect, signal and cancel workflows; call entities; health."""

    def __init__(
        self,
        service: Service,
        *,
        token: str | None = None,
        allow_anonymous: bool = False,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        title: str = "stateshift",
    ) -> None:
        """Build the API.

        Args:
            service: what the operations act on.
            token: the bearer token required by operations that change things.
            allow_anonymous: without a token, let anyone change things (for
                local development, or behind a gateway that authenticates).
            max_body_bytes: larger request bodies get 413.
            title: the title of the OpenAPI document.
        """
        if token is not None and not token:
            raise ValueError("token must be a non-empty string or None")
        self.service = service
        self.token = token
        self.allow_anonymous = allow_anonymous
        self.max_body_bytes = max_body_bytes
        self.title = title
        from stateshift.runtime import routes

        self.routes: tuple[Route, ...] = routes.build(self)

    def __call__(self, request: HttpRequest, deadline: Deadline) -> HttpResponse:
        """Answer one request; never raises."""
        try:
            return self._dispatch(request, deadline)
        except Exception as exc:
            return error_response(exc, request)

    def _dispatch(self, request: HttpRequest, deadline: Deadline) -> HttpResponse:
        path = request.path.rstrip("/") or "/"
        allowed: list[str] = []
        for route in self.routes:
            params = route.match(path)
            if params is None:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            if route.changes_state:
                self._authorize(request)
            if len(request.body) > self.max_body_bytes:
                raise Problem(
                    413,
                    "body_too_large",
                    f"the body is {len(request.body)} bytes, over the limit of "
                    f"{self.max_body_bytes}",
                )
            return route.handler(Call(request, params, deadline))
        if allowed:
            return problem_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed on {path}",
                {"allow": ", ".join(sorted(set(allowed)))},
            )
        raise Problem(404, "no_route", f"no operation at {request.method} {path}")

    def _authorize(self, request: HttpRequest) -> None:
        if self.token is None:
            if self.allow_anonymous:
                return
            raise Problem(
                401,
                "unauthorized",
                "this operation changes state and no API token is configured: "
                "set STATESHIFT_API_TOKEN (or pass token=), or allow_anonymous=True",
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise Problem(
                401, "unauthorized", "a valid 'Authorization: Bearer' token is required"
            )


def problem_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> HttpResponse:
    """The JSON error answer."""
    return HttpResponse.json(
        status, {"error": {"code": code, "message": message}}, headers
    )


# Checked in order: subclasses before their bases.
_STATUS_OF: tuple[tuple[type[BaseException], int, str], ...] = (
    (WorkflowNotFound, 404, "workflow_not_found"),
    (WorkflowConflict, 409, "workflow_conflict"),
    (ConflictError, 409, "version_conflict"),
    (IdempotencyInProgress, 409, "in_progress"),
    (IdempotencyError, 422, "idempotency_key_mismatch"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (UnsupportedType, 422, "unsupported_type"),
    (InvalidKey, 422, "invalid_key"),
    (ResidencyViolation, 403, "residency_violation"),
    (StoreUnavailable, 503, "store_unavailable"),
    # The deployment's fault, not the caller's.
    (ConfigError, 500, "misconfigured"),
    (SchemaError, 500, "schema_error"),
    (StoreError, 503, "store_error"),
    (DeserializationError, 500, "unreadable_value"),
    (EncryptionError, 500, "encryption_error"),
)


def error_response(exc: Exception, request: HttpRequest) -> HttpResponse:
    """Map an exception to its JSON answer; server-side ones hide their details."""
    if isinstance(exc, Problem):
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.status, exc.code, str(exc), headers)
    for kind, status, code in _STATUS_OF:
        if not isinstance(exc, kind):
            continue
        if status < 500:
            return problem_response(status, code, str(exc))
        # The deployment's problem: log it whole, tell the caller little.
        logger.error(
            "cannot answer %s %s (request %s): %s",
            request.method,
            request.path,
            request.request_id,
            exc,
            extra={"event": "runtime.http.server_error"},
        )
        headers = {"retry-after": "1"} if status == 503 else None
        return problem_response(
            status,
            code,
            f"{_SERVER_SIDE[code]}; request id {request.request_id!r}",
            headers,
        )
    if isinstance(exc, StateshiftError):
        return problem_response(400, "rejected", str(exc))
    logger.exception(
        "unexpected error answering %s %s (request %s)",
        request.method,
        request.path,
        request.request_id,
        extra={"event": "runtime.http.error"},
    )
    return problem_response(
        500, "internal_error", f"unexpected error; request id {request.request_id!r}"
    )


_SERVER_SIDE = {
    "store_unavailable": "the store is unavailable, retry shortly",
    "misconfigured": "the service is misconfigured",
    "schema_error": "the store's schema does not fit this code",
    "store_error": "the store failed",
    "unreadable_value": "a stored value cannot be read",
    "encryption_error": "a stored value cannot be decrypted",
}
