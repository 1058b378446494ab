"""Recognising entry points: HTTP routes, webhooks, queue consumers.

Serverless code is a set of handlers; several rules only make sense for
them (a client built per call, a delivery handled twice).
"""

from __future__ import annotations

import ast
import re

from stateshift.analyze._context import FunctionNode, ModuleContext
from stateshift.analyze.rules._vocab import decorator_names

_ROUTE_ATTRS = {"route", "get", "post", "put", "patch", "delete", "api_route"}
_QUEUE_ATTRS = {
    "task",
    "shared_task",
    "actor",
    "consumer",
    "subscriber",
    "listener",
    "on_message",
    "queue_handler",
    "sqs_handler",
    "event_handler",
    "message_handler",
}
_WEBHOOK_TEXT = re.compile(r"webhook|hook|callback|notif|ipn", re.IGNORECASE)
_CALLBACK_KEYWORDS = {"on_message_callback", "callback", "cb", "handler", "func"}
_CONSUMER_METHODS = {"basic_consume", "subscribe", "add_listener", "consume"}
_MESSAGE_NAMES = re.compile(
    r"^(on|handle|process|consume)_\w*(message|event|delivery|notification)s?$"
)


def handler_kind(ctx: ModuleContext, func: FunctionNode) -> str | None:
    """``webhook``, ``queue``, ``http`` or ``None`` for an ordinary function."""
    for decorator in func.decorator_list:
        call = decorator if isinstance(decorator, ast.Call) else None
        target = call.func if call is not None else decorator
        attr = target.attr if isinstance(target, ast.Attribute) else ""
        if attr in _ROUTE_ATTRS and call is not None and _route_path(call):
            path = _route_path(call) or ""
            if _WEBHOOK_TEXT.search(path) or _WEBHOOK_TEXT.search(func.name):
                return "webhook"
            return "http"
    last_names = {name.rsplit(".", 1)[-1] for name in decorator_names(ctx, func)}
    if last_names & _QUEUE_ATTRS:
        return "queue"
    if func.name in _registered_callbacks(ctx) or _MESSAGE_NAMES.match(func.name):
        return "queue"
    if _is_lambda_entry(func):
        return "queue" if _reads_records(func) else "http"
    return None


def _route_path(call: ast.Call) -> str | None:
    if call.args and isinstance(call.args[0], ast.Constant):
        value = call.args[0].value
        return value if isinstance(value, str) else None
    for kw in call.keywords:
        if kw.arg in ("path", "rule") and isinstance(kw.value, ast.Constant):
            return str(kw.value.value)
    return None


def _is_lambda_entry(func: FunctionNode) -> bool:
    params = [a.arg for a in func.args.args]
    return params[:2] == ["event", "context"]


def _reads_records(func: FunctionNode) -> bool:
    for node in ast.walk(func):
        if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if node.slice.value in ("Records", "detail", "data"):
                return True
    return False


def _registered_callbacks(ctx: ModuleContext) -> set[str]:
    """Names of functions handed to a consumer: ``basic_consume(cb=...)``."""
    names: set[str] = set()
    for node in ast.walk(ctx.tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr not in _CONSUMER_METHODS:
            continue
        for kw in node.keywords:
            if kw.arg in _CALLBACK_KEYWORDS and isinstance(kw.value, ast.Name):
                names.add(kw.value.id)
        for arg in node.args:
            if isinstance(arg, ast.Name) and arg.id in ctx.defined_functions:
                names.add(arg.id)
    return names
