"""A real redis-server (Debian's), started on a unix socket in a test's directory, stopped after."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs


@attrs.define
class RedisServer:
    socket: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop this server, by its process (never by name: other Redis servers are not ours)."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:  # hung, or left SIGSTOPped by a test: SIGKILL ends either
                self.proc.kill()
                self.proc.wait(10)


def redis_ping(sock: Path) -> bool:
    import socket as s

    try:
        with s.socket(s.AF_UNIX) as c:
            c.settimeout(1)
            c.connect(str(sock))
            c.sendall(b"PING\r\n")
            return c.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def redis_get(sock: Path, key: str) -> bytes | None:
    """``GET key`` over the server's socket (a RESP bulk string, or None)."""
    import socket as s

    k = key.encode()
    with s.socket(s.AF_UNIX) as c:
        c.settimeout(1)
        c.connect(str(sock))
        c.sendall(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k))
        reply = b""
        while not reply.endswith(b"\r\n") or (reply.startswith(b"$") and reply.count(b"\r\n") < 2
                                                and not reply.startswith(b"$-1")):
            chunk = c.recv(4096)
            if not chunk:
                break
            reply += chunk
    if reply.startswith(b"$-1"):
        return None
    return reply.split(b"\r\n")[1]


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is missing: `make test` installs it (scripts/install-test-deps)"
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "redis.sock"
    proc = subprocess.Popen([binary, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
                             "--save", "", "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(sock, proc)
    try:
        deadline = time.monotonic() + 10
        while not redis_ping(sock):
            assert proc.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
        yield server
    finally:
        server.stop()
