"""SS1xx, externalized state: values kept in process memory between requests.

A serverless platform runs many instances at once and throws them away
at will; anything kept in a module global is per instance and temporary.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from stateshift.analyze._context import FunctionNode, ModuleContext
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule
from stateshift.analyze.rules._mutation import Mutation, module_mutations
from stateshift.analyze.rules._vocab import (
    CLOCK_CALLS,
    IO_CALLS,
    IO_METHODS,
    decorator_names,
    name_words,
)

_CACHE_WORDS = {"cache", "cached", "memo", "memos", "memoized", "lru"}
_SESSION_WORDS = {"session", "sessions"}
_WAIT_WORDS = {"approval", "approvals", "pending", "waiting", "waiters"}
_DATA_SOURCES = {
    "db",
    "database",
    "conn",
    "connection",
    "cursor",
    "cur",
    "session",
    "table",
    "collection",
    "client",
    "engine",
    "api",
    "repo",
    "redis",
    "mongo",
    "dynamodb",
    "es",
}
_READ_VERB = re.compile(r"^(find|get|fetch|load|query|select|read|lookup|search|list)_")
_CONFIG_WORDS = {"config", "settings", "secret", "secrets", "credentials", "schema"}


def _classify(mutation: Mutation) -> str:
    words = name_words(mutation.name)
    if words & _CACHE_WORDS or mutation.memo:
        return "cache"
    if words & _SESSION_WORDS:
        return "session"
    return "state"


def does_io(ctx: ModuleContext, func: ast.AST) -> bool:
    """True when a function itself reads a database, an HTTP API or the clock."""
    for call in ctx.calls_in(func):
        name = ctx.call_name(call) or ""
        if name in IO_CALLS or name in CLOCK_CALLS:
            return True
        if isinstance(call.func, ast.Attribute) and call.func.attr in IO_METHODS:
            receiver = ctx.qualname(call.func.value) or ""
            if name_words(receiver) & _DATA_SOURCES:
                return True
        if isinstance(call.func, ast.Attribute) and _READ_VERB.match(call.func.attr):
            receiver = ctx.qualname(call.func.value) or ""
            if name_words(receiver) & _DATA_SOURCES:
                return True
    return False


class ModuleStateMutated(Rule):
    """SS101: a module-level container or global changed by a function."""

    info = RuleInfo(
        rule_id="SS101",
        name="module-state-mutated",
        title="Module-level state changed inside a function",
        severity=Severity.ERROR,
        why=(
            "Each serverless instance has its own copy of module globals, and "
            "the platform discards instances at any time. A cart, counter or "
            "pending approval kept there is invisible to the other instances "
            "and lost on the next cold start."
        ),
        fix=(
            "Keep the value in a versioned key-value namespace, `app.state(...)`, "
            "or an `@app.entity`; a value a workflow waits for becomes "
            "`ss.wait_for_event`, a work list becomes `app.queue(...)`."
        ),
        example=(
            'carts = app.state("carts")\n'
            "item = carts.get(user_id)\n"
            'items = item.value["items"] if item else []\n'
            'carts.put(user_id, {"items": [*items, sku]},\n'
            "          expected_version=item.version if item else None)"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for mutation in module_mutations(ctx):
            if _classify(mutation) != "state":
                continue
            yield Hit(mutation.node, _state_message(mutation))


def _state_message(mutation: Mutation) -> str:
    name, func = mutation.name, mutation.function.name
    words = name_words(name)
    if words & _WAIT_WORDS:
        hint = "wait for it in a workflow with `ss.wait_for_event(...)`"
    elif mutation.kind in ("queue", "deque"):
        hint = "put the work on a durable `app.queue(...)`"
    elif mutation.kind == "value":
        hint = "keep it in an `@app.entity` or `app.state(...)`"
    else:
        hint = f'keep it in `app.state("{name.lower().strip("_")}")`'
    what = "global" if mutation.kind == "value" else f"module-level {mutation.kind}"
    return f"{what} `{name}` is changed in `{func}()`; {hint}"


class InProcessCache(Rule):
    """SS102: memoization or a cache dict holding data that changes."""

    info = RuleInfo(
        rule_id="SS102",
        name="in-process-cache",
        title="In-process cache of data that changes",
        severity=Severity.WARNING,
        why=(
            "A cache in process memory is per instance: after a write, other "
            "instances keep serving the old value until they are recycled, and "
            "each cold start begins empty. `lru_cache` never expires at all."
        ),
        fix=(
            "Read the value from `app.state(...)` (versioned, shared by every "
            "instance; the store can add a Redis read-through cache), or cache "
            "only values that never change."
        ),
        example=(
            'products = app.state("products")\n\n'
            "def get_product(sku: str) -> dict:\n"
            "    item = products.get(sku)\n"
            "    return item.value if item else load_and_store(sku)"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for func in ctx.functions():
            decorator = _memoizing_decorator(ctx, func)
            if decorator is None or name_words(func.name) & _CONFIG_WORDS:
                continue
            if does_io(ctx, func):
                yield Hit(
                    func,
                    f"`@{decorator}` on `{func.name}()` keeps data it reads from "
                    "a database, an API or the clock in this instance only",
                )
        for mutation in module_mutations(ctx):
            if _classify(mutation) != "cache":
                continue
            if does_io(ctx, mutation.function):
                yield Hit(
                    mutation.node,
                    f"`{mutation.name}` caches data read in "
                    f"`{mutation.function.name}()` in this instance only",
                )


_MEMOIZERS = {
    "functools.lru_cache",
    "functools.cache",
    "lru_cache",
    "cache",
    "cachetools.cached",
    "cachetools.func.lru_cache",
    "cachetools.func.ttl_cache",
}


def _memoizing_decorator(ctx: ModuleContext, func: FunctionNode) -> str | None:
    for name in decorator_names(ctx, func):
        if name in _MEMOIZERS:
            return name.rsplit(".", 1)[-1]
    return None


class InMemorySession(Rule):
    """SS103: web sessions kept in process memory or on local disk."""

    info = RuleInfo(
        rule_id="SS103",
        name="in-memory-session",
        title="Web sessions kept in memory or on local disk",
        severity=Severity.ERROR,
        why=(
            "The next request of the same user may land on another instance, "
            "which has no such session: users are logged out at random and "
            "lose what the session held."
        ),
        fix=(
            "Keep sessions in the store with stateshift's session middleware: "
            "the cookie carries only a signed id, the contents live in "
            '`app.state("sessions")` (Flask: `StateSessionInterface`).'
        ),
        example=(
            "from stateshift.state.sessions import (\n"
            "    SessionStore, WSGISessionMiddleware)\n\n"
            'sessions = SessionStore(app.state("sessions"), secret=SECRET, ttl=3600)\n'
            "flask_app.wsgi_app = WSGISessionMiddleware(flask_app.wsgi_app, "
            "store=sessions)\n"
            '# in a view: request.environ["stateshift.session"]["user_id"] = user_id'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for mutation in module_mutations(ctx):
            if _classify(mutation) == "session":
                yield Hit(
                    mutation.node,
                    f"sessions kept in module-level `{mutation.name}`, changed "
                    f"in `{mutation.function.name}()`",
                )
        for node, backend in _local_session_backends(ctx):
            yield Hit(node, f"session backend {backend!r} keeps sessions locally")


_SESSION_KEYS = {"SESSION_TYPE", "session.type"}
_LOCAL_BACKENDS = {"filesystem", "memory", "file"}


def _local_session_backends(ctx: ModuleContext) -> Iterator[tuple[ast.AST, str]]:
    for node in ast.walk(ctx.tree):
        pairs: list[tuple[ast.AST | None, ast.AST]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.Dict):
            pairs = list(zip(node.keys, node.values, strict=True))
        elif isinstance(node, ast.Call):
            pairs = [(k, k.value) for k in node.keywords]
        for key, value in pairs:
            if _is_session_key(key) and _is_local_backend(value):
                assert isinstance(value, ast.Constant)
                yield (value, str(value.value))


def _is_session_key(key: ast.AST | None) -> bool:
    if isinstance(key, ast.Name):
        return key.id in _SESSION_KEYS
    if isinstance(key, ast.keyword):
        return key.arg in _SESSION_KEYS
    if isinstance(key, ast.Subscript):
        key = key.slice
    return isinstance(key, ast.Constant) and key.value in _SESSION_KEYS


def _is_local_backend(value: ast.AST) -> bool:
    return isinstance(value, ast.Constant) and value.value in _LOCAL_BACKENDS
