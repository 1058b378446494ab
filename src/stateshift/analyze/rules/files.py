"""SS104: writes to the local filesystem outside temporary directories.

Serverless filesystems are read-only except for a small scratch area
(``/tmp`` on Lambda) that belongs to one instance and vanishes with it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from stateshift.analyze._context import ModuleContext, walk_own
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule

_OPEN_FUNCTIONS = {
    "open",
    "io.open",
    "codecs.open",
    "gzip.open",
    "bz2.open",
    "lzma.open",
}
_PATH_WRITERS = {"write_text", "write_bytes", "touch"}
_FRAME_WRITERS = {"to_csv", "to_parquet", "to_excel", "to_pickle", "to_feather"}
_DESTINATION_SECOND = {"shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.move"}
_FILE_DATABASES = {"sqlite3.connect", "shelve.open", "dbm.open"}
_FILE_HANDLERS = {
    "logging.FileHandler",
    "logging.handlers.RotatingFileHandler",
    "logging.handlers.TimedRotatingFileHandler",
    "logging.handlers.WatchedFileHandler",
    "FileHandler",
    "RotatingFileHandler",
    "TimedRotatingFileHandler",
}
_TEMP_PREFIXES = ("/tmp", "/dev/", "/var/tmp", ":memory:", "file::memory:")
_LOCAL_SOURCES = {"os.getcwd", "os.environ.get", "os.getenv", "pathlib.Path.home"}


class LocalFileWrite(Rule):
    """SS104: a file written outside a temporary directory."""

    info = RuleInfo(
        rule_id="SS104",
        name="local-file-write",
        title="Write to the local filesystem outside a temporary directory",
        severity=Severity.ERROR,
        why=(
            "On serverless compute the code directory is read-only and the "
            "scratch directory belongs to one instance: a file written there "
            "is missing on every other instance and gone after a cold start. "
            "A local SQLite file loses its data the same way."
        ),
        fix=(
            "Keep records in `app.state(...)` (large values go to the store's "
            "blob storage), append events to the outbox with `app.publish`, "
            "log to standard output, and use `tempfile` for true scratch files."
        ),
        example=(
            'orders_log = app.state("order-log")\n'
            'orders_log.put(order_id, {"status": "paid", "cents": cents})\n'
            '# or: app.publish("orders", {"order_id": order_id, "status": "paid"})'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call):
                continue
            found = _written_path(ctx, call)
            if found is None:
                continue
            path_node, what = found
            if _origin(ctx, call, path_node) == "local":
                yield Hit(call, f"{what} writes to a local path")


def _written_path(ctx: ModuleContext, call: ast.Call) -> tuple[ast.expr, str] | None:
    """The path argument of a call that writes a file, and what it is."""
    name = ctx.call_name(call) or ""
    func = call.func
    if name in _OPEN_FUNCTIONS:
        mode = _argument(call, 1, "mode")
        path = _argument(call, 0, "file")
        if path is not None and _is_write_mode(mode):
            return (path, f"`{name}(..., {_mode_text(mode)})`")
        return None
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "open"
        and name not in (_FILE_DATABASES)
    ):
        mode = _argument(call, 0, "mode")
        if _is_write_mode(mode) and _looks_like_path(ctx, func.value):
            return (func.value, f"`.open({_mode_text(mode)})`")
        return None
    if isinstance(func, ast.Attribute) and func.attr in _PATH_WRITERS:
        if _looks_like_path(ctx, func.value):
            return (func.value, f"`.{func.attr}()`")
        return None
    if isinstance(func, ast.Attribute) and func.attr in _FRAME_WRITERS:
        target = _argument(call, 0, "path_or_buf")
        return (target, f"`.{func.attr}()`") if target is not None else None
    if name in _DESTINATION_SECOND:
        target = _argument(call, 1, "dst")
        return (target, f"`{name}()`") if target is not None else None
    if name in _FILE_DATABASES:
        target = _argument(call, 0, "database")
        return (target, f"`{name}()` (a database file)") if target else None
    if name in _FILE_HANDLERS or name.endswith(tuple(_FILE_HANDLERS)):
        target = _argument(call, 0, "filename")
        return (target, f"`{name.rsplit('.', 1)[-1]}`") if target else None
    if name == "logging.basicConfig":
        target = _argument(call, 99, "filename")
        return (target, "`logging.basicConfig(filename=...)`") if target else None
    return None


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    for kw in call.keywords:
        if kw.arg == keyword:
            return kw.value
    if index < len(call.args) and not isinstance(call.args[index], ast.Starred):
        return call.args[index]
    return None


def _is_write_mode(mode: ast.expr | None) -> bool:
    return (
        isinstance(mode, ast.Constant)
        and isinstance(mode.value, str)
        and any(flag in mode.value for flag in "wax+")
    )


def _mode_text(mode: ast.expr | None) -> str:
    assert isinstance(mode, ast.Constant)
    return repr(mode.value)


def _looks_like_path(ctx: ModuleContext, node: ast.expr) -> bool:
    """True for ``Path(...)`` expressions and names assigned from them."""
    for child in ast.walk(node):
        if isinstance(child, ast.Call) and (ctx.call_name(child) or "") in (
            "pathlib.Path",
            "Path",
            "pathlib.PurePath",
        ):
            return True
        if isinstance(child, ast.BinOp) and isinstance(child.op, ast.Div):
            return True
    return False


def _origin(ctx: ModuleContext, call: ast.Call, path: ast.expr) -> str:
    """``temp``, ``local`` (a path rooted in constants or settings) or
    ``unknown`` (rooted in a parameter or a computed value: the caller's
    choice, so not reported)."""
    func = ctx.enclosing_function(call)
    assignments = _local_assignments(func) if func is not None else {}
    params = set(ctx.local_names(func)) - set(assignments) if func else set()

    # Temporary anywhere wins: ``os.path.join(tmp_dir, name)`` is scratch.
    pending: list[ast.AST] = [path]
    visited: set[str] = set()
    while pending:
        node = pending.pop()
        for child in ast.walk(node):
            if _is_temp(ctx, child):
                return "temp"
            if isinstance(child, ast.Name) and child.id not in visited:
                visited.add(child.id)
                pending.extend(assignments.get(child.id, []))
    return _head_origin(ctx, path, assignments, params, depth=0)


def _head_origin(
    ctx: ModuleContext,
    node: ast.AST,
    assignments: dict[str, list[ast.AST]],
    params: set[str],
    depth: int,
) -> str:
    """Where the leading component of a path expression comes from."""
    if depth > 6:
        return "unknown"
    head = _head(ctx, node)
    if isinstance(head, ast.Constant):
        return "local" if isinstance(head.value, str) else "unknown"
    if isinstance(head, ast.Name):
        if head.id == "__file__":
            return "local"
        if head.id in params:
            return "unknown"
        if head.id in assignments:
            verdicts = {
                _head_origin(ctx, value, assignments, params, depth + 1)
                for value in assignments[head.id]
            }
            return "local" if "local" in verdicts else "unknown"
        if head.id in ctx.module_values:
            return "local"
        return "unknown"
    if isinstance(head, ast.Call) and (ctx.call_name(head) or "") in _LOCAL_SOURCES:
        return "local"
    if isinstance(head, ast.Subscript) and ctx.qualname(head.value) == "os.environ":
        return "local"
    return "unknown"


def _head(ctx: ModuleContext, node: ast.AST) -> ast.AST:
    """The leftmost component of ``a / b``, ``join(a, b)``, ``f"{a}/b"``..."""
    while True:
        if isinstance(node, ast.JoinedStr) and node.values:
            first = node.values[0]
            node = first.value if isinstance(first, ast.FormattedValue) else first
        elif isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Div, ast.Add)):
            node = node.left
        elif (
            isinstance(node, ast.Call)
            and node.args
            and (ctx.call_name(node) or "") in _PATH_BUILDERS
        ):
            node = node.args[0]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr in _PATH_METHODS)
        ):
            node = node.func.value
        elif isinstance(node, ast.Attribute) and node.attr in _PATH_ATTRIBUTES:
            node = node.value
        elif isinstance(node, ast.Attribute):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if node.attr.isupper() and isinstance(root, ast.Name):
                if root.id in ctx.imports or root.id in ctx.module_values:
                    # ``settings.ORDER_LOG``: a configured, fixed location.
                    return ast.Constant(value=node.attr)
            node = root
        else:
            return node


_PATH_BUILDERS = {
    "os.path.join",
    "os.path.abspath",
    "os.path.expanduser",
    "os.path.dirname",
    "pathlib.Path",
    "Path",
    "pathlib.PurePath",
    "str",
    "os.fspath",
}
_PATH_METHODS = {"joinpath", "with_suffix", "with_name", "resolve", "absolute"}
_PATH_ATTRIBUTES = {"parent", "parents"}


def _is_temp(ctx: ModuleContext, node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        lowered = node.id.lower()
        return "tmp" in lowered or "temp" in lowered
    if isinstance(node, ast.Attribute):
        return node.attr in ("devnull", "stdout", "stderr")
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.startswith(_TEMP_PREFIXES)
    if isinstance(node, ast.Call):
        name = ctx.call_name(node) or ""
        return name.startswith("tempfile.") or name in (
            "mkdtemp",
            "mkstemp",
            "gettempdir",
        )
    return False


def _local_assignments(func: ast.AST) -> dict[str, list[ast.AST]]:
    """Name -> values assigned to it in ``func`` (``with ... as`` included)."""
    found: dict[str, list[ast.AST]] = {}
    for node in walk_own(func):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, []).append(node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value:
            if isinstance(node.target, ast.Name):
                found.setdefault(node.target.id, []).append(node.value)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if isinstance(item.optional_vars, ast.Name):
                    found.setdefault(item.optional_vars.id, []).append(
                        item.context_expr
                    )
    return found
