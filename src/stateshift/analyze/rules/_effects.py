"""Recognising calls with outside effects: payments, e-mail, writes.

Shared by the idempotency and saga rules. A call counts only when its
name says so clearly: a verb from the lists below on a receiver that is
not a local value, so that ``items.append(x)`` or ``data.update(y)`` never
count as talking to another service.
"""

from __future__ import annotations

import ast
import re

from stateshift.analyze._context import ModuleContext
from stateshift.analyze.rules._vocab import (
    CONNECTION_OPENERS,
    POOLED_CLIENTS,
    is_mail_receiver,
    is_payment_receiver,
    name_words,
    split_call,
    string_args,
)

_STRONG_PAYMENT_VERBS = {
    "charge",
    "charge_card",
    "create_charge",
    "capture_payment",
    "create_payment",
    "make_payment",
    "create_payment_intent",
    "refund",
    "create_refund",
    "refund_payment",
    "payout",
    "create_payout",
    "create_transfer",
}
_WEAK_PAYMENT_VERBS = {
    "create",
    "capture",
    "confirm",
    "pay",
    "transfer",
    "debit",
    "sale",
    "authorize",
}
_NOT_A_SERVICE = {
    "objects",
    "repo",
    "repository",
    "dao",
    "model",
    "models",
    "orm",
    "db",
}
_MONEY = re.compile(r"amount|cents|price|total|currency|card|customer", re.IGNORECASE)
_PAYMENT_URL = re.compile(r"charge|payment|refund|payout|stripe|paypal", re.IGNORECASE)
_MAIL_FUNCTIONS = {
    "send_email",
    "send_mail",
    "send_mass_mail",
    "send_templated_email",
    "send_templated_mail",
    "send_raw_email",
    "send_bulk_templated_email",
}
_MAIL_METHODS = {"send", "send_message", "sendmail", "deliver"}
_MAIL_URL = re.compile(r"mail|/messages\b", re.IGNORECASE)
_HTTP_WRITES = {
    f"{lib}.{verb}"
    for lib in ("requests", "httpx")
    for verb in ("post", "put", "patch", "delete")
}
_WRITE_VERB = re.compile(
    r"^_?(charge|capture|refund|pay|send|email|mail|notify|publish|create|insert|"
    r"update|upsert|save|put|post|patch|write|execute|ship|reserve|allocate|book|"
    r"decrement|increment|debit|credit|transfer|fulfil|fulfill|cancel|delete|"
    r"remove|enqueue|submit|place|register|set_|mark_)"
)
_NEVER_EFFECTS = {
    "logging",
    "logger",
    "log",
    "print",
    "json",
    "sys",
    "os",
    "re",
    "self",
}


def _own_receiver(ctx: ModuleContext, call: ast.Call, receiver: str) -> bool:
    """True when the receiver is a value the function built itself."""
    root = receiver.split(".", 1)[0]
    func = ctx.enclosing_function(call)
    if func is None or not root:
        return False
    params = {a.arg for a in func.args.args} | {a.arg for a in func.args.kwonlyargs}
    return root in ctx.local_names(func) and root not in params


def payment_call(ctx: ModuleContext, call: ast.Call) -> str | None:
    """A description of ``call`` when it moves money, else ``None``."""
    parts = split_call(ctx, call)
    if parts is None:
        return None
    receiver, method = parts
    full = f"{receiver}.{method}" if receiver else method
    last = full.rsplit(".", 1)[-1]
    prefix = full.rsplit(".", 1)[0] if "." in full else ""
    shown = _shown(call, full)
    if receiver.split(".", 1)[0] in ("self", "cls"):
        return None
    if name_words(prefix) & _NOT_A_SERVICE:
        return None
    if not receiver and method in ctx.defined_functions:
        return None  # a function of this module: its own body is checked

    if full in _HTTP_WRITES or (last == "post" and _http_client(ctx, prefix)):
        urls = string_args(call)
        if urls and any(_PAYMENT_URL.search(u) for u in urls):
            return f"`{shown}(...)` to a payments API"
        return None
    if last in _STRONG_PAYMENT_VERBS:
        if is_payment_receiver(prefix) or _mentions_money(call):
            return f"`{shown}(...)`"
        return None
    if last in _WEAK_PAYMENT_VERBS and prefix and is_payment_receiver(prefix):
        return f"`{shown}(...)`"
    return None


def email_call(ctx: ModuleContext, call: ast.Call) -> str | None:
    """A description of ``call`` when it sends an e-mail, else ``None``."""
    parts = split_call(ctx, call)
    if parts is None:
        return None
    receiver, method = parts
    full = f"{receiver}.{method}" if receiver else method
    last = full.rsplit(".", 1)[-1]
    prefix = full.rsplit(".", 1)[0] if "." in full else ""
    shown = _shown(call, full)
    if receiver.split(".", 1)[0] in ("self", "cls"):
        return None
    if not receiver and method in ctx.defined_functions:
        return None

    if full in _HTTP_WRITES:
        urls = string_args(call)
        if urls and any(_MAIL_URL.search(u) for u in urls):
            return f"`{shown}(...)` to a mail API"
        return None
    if last in _MAIL_FUNCTIONS:
        return f"`{shown}(...)`"
    if last in _MAIL_METHODS and (
        is_mail_receiver(prefix) or _bound_to_smtp(ctx, call, receiver)
    ):
        return f"`{shown}(...)`"
    return None


