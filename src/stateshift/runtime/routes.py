"""The operations of the HTTP API, one small function each."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from stateshift import __version__
from stateshift.runtime import commands
from stateshift.runtime.triggers import HttpResponse

if TYPE_CHECKING:
    from stateshift.runtime.http import Call, HttpApi, Route


def build(api: HttpApi) -> tuple[Route, ...]:
    """Every route of ``api``, in the order the OpenAPI document lists them."""
    from stateshift.runtime.http import Route
    from stateshift.runtime.openapi import openapi_document

    service = api.service

    def health(call: Call) -> HttpResponse:
        return HttpResponse.json(200, {"status": "ok", "version": __version__})

    def openapi(call: Call) -> HttpResponse:
        return HttpResponse.json(200, openapi_document(api))

    def list_workflows(call: Call) -> HttpResponse:
        return HttpResponse.json(200, {"workflows": list(service.workflow_names())})

    def start(call: Call) -> HttpResponse:
        workflow = commands.checked_name(call.params["workflow"], "workflow")
        body = call.body()
        view = service.start(
            workflow,
            commands.arguments(body),
            commands.keyword_arguments(body),
            workflow_id=commands.optional_id(body, "workflow_id"),
            run_here=True,
            budget_seconds=call.deadline.budget_seconds(),
            placement=commands.placement_options(body),
        )
        # Finished within the request: the result now. Otherwise the caller
        # polls the status URL.
        return HttpResponse.json(
            200 if view.finished else 202,
            view.to_json(),
            {"location": status_url(view.workflow_id)},
        )

    def status(call: Call) -> HttpResponse:
        workflow_id = commands.checked_name(call.params["workflow_id"], "workflow_id")
        return HttpResponse.json(200, service.status(workflow_id).to_json())

    def send_event(call: Call) -> HttpResponse:
        workflow_id = commands.checked_name(call.params["workflow_id"], "workflow_id")
        name = commands.checked_name(call.params["name"], "name")
        body = call.body()
        delivered = service.send_event(
            workflow_id,
            name,
            body.get("payload"),
            event_id=commands.optional_id(body, "event_id"),
        )
        return HttpResponse.json(
            202 if delivered else 200,
            {"workflow_id": workflow_id, "name": name, "delivered": delivered},
            {"location": status_url(workflow_id)},
        )

    def cancel(call: Call) -> HttpResponse:
        workflow_id = commands.checked_name(call.params["workflow_id"], "workflow_id")
        return HttpResponse.json(200, service.cancel(workflow_id).to_json())

    def call_entity(call: Call) -> HttpResponse:
        entity = commands.checked_name(call.params["entity"], "entity")
        key = commands.checked_name(call.params["key"], "key")
        operation = commands.checked_name(call.params["operation"], "operation")
        body = call.body()
        result = service.call_entity(
            entity,
            key,
            operation,
            commands.arguments(body),
            commands.keyword_arguments(body),
        )
        return HttpResponse.json(200, {"result": result})

    def tick(call: Call) -> HttpResponse:
        # For schedulers that can only call a URL (Cloud Scheduler, cron).
        report = service.tick(call.deadline.budget_seconds())
        return HttpResponse.json(
            200,
            {
                "ran": report.ran,
                "released": report.released,
                "next_wake_up_seconds": report.next_wake_up_seconds,
            },
        )

    return (
        Route("GET", "/health", health, False, "Liveness of the API"),
        Route("GET", "/openapi.json", openapi, False, "This OpenAPI document"),
        Route("GET", "/workflows", list_workflows, False, "Registered workflows"),
        Route("POST", "/workflows/{workflow}/start", start, True, "Start a workflow"),
        Route("GET", "/runs/{workflow_id}", status, False, "Status and result"),
        Route(
            "POST",
            "/runs/{workflow_id}/events/{name}",
            send_event,
            True,
            "Send an event to a workflow",
        ),
        Route("POST", "/runs/{workflow_id}/cancel", cancel, True, "Cancel a run"),
        Route(
            "POST",
            "/entities/{entity}/{key}/{operation}",
            call_entity,
            True,
            "Call an entity operation",
        ),
        Route("POST", "/tick", tick, True, "Run due work now (for schedulers)"),
    )


def status_url(workflow_id: str) -> str:
    """Where the status of ``workflow_id`` is read."""
    return f"/runs/{quote(workflow_id, safe='')}"
