"""SS3xx, connections: opened too early, or opened again on every call.

An instance lives for many invocations with frozen gaps between them. A
connection opened at import goes stale during a freeze; a client built in
each handler pays a handshake per request and floods the database with
connections when the platform scales out.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from stateshift.analyze._context import FunctionNode, ModuleContext
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule
from stateshift.analyze.rules._handlers import handler_kind
from stateshift.analyze.rules._vocab import (
    CONNECTION_OPENERS,
    POOLED_CLIENTS,
    decorator_names,
)

_PER_CALL_OK = {"smtplib.SMTP", "smtplib.SMTP_SSL", "ftplib.FTP", "sqlite3.connect"}


class ConnectionAtImport(Rule):
    """SS301: a connection opened while the module is imported."""

    info = RuleInfo(
        rule_id="SS301",
        name="connection-at-import",
        title="Connection opened at import time",
        severity=Severity.WARNING,
        why=(
            "A connection opened at import lives as long as the instance: it "
            "goes stale while the platform freezes the process between "
            "invocations, a cold start fails outright when the server is "
            "briefly unreachable, and short-lived credentials expire under it."
        ),
        fix=(
            "Open connections lazily, once per instance, and check them after a "
            "thaw; state that belongs to the application goes through "
            "`app.state(...)`, whose store manages its own connections."
        ),
        example=(
            "_conn = None\n\n"
            "def get_conn():\n"
            "    global _conn\n"
            "    if _conn is None or _conn.closed:\n"
            "        _conn = psycopg.connect(DATABASE_URL)\n"
            "    return _conn"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        engines = {
            name
            for name, value in ctx.module_values.items()
            if isinstance(value, ast.Call) and ctx.call_name(value) in POOLED_CLIENTS
        }
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call) or not ctx.runs_at_import(call):
                continue
            name = ctx.call_name(call) or ""
            if name in CONNECTION_OPENERS:
                yield Hit(call, f"`{name}(...)` connects while the module is imported")
            elif (
                isinstance(call.func, ast.Attribute)
                and call.func.attr == "connect"
                and isinstance(call.func.value, ast.Name)
                and call.func.value.id in engines
            ):
                yield Hit(call, f"`{name}()` connects while the module is imported")


class ClientPerCall(Rule):
    """SS302: a pooled client or connection built inside a handler."""

    info = RuleInfo(
        rule_id="SS302",
        name="client-per-call",
        title="Client or connection rebuilt on every call",
        severity=Severity.WARNING,
        why=(
            "A handler that builds its client each time pays connection and TLS "
            "set-up on every request, and when the platform scales to hundreds "
            "of instances each one opens fresh connections: the database runs "
            "out of them."
        ),
        fix=(
            "Build the client once per instance, lazily, and reuse it across "
            "invocations (a cached getter); keep application state in "
            "`app.state(...)` so the store pools the database connections."
        ),
        example=(
            "@functools.cache\n"
            "def s3():\n"
            '    return boto3.client("s3")\n\n'
            "def handler(event, context):\n"
            '    s3().put_object(Bucket="b", Key=event["key"], Body=b"")'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for func in ctx.functions():
            if handler_kind(ctx, func) is None or _caches_result(ctx, func):
                continue
            for call in ctx.calls_in(func):
                name = ctx.call_name(call) or ""
                if name in _PER_CALL_OK:
                    continue
                if name in POOLED_CLIENTS or name in CONNECTION_OPENERS:
                    yield Hit(
                        call,
                        f"`{name}(...)` is built anew on every call of `{func.name}()`",
                    )


def _caches_result(ctx: ModuleContext, func: FunctionNode) -> bool:
    """True when the function keeps what it builds: memoized, or it stores
    into a global or an attribute."""
    if any(
        name.rsplit(".", 1)[-1] in ("cache", "lru_cache")
        for name in decorator_names(ctx, func)
    ):
        return True
    return any(isinstance(node, ast.Global) for node in ast.walk(func))
