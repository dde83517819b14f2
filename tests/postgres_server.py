"""A real PostgreSQL server (Debian's), started by ``initdb`` and ``pg_ctl`` in a temporary
directory on a free loopback port, as an unprivileged user, and stopped by its process id."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

#: The superuser initdb creates (trust authentication on loopback only).
PG_USER = "rtproxy"


def pg_bin_dir() -> Path | None:
    """Debian's newest /usr/lib/postgresql/*/bin holding initdb, or None (not installed)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user() -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as nobody then (as ourselves otherwise)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"]


@attrs.define
class PostgresServer:
    directory: Path
    port: int
    pid: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{PG_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop this server by its process id (SIGINT: PostgreSQL's fast shutdown), never by name."""
        try:
            os.kill(self.pid, signal.SIGINT)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    bindir = pg_bin_dir()
    assert bindir is not None, "PostgreSQL is missing: `make test` installs it (scripts/install-test-deps)"
    directory = Path(tempfile.mkdtemp(prefix="rtproxy-pg-"))
    data = directory / "data"
    data.mkdir()
    if os.geteuid() == 0:
        for p in (directory, data):
            shutil.chown(p, "nobody", "nogroup")
    run = _as_user()
    subprocess.run([*run, str(bindir / "initdb"), "-D", str(data), "-U", PG_USER, "--auth=trust", "-E", "UTF8",
                    "--no-sync", "--no-instructions"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, cwd=directory)
    port = _free_port()
    opts = (f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=100")
    subprocess.run([*run, str(bindir / "pg_ctl"), "start", "-w", "-t", "30", "-D", str(data), "-o", opts,
                    "-l", str(directory / "postgres.log")], check=True, stdout=subprocess.DEVNULL, cwd=directory)
    pid = int((data / "postmaster.pid").read_text().split("\n")[0])
    server = PostgresServer(directory, port, pid)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