def _shown(call: ast.Call, resolved: str) -> str:
    """The call's name as written in the code, else the resolved one."""
    if isinstance(call.func, ast.Name):
        return call.func.id
    local = _local_receiver(call)
    if local is not None and isinstance(call.func, ast.Attribute):
        return f"{local}.{call.func.attr}"
    return resolved


def write_call(ctx: ModuleContext, call: ast.Call) -> str | None:
    """The service a call writes to, else ``None``.

    Only receivers that name a service count (``inventory.reserve``,
    ``self.payments.charge``, a module-level client), so that signals,
    loggers and local values never do. HTTP writes name their URL.
    """
    parts = split_call(ctx, call)
    if parts is None:
        return None
    receiver, method = parts
    if not receiver:
        return None
    local = _local_receiver(call)
    names = (local or receiver).split(".")
    if names[0] in ("self", "cls") and len(names) > 1:
        names = names[1:]
    root = names[0]
    if root in _NEVER_EFFECTS or _own_receiver(ctx, call, receiver):
        return None
    if root in stateshift_names(ctx):
        # Writes to app.state(...) namespaces and the outbox commit together
        # inside a step; they are the fix, not a second service.
        return None
    full = f"{receiver}.{method}"
    if full in _HTTP_WRITES:
        urls = string_args(call)
        return f"{receiver} {urls[0]}" if urls else None
    if not _WRITE_VERB.match(method):
        return None
    if name_words(root) & _SERVICE_WORDS or root in _module_clients(ctx):
        return root
    return None


_SERVICE_WORDS = {
    "inventory",
    "stock",
    "warehouse",
    "payments",
    "payment",
    "billing",
    "stripe",
    "psp",
    "shipping",
    "shipment",
    "shipments",
    "fulfillment",
    "fulfilment",
    "courier",
    "carrier",
    "crm",
    "ledger",
    "accounting",
    "erp",
    "api",
    "client",
    "service",
    "gateway",
    "db",
    "database",
    "bank",
    "mailer",
    "sms",
    "s3",
    "sqs",
    "sns",
    "dynamodb",
    "table",
    "bucket",
    "producer",
    "loyalty",
    "tax",
    "invoicing",
}


def _local_receiver(call: ast.Call) -> str | None:
    """The receiver as written (``payments`` even when it was imported from
    ``shop.clients``), so that services keep the names the code uses."""
    node = call.func.value if isinstance(call.func, ast.Attribute) else None
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _http_client(ctx: ModuleContext, receiver: str) -> bool:
    """True for ``requests``, ``httpx`` and objects named like HTTP sessions."""
    if receiver.split(".", 1)[0] in ("requests", "httpx", "aiohttp"):
        return True
    return bool(name_words(receiver) & {"http", "session", "client"})


def _module_clients(ctx: ModuleContext) -> set[str]:
    """Module-level names bound to a known client or connection."""
    return {
        name
        for name, value in ctx.module_values.items()
        if isinstance(value, ast.Call)
        and (ctx.call_name(value) or "") in (POOLED_CLIENTS | CONNECTION_OPENERS)
    }


def stateshift_names(ctx: ModuleContext) -> set[str]:
    """Module-level names bound to stateshift objects: the ``App`` and the
    namespaces and queues made from it."""
    names: set[str] = set()
    for _ in range(2):
        for name, value in ctx.module_values.items():
            if not isinstance(value, ast.Call):
                continue
            called = ctx.call_name(value) or ""
            if called.startswith("stateshift.") or called.split(".", 1)[0] in names:
                names.add(name)
    return names


def _mentions_money(call: ast.Call) -> bool:
    for kw in call.keywords:
        if kw.arg and _MONEY.search(kw.arg):
            return True
    for arg in call.args:
        for node in ast.walk(arg):
            text = node.id if isinstance(node, ast.Name) else None
            if isinstance(node, ast.Attribute):
                text = node.attr
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            if text and _MONEY.search(text):
                return True
    return False


def _bound_to_smtp(ctx: ModuleContext, call: ast.Call, receiver: str) -> bool:
    """True when ``receiver`` was assigned from ``smtplib.SMTP*`` in the
    same function (``with smtplib.SMTP(host) as smtp`` included)."""
    func = ctx.enclosing_function(call)
    if func is None or "." in receiver:
        return False
    for node in ast.walk(func):
        value: ast.expr | None = None
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == receiver for t in node.targets
        ):
            value = node.value
        elif isinstance(node, ast.withitem) and (
            isinstance(node.optional_vars, ast.Name)
            and node.optional_vars.id == receiver
        ):
            value = node.context_expr
        if isinstance(value, ast.Call) and (ctx.call_name(value) or "").startswith(
            "smtplib.SMTP"
        ):
            return True
    return False
