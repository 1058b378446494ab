"""Settings: from arguments, ``STATESHIFT_*`` variables and ``stateshift.toml``.

Precedence, highest first: keyword arguments to :class:`stateshift.App`, the
environment (``STATESHIFT_<NAME>``; the store URL is ``STATESHIFT_STORE``),
``stateshift.toml`` in the working directory, ``[tool.stateshift]`` in its
``pyproject.toml``, and the defaults below. A setting that is unknown or has
a value of the wrong kind fails at once with :class:`ConfigError` naming it.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from stateshift.errors import ConfigError

DEFAULT_STORE = "sqlite:///./stateshift.db"
ENV_PREFIX = "STATESHIFT_"

# Tables inside a stateshift.toml that belong to other features (the analyzer,
# residency policy, regions) rather than to the runtime settings.
SECTIONS = frozenset({"analyze", "residency", "regions", "migrate", "demo"})

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Runtime settings of an :class:`~stateshift.App`."""

    store: str = DEFAULT_STORE
    """Store URL: ``sqlite:///path.db`` or ``postgresql://user@host/db``."""

    schema: str = "stateshift"
    """PostgreSQL schema that holds the tables (created on first use)."""

    table_prefix: str = ""
    """Prefix of every table name, so several apps can share one database."""

    max_value_bytes: int = 262_144
    """Largest encoded value (step result, event payload, state item) accepted."""

    blob_threshold_bytes: int = 65_536
    """State values encoded larger than this go to the blob store."""

    pool_size: int = 1
    """Most PostgreSQL connections one process holds at once."""

    connect_timeout_seconds: float = 10.0
    """How long to wait for a database connection before giving up."""

    busy_timeout_seconds: float = 5.0
    """How long a SQLite writer waits for the lock before failing."""

    auto_migrate: bool = True
    """Apply pending schema migrations on first use (under a lock)."""

    allow_sqlite_on_serverless: bool = False
    """Allow a SQLite store on Lambda, Cloud Run or Azure, where the file is lost."""

    app_version: str = ""
    """Version of the deployed code; workflows resume only on a compatible one."""

    encryption_keys: str = ""
    """``id:base64key,...`` for encryption at rest; the first key is current."""

    lease_seconds: float = 30.0
    """How long a claim on a workflow or message lasts without renewal."""

    worker_id: str = ""
    """Stable id of this worker, so it reclaims its own leases after a restart."""

    max_recoveries: int = 5
    """Takeovers after a worker crash before a workflow is declared dead."""

    api_token: str = ""
    """Bearer token the HTTP API requires for operations that change things."""

    idempotency_in_progress_seconds: float = 300.0
    """Expiry of an in-progress idempotency record when the platform gives none."""

    idempotency_ttl_seconds: float = 3600.0
    """How long a completed idempotency record (and its result) is kept."""

    extra: Mapping[str, Any] = field(default_factory=dict)
    """Feature sections of ``stateshift.toml`` (``analyze``, ``residency``...)."""

    def __post_init__(self) -> None:
        _check_identifier("schema", self.schema, allow_empty=False)
        _check_identifier("table_prefix", self.table_prefix, allow_empty=True)
        if not self.store.startswith(("sqlite:", "postgresql:", "postgres:")):
            raise ConfigError(
                "store",
                f"{self.store!r} is not a store URL; use sqlite:///path.db or "
                "postgresql://user@host:5432/dbname",
            )
        if self.max_recoveries < 0:
            raise ConfigError("max_recoveries", "must be zero or a positive integer")
        for name in ("max_value_bytes", "blob_threshold_bytes", "pool_size"):
            if getattr(self, name) < 1:
                raise ConfigError(name, "must be a positive integer")
        for name in (
            "connect_timeout_seconds",
            "busy_timeout_seconds",
            "lease_seconds",
            "idempotency_in_progress_seconds",
            "idempotency_ttl_seconds",
        ):
            if not getattr(self, name) > 0:
                raise ConfigError(name, "must be a positive number of seconds")

    def replace(self, **changes: Any) -> Settings:
        """Return a copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


def _check_identifier(name: str, value: str, *, allow_empty: bool) -> None:
    if allow_empty and value == "":
        return
    if not _IDENTIFIER.match(value):
        raise ConfigError(
            name,
            f"{value!r} must be lower-case letters, digits and '_', starting with "
            "a letter or '_', at most 41 characters",
        )


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    directory: str | Path | None = None,
) -> Settings:
    """Build :class:`Settings` from every source, highest precedence first."""
    environ = os.environ if environ is None else environ
    directory = Path.cwd() if directory is None else Path(directory)
    known = {f.name: f for f in fields(Settings) if f.name != "extra"}

    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for source, table in _file_tables(directory):
        for key, value in table.items():
            name = key.replace("-", "_")
            if isinstance(value, dict) and name in SECTIONS:
                extra.setdefault(name, value)
            elif name in known:
                values.setdefault(name, _coerce(name, value, known[name].type, source))
            else:
                raise ConfigError(key, f"unknown setting in {source}")

    for name, spec in known.items():
        raw = environ.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            values[name] = _coerce(name, raw, spec.type, ENV_PREFIX + name.upper())

    for name, value in (overrides or {}).items():
        if name == "extra":
            extra.update(value)
            continue
        if name not in known:
            raise ConfigError(name, "unknown setting; see stateshift.config.Settings")
        if value is not None:
            values[name] = _coerce(name, value, known[name].type, "arguments")

    return Settings(**values, extra=extra)


def _file_tables(directory: Path) -> list[tuple[str, dict[str, Any]]]:
    tables: list[tuple[str, dict[str, Any]]] = []
    own = directory / "stateshift.toml"
    if own.is_file():
        tables.append((str(own), _read_toml(own)))
    pyproject = directory / "pyproject.toml"
    if pyproject.is_file():
        tool = _read_toml(pyproject).get("tool", {}).get("stateshift")
        if isinstance(tool, dict):
            tables.append((f"{pyproject} [tool.stateshift]", tool))
    return tables


def _read_toml(path: Path) -> dict[str, Any]:
    import tomllib  # only when there is a file to read: saves it at cold start

    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), f"not valid TOML: {exc}") from None


def _coerce(name: str, value: Any, kind: Any, source: str) -> Any:
    kind = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind == "bool":
            return _to_bool(value)
        if kind == "int":
            if isinstance(value, bool) or isinstance(value, float):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
    except (TypeError, ValueError):
        raise ConfigError(
            name, f"{value!r} from {source} is not a valid {kind}"
        ) from None
    return value


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError(value)
