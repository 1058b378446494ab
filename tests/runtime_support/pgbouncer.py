"""A real PgBouncer on loopback, in transaction pooling mode, for one test module.

It fronts the machine's PostgreSQL (127.0.0.1:5432, trust auth). PgBouncer
refuses to run as root, so under root it drops to ``nobody`` and its files
live in a world-readable temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from runtime_support.servers import free_port, start_server, stop_server


@dataclass(frozen=True)
class Bouncer:
    port: int
    pool_size: int

    def url(self, database: str = "test", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"


@contextmanager
def pgbouncer(
    *, pool_size: int, max_client_conn: int = 400, users: tuple[str, ...] = ()
) -> Iterator[Bouncer]:
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        message = "pgbouncer is not installed (apt-get install pgbouncer)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    folder = Path(tempfile.mkdtemp(prefix="stateshift-pgbouncer-"))
    folder.chmod(0o755)
    port = free_port()
    (folder / "users.txt").write_text(
        "".join(f'"{user}" ""\n' for user in ("postgres", *users))
    )
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        "* = host=127.0.0.1 port=5432\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = trust\n"
        f"auth_file = {folder / 'users.txt'}\n"
        "admin_users = postgres\n"
        "pool_mode = transaction\n"
        f"default_pool_size = {pool_size}\n"
        f"max_client_conn = {max_client_conn}\n"
        "max_db_connections = 0\n"
        "server_reset_query =\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        "log_connections = 0\n"
        "log_disconnections = 0\n"
    )
    for child in folder.iterdir():
        child.chmod(0o644)
    command = [binary]
    if os.geteuid() == 0:
        command += ["-u", "nobody"]
    command.append(str(folder / "pgbouncer.ini"))
    process = start_server(command, port, env=dict(os.environ), cwd=folder)
    try:
        yield Bouncer(port, pool_size)
    finally:
        stop_server(process)
        shutil.rmtree(folder, ignore_errors=True)
