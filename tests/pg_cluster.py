"""A throwaway PostgreSQL cluster on 127.0.0.1 for the tests: Debian's PostgreSQL 15, temp dir.

initdb refuses to run as root, and the suite runs as root here and in CI: the server then runs as
the `postgres` system user (Debian's package makes it) through runuser, in a temp dir it owns.
The `pg_cluster` fixture starts one cluster for the whole test session and yields
`new_database() -> url`, a fresh empty database per call.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from ollama_fleet.errors import TestbedError, ToolMissingError
from ollama_fleet.testbed.servers import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SERVER_USER = "postgres"
# a test database: nothing needs to survive a crash, so skip every fsync
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
"""


class PgCluster:
    """A running cluster: `url(name)` of its databases, `new_database()`, `restart()`, `stop()`."""

    def __init__(self, *, root: Path, port: int) -> None:
        self.root = root
        self.data = root / "data"
        self.port = port
        self._names = itertools.count(1)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh empty database in this cluster, as a URL."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'CREATE DATABASE "{name}"'.encode())
        return self.url(name)

    def restart(self) -> None:
        """Stop (fast: clients cut off, what is committed written out, as the test cluster
        does not sync) and start again on the same port, its data kept, as when the server
        is restarted under a running gateway."""
        _as_server_user(
            [str(PG_BIN / "pg_ctl"), "restart", "-D", str(self.data), "-m", "fast", "-w"]
            + ["-l", str(self.root / "server.log"), "-t", "60"],
            cwd=self.root,
            log=self.root / "server.log",
        )

    def stop(self) -> None:
        """Stop at once (nothing is kept) and remove the files; a second stop does nothing."""
        if not self.data.is_dir():
            return
        _as_server_user(
            [str(PG_BIN / "pg_ctl"), "stop", "-D", str(self.data), "-m", "immediate", "-w"],
            cwd=self.root,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_cluster() -> PgCluster:
    """initdb + pg_ctl start on a free port; ToolMissingError without PostgreSQL 15."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (PG_BIN / tool).is_file():
            raise ToolMissingError(
                f"PostgreSQL 15 is not installed ({PG_BIN / tool} is missing): run "
                "`make system-deps` or `apt-get install postgresql`"
            )
    root = Path(tempfile.mkdtemp(prefix="ollama-fleet-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SERVER_USER)
        except KeyError:
            shutil.rmtree(root)
            raise ToolMissingError(
                f"no {SERVER_USER!r} user to run PostgreSQL as (root cannot): "
                "`apt-get install postgresql` creates it"
            ) from None
        os.chown(root, user.pw_uid, user.pw_gid)
    cluster = PgCluster(root=root, port=free_port())
    try:
        _as_server_user(
            [str(PG_BIN / "initdb"), "-D", str(cluster.data), "-U", SERVER_USER, "-A", "trust"]
            + ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            cwd=root,
        )
        with (cluster.data / "postgresql.conf").open("a") as conf:
            conf.write(SETTINGS.format(port=cluster.port))
        log = root / "server.log"
        _as_server_user(
            [str(PG_BIN / "pg_ctl"), "start", "-D", str(cluster.data), "-l", str(log)]
            + ["-w", "-t", "60"],
            cwd=root,
            log=log,
        )
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return cluster


@contextmanager
def running_cluster() -> Iterator[PgCluster]:
    """A cluster of one's own (e.g. to stop it under a store), stopped at the end."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Callable[[], str]]:
    """`new_database() -> url`: a fresh database per test, in one cluster per test session."""
    try:
        cluster = start_cluster()
    except ToolMissingError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster.new_database
    finally:
        cluster.stop()


def _as_server_user(argv: list[str], *, cwd: Path, log: Path | None = None) -> None:
    tool = " ".join(Path(arg).name for arg in argv[:2])
    if os.geteuid() == 0:
        argv = ["runuser", "-u", SERVER_USER, "--", *argv]
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        detail = done.stderr.strip() or done.stdout.strip()
        if log is not None and log.is_file():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        raise TestbedError(f"{tool} failed: {detail}")
