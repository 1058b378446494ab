"""The OpenAPI 3.1 document of the HTTP API, built from its routes."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from stateshift import __version__

if TYPE_CHECKING:
    from stateshift.runtime.http import HttpApi, Route

_ERROR = {"$ref": "#/components/schemas/Error"}
_RUN = {"$ref": "#/components/schemas/Run"}

_BODIES: dict[str, dict[str, Any]] = {
    "/workflows/{workflow}/start": {
        "type": "object",
        "properties": {
            "args": {"type": "array"},
            "kwargs": {"type": "object"},
            "workflow_id": {"type": "string", "minLength": 1, "maxLength": 200},
            "residency": {"type": "string"},
            "tenant": {"type": "string"},
            "partition_key": {"type": "string"},
        },
        "additionalProperties": True,
    },
    "/runs/{workflow_id}/events/{name}": {
        "type": "object",
        "properties": {
            "payload": {},
            "event_id": {"type": "string", "minLength": 1, "maxLength": 200},
        },
    },
    "/entities/{entity}/{key}/{operation}": {
        "type": "object",
        "properties": {"args": {"type": "array"}, "kwargs": {"type": "object"}},
    },
}

_ANSWERS: dict[str, dict[str, Any]] = {
    "/workflows/{workflow}/start": {
        "200": ("Finished within the request", _RUN),
        "202": ("Still running or waiting: poll the Location", _RUN),
        "409": ("The workflow id is taken by another function or input", _ERROR),
    },
    "/runs/{workflow_id}": {"200": ("The run", _RUN)},
    "/runs/{workflow_id}/cancel": {"200": ("The run after cancelling", _RUN)},
    "/runs/{workflow_id}/events/{name}": {
        "202": ("Delivered", {"type": "object"}),
        "200": ("Not delivered: the run had finished", {"type": "object"}),
    },
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                },
            }
        },
    },
    "Run": {
        "type": "object",
        "required": ["workflow_id", "workflow", "status"],
        "properties": {
            "workflow_id": {"type": "string"},
            "workflow": {"type": "string"},
            "status": {
                "enum": [
                    "pending",
                    "running",
                    "waiting",
                    "succeeded",
                    "failed",
                    "cancelled",
                    "compensation_failed",
                    "blocked",
                    "dead",
                ]
            },
            "result": {},
            "error": {"type": "object"},
            "waiting_for": {"type": "string"},
            "steps": {"type": "array", "items": {"type": "object"}},
        },
    },
}


def openapi_document(api: HttpApi) -> dict[str, Any]:
    """The document describing every route of ``api``."""
    paths: dict[str, dict[str, Any]] = {}
    for route in api.routes:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": api.title, "version": __version__},
        "paths": paths,
        "components": {
            "schemas": _SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {
        code: _response(text, schema)
        for code, (text, schema) in _ANSWERS.get(
            route.template, {"200": ("Success", {"type": "object"})}
        ).items()
    }
    for code, text in (
        ("400", "Malformed JSON"),
        ("404", "Unknown id or name"),
        ("413", "Body too large"),
        ("422", "Invalid arguments"),
        ("503", "Store unavailable, retry"),
    ):
        responses.setdefault(code, _response(text, _ERROR))
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"\{(\w+)\}", route.template)
        ],
        "responses": responses,
    }
    if route.changes_state:
        operation["security"] = [{"bearer": []}]
        responses["401"] = _response("Missing or wrong bearer token", _ERROR)
    body = _BODIES.get(route.template)
    if body is not None:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": body}},
        }
    return operation


def _response(text: str, schema: Any) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _operation_id(route: Route) -> str:
    words = re.sub(r"\{\w+\}", "", route.template).replace(".", "_").split("/")
    return route.method.lower() + "_" + "_".join(w for w in words if w)
