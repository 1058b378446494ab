"""SS4xx, idempotency: effects that happen twice when a delivery repeats.

Queues, webhooks and serverless retries deliver at least once. Without a
key that recognises the repeat, the second delivery charges, mails or
ships again.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from stateshift.analyze._context import FunctionNode, ModuleContext
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule
from stateshift.analyze.rules._effects import email_call, payment_call, write_call
from stateshift.analyze.rules._handlers import handler_kind
from stateshift.analyze.rules._vocab import (
    call_has_idempotency_key,
    has_idempotent_decorator,
    is_durable_step,
    mentions_idempotency,
)

_DEDUP_SQL = re.compile(r"ON\s+CONFLICT|INSERT\s+OR\s+IGNORE|INSERT\s+IGNORE", re.I)
_DEDUP_NAMES = re.compile(r"processed|already|seen_|_seen|duplicate", re.I)


def _deduplicates(ctx: ModuleContext, func: FunctionNode) -> bool:
    """Signs that a handler recognises a repeated delivery itself."""
    if has_idempotent_decorator(ctx, func) or is_durable_step(ctx, func):
        return True
    if mentions_idempotency(func):
        return True
    for node in ast.walk(func):
        if isinstance(node, ast.keyword) and node.arg in ("workflow_id", "dedup_id"):
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _DEDUP_SQL.search(node.value):
                return True
        if isinstance(node, ast.Name) and _DEDUP_NAMES.search(node.id):
            return True
        if isinstance(node, ast.Attribute) and _DEDUP_NAMES.search(node.attr):
            return True
    return False


def _first_effect(ctx: ModuleContext, func: FunctionNode) -> str | None:
    calls = sorted(ctx.calls_in(func), key=lambda c: (c.lineno, c.col_offset))
    for call in calls:
        found = payment_call(ctx, call) or email_call(ctx, call)
        if found is not None:
            return found
        service = write_call(ctx, call)
        if service is not None:
            return f"a write to `{service}`"
    return None


class HandlerWithoutIdempotency(Rule):
    """SS401: a webhook or queue handler with effects and no dedup."""

    info = RuleInfo(
        rule_id="SS401",
        name="handler-not-idempotent",
        title="Event handler without an idempotency key",
        severity=Severity.ERROR,
        why=(
            "Webhooks are retried when the answer is slow, and queues deliver "
            "at least once. A handler that does not recognise a repeated "
            "delivery applies its effect again: a second order, a second charge."
        ),
        fix=(
            "Key the handler by the event's own id with `@app.idempotent(key=...)`: "
            "a repeated delivery returns the recorded result without running."
        ),
        example=(
            '@app.idempotent(key=lambda event: event["id"], ttl=86_400)\n'
            "def on_payment_succeeded(event: dict) -> dict:\n"
            '    mark_paid(event["data"]["order_id"])\n'
            '    return {"ok": True}'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for func in ctx.functions():
            kind = handler_kind(ctx, func)
            if kind not in ("webhook", "queue") or _deduplicates(ctx, func):
                continue
            effect = _first_effect(ctx, func)
            if effect is None:
                continue
            yield Hit(
                func,
                f"{kind} handler `{func.name}()` makes {effect} with no "
                "idempotency key; a repeated delivery repeats it",
            )


class PaymentWithoutKey(Rule):
    """SS402: a payment API call without an idempotency key."""

    info = RuleInfo(
        rule_id="SS402",
        name="payment-without-key",
        title="Payment call without an idempotency key",
        severity=Severity.ERROR,
        why=(
            "When a charge times out the caller cannot tell whether it went "
            "through; a retry, by the code, the queue or the platform, charges "
            "the customer a second time unless the provider can recognise it."
        ),
        fix=(
            "Charge inside an `@app.step` and pass the step's deterministic key, "
            "`ss.current().idempotency_key`, to the provider."
        ),
        example=(
            "@app.step(retry=ss.RetryPolicy(max_attempts=5))\n"
            "def charge(order_id: str, cents: int) -> str:\n"
            "    return payments.charge(order_id, cents,\n"
            "        idempotency_key=ss.current().idempotency_key)"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call) or call_has_idempotency_key(call):
                continue
            found = payment_call(ctx, call)
            if found is not None:
                yield Hit(call, f"{found} moves money without an idempotency key")


class EmailWithoutKey(Rule):
    """SS403: an e-mail sent with nothing to stop a second copy."""

    info = RuleInfo(
        rule_id="SS403",
        name="email-without-key",
        title="E-mail sent without an idempotency key",
        severity=Severity.WARNING,
        why=(
            "A retried request or a redelivered message sends the mail again; "
            "and a mail sent before the transaction commits goes out even when "
            "the order it announces is rolled back."
        ),
        fix=(
            "Publish the intent through the outbox, `app.publish(...)`, in the "
            "same transaction as the change, and send from an idempotent "
            "handler; or send inside an `@app.step` keyed by "
            "`ss.current().idempotency_key`."
        ),
        example=(
            'app.publish("order-confirmed", {"order_id": order_id})\n\n'
            '@app.idempotent(key=lambda event: event["order_id"])\n'
            "def send_confirmation(event: dict) -> None:\n"
            "    mailer.send(to=..., message_id=f\"order-{event['order_id']}\")"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call) or call_has_idempotency_key(call):
                continue
            found = email_call(ctx, call)
            if found is None:
                continue
            func = ctx.enclosing_function(call)
            if func is not None and _deduplicates(ctx, func):
                continue
            yield Hit(call, f"{found} sends mail with nothing to stop a repeat")
