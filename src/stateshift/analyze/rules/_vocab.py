"""Names the rules recognise: libraries, clients, verbs.

Kept in one place so that the rules agree on what a "client", an "I/O
call" or a "payment" is, and so that widening a list is a one-line change.
"""

from __future__ import annotations

import ast
import re

from stateshift.analyze._context import ModuleContext

# Calls that open a network or database connection when called.
CONNECTION_OPENERS = frozenset(
    {
        "psycopg.connect",
        "psycopg.Connection.connect",
        "psycopg2.connect",
        "pymysql.connect",
        "MySQLdb.connect",
        "mysql.connector.connect",
        "sqlite3.connect",
        "cx_Oracle.connect",
        "oracledb.connect",
        "pyodbc.connect",
        "smtplib.SMTP",
        "smtplib.SMTP_SSL",
        "ftplib.FTP",
        "socket.create_connection",
        "pika.BlockingConnection",
        "kafka.KafkaProducer",
        "kafka.KafkaConsumer",
        "psycopg_pool.ConnectionPool",
        "psycopg2.pool.SimpleConnectionPool",
        "psycopg2.pool.ThreadedConnectionPool",
        "pymemcache.client.base.Client",
    }
)

# Clients that hold a connection pool and are costly to build; build once.
POOLED_CLIENTS = frozenset(
    {
        "requests.Session",
        "httpx.Client",
        "httpx.AsyncClient",
        "aiohttp.ClientSession",
        "urllib3.PoolManager",
        "boto3.client",
        "boto3.resource",
        "boto3.session.Session",
        "boto3.Session",
        "redis.Redis",
        "redis.StrictRedis",
        "redis.from_url",
        "redis.Redis.from_url",
        "pymongo.MongoClient",
        "motor.motor_asyncio.AsyncIOMotorClient",
        "sqlalchemy.create_engine",
        "elasticsearch.Elasticsearch",
        "psycopg_pool.ConnectionPool",
        "google.cloud.storage.Client",
        "google.cloud.firestore.Client",
        "azure.storage.blob.BlobServiceClient",
        "stripe.StripeClient",
    }
)

# Library calls that read from a network service or a database.
IO_CALLS = frozenset(
    f"{lib}.{verb}"
    for lib in ("requests", "httpx")
    for verb in ("get", "post", "put", "patch", "delete", "head", "request")
) | frozenset({"urllib.request.urlopen", "urlopen"})

# Method names that read from a database or data service, whatever the object.
IO_METHODS = frozenset(
    {
        "execute",
        "executemany",
        "fetchone",
        "fetchall",
        "fetchmany",
        "query",
        "scan",
        "get_item",
        "batch_get_item",
        "find",
        "find_one",
        "aggregate",
        "hgetall",
        "urlopen",
    }
)

# Calls whose result depends on the wall clock.
CLOCK_CALLS = frozenset(
    {
        "time.time",
        "time.monotonic",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.date.today",
        "datetime.now",
        "datetime.utcnow",
        "date.today",
    }
)

_PAYMENT_WORDS = (
    "payment",
    "payments",
    "pay",
    "billing",
    "stripe",
    "braintree",
    "adyen",
    "paypal",
    "square",
    "psp",
    "gateway",
    "checkout",
    "card",
    "cards",
    "wallet",
    "ledger",
    "bank",
)
_MAIL_WORDS = (
    "mail",
    "email",
    "emails",
    "mailer",
    "smtp",
    "sendgrid",
    "ses",
    "postmark",
    "mailgun",
    "mandrill",
    "resend",
    "sparkpost",
)


def name_words(dotted: str) -> set[str]:
    """Lower-case words of a dotted or snake/camel-case name."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", dotted)
    return {w for w in re.split(r"[._\W]+", spaced.lower()) if w}


def is_payment_receiver(receiver: str) -> bool:
    """True when a dotted receiver name looks like a payments client."""
    return bool(name_words(receiver) & set(_PAYMENT_WORDS))


def is_mail_receiver(receiver: str) -> bool:
    """True when a dotted receiver name looks like a mail client."""
    return bool(name_words(receiver) & set(_MAIL_WORDS))


def split_call(ctx: ModuleContext, call: ast.Call) -> tuple[str, str] | None:
    """``(receiver, method)`` of a method call, names resolved.

    ``payments.charge(...)`` gives ``("payments", "charge")``; a plain
    function call gives ``("", name)``; calls on computed receivers whose
    root is a call or subscript keep only what can be named.
    """
    func = call.func
    if isinstance(func, ast.Name):
        return ("", ctx.imports.get(func.id, func.id))
    if not isinstance(func, ast.Attribute):
        return None
    receiver = ctx.qualname(func.value)
    if receiver is None:
        receiver = _describe(func.value)
    return (receiver, func.attr)


def _describe(node: ast.expr) -> str:
    """A rough dotted name for a computed receiver (``a().b`` -> ``a.b``)."""
    parts: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        elif isinstance(node, ast.Subscript):
            node = node.value
        elif isinstance(node, ast.Name):
            parts.append(node.id)
            break
        else:
            break
    return ".".join(reversed(parts))


def mentions_idempotency(node: ast.AST) -> bool:
    """True when names, keywords or strings under ``node`` talk about
    idempotency or de-duplication."""
    for child in ast.walk(node):
        text: str | None = None
        if isinstance(child, ast.Name):
            text = child.id
        elif isinstance(child, ast.Attribute):
            text = child.attr
        elif isinstance(child, ast.keyword):
            text = child.arg
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            text = child.value
        elif isinstance(child, ast.arg):
            text = child.arg
        if text is not None and _IDEMPOTENCY_TEXT.search(text):
            return True
    return False


_IDEMPOTENCY_TEXT = re.compile(r"idempot|dedup|de_dup", re.IGNORECASE)


def call_has_idempotency_key(call: ast.Call) -> bool:
    """True when a call passes something named as an idempotency key, or
    passes ``**kwargs`` that might carry one."""
    for keyword in call.keywords:
        if keyword.arg is None:
            return True
    return mentions_idempotency(call)


def decorator_names(ctx: ModuleContext, func: ast.AST) -> list[str]:
    """Resolved dotted names of a function's decorators (calls unwrapped)."""
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return []
    names: list[str] = []
    for decorator in func.decorator_list:
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        names.append(ctx.qualname(target) or _describe(target))
    return names


def has_idempotent_decorator(ctx: ModuleContext, func: ast.AST) -> bool:
    """True for ``@app.idempotent(...)``, ``@idempotent`` and the like."""
    return any(
        "idempot" in name.rsplit(".", 1)[-1].lower()
        for name in decorator_names(ctx, func)
    )


def is_durable_step(ctx: ModuleContext, func: ast.AST) -> bool:
    """True for functions registered as stateshift workflows or steps."""
    return any(
        name.rsplit(".", 1)[-1] in ("workflow", "step", "entity")
        for name in decorator_names(ctx, func)
    )


def string_args(call: ast.Call) -> list[str]:
    """String constants passed to a call (f-strings contribute their text)."""
    texts: list[str] = []
    for arg in [*call.args, *(k.value for k in call.keywords)]:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            texts.append(arg.value)
        elif isinstance(arg, ast.JoinedStr):
            texts.extend(
                v.value
                for v in arg.values
                if isinstance(v, ast.Constant) and isinstance(v.value, str)
            )
    return texts
