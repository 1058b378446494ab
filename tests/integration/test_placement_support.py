"""Shared set-up of the placement tests: regions of real, separate databases.

Each region's shards are separate SQLite files, or separate PostgreSQL
databases created for the test (``res_<random>_<region>_<shard>``) and
dropped afterwards. No test lives in this module.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from conftest import POSTGRES_URL, require_postgres
from stateshift.config import load_settings
from stateshift.placement import Placement, ResidencyPolicy

POLICY = ResidencyPolicy(
    {
        "EU": {"store": ["eu"], "process": ["eu"]},
        "US": {"store": ["us"], "process": ["us", "eu"]},
        "GLOBAL": {"store": ["*"], "process": ["*"]},
    },
    default={"store": ["*"], "process": ["*"]},
    tenants={"acme": "EU", "globex": "US"},
)


def _database_url(name: str) -> str:
    parts = urlsplit(POSTGRES_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


@contextmanager
def shard_urls(
    backend: str, tmp_path: Path, layout: dict[str, int]
) -> Iterator[dict[str, list[str]]]:
    """Region to shard URLs, ``layout[region]`` shards each, fresh and empty."""
    if backend == "sqlite":
        yield {
            region: [
                f"sqlite:///{tmp_path / f'{region}-{i}-{uuid.uuid4().hex[:6]}.db'}"
                for i in range(count)
            ]
            for region, count in layout.items()
        }
        return
    require_postgres()
    import psycopg

    prefix = f"res_{uuid.uuid4().hex[:8]}"
    names = {
        region: [f"{prefix}_{region}_{i}" for i in range(count)]
        for region, count in layout.items()
    }
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        for databases in names.values():
            for name in databases:
                connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield {
            region: [_database_url(name) for name in databases]
            for region, databases in names.items()
        }
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            for databases in names.values():
                for name in databases:
                    connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def extra_shard_url(backend: str, tmp_path: Path, urls: dict[str, list[str]]) -> str:
    """One more empty shard; dropped with the others when ``urls`` is PostgreSQL."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'extra-{uuid.uuid4().hex[:6]}.db'}"
    import psycopg

    first = urlsplit(next(iter(urls.values()))[0]).path.strip("/")
    name = f"{first}_x"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    return _database_url(name)


def drop_extra(backend: str, url: str) -> None:
    """Drop a database made by :func:`extra_shard_url`."""
    if backend == "sqlite":
        return
    import psycopg

    name = urlsplit(url).path.strip("/")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def placement(
    urls: dict[str, list[str]], region: str, policy: ResidencyPolicy = POLICY
) -> Placement:
    """A placement over ``urls`` running in ``region``."""
    settings = load_settings({"store": next(iter(urls.values()))[0]})
    return Placement(settings, regions=urls, region=region, policy=policy)


def count_rows(placement: Placement, table: str) -> int:
    """Rows of ``table`` over every shard of every region."""
    total = 0
    for _, _, store in placement.all_stores():
        with store.read() as tx:
            row = tx.fetchone(f"SELECT COUNT(*) FROM {{p}}{table}")
            total += int(row[0]) if row else 0
    return total
