"""The errors rtproxy raises for users to read.

    RtproxyError
    ├── ConfigError          the configuration file is wrong; the message names file, key and problem
    ├── StartupFailed        the server could not start (a port in use, a file it cannot read)
    └── UpstreamError        the upstream provider could not be reached or refused the session
        ├── UpstreamUnreachable   TCP/TLS connect failed or timed out, or the handshake was garbled
        └── UpstreamRejected      the upstream answered the handshake with an HTTP status

Every message says what to do about it and never carries a secret.
"""

from __future__ import annotations


class RtproxyError(Exception):
    """Base class of the errors rtproxy reports to operators and clients."""


class ConfigError(RtproxyError):
    """The configuration is invalid. ``str(error)`` is ``file: key.path: problem``."""

    def __init__(self, file: str, path: str, problem: str) -> None:
        self.file = file
        self.path = path
        self.problem = problem
        where = f"{file}: {path}" if path else file
        super().__init__(f"{where}: {problem}")


class StartupFailed(RtproxyError):
    """The server could not start for a reason the operator can fix; ``str(error)`` says which."""


class UpstreamError(RtproxyError):
    """The upstream realtime provider did not give us a session."""


class UpstreamUnreachable(UpstreamError):
    """Connecting to the upstream failed (refused, DNS, TLS, timeout, bad handshake)."""


class UpstreamRejected(UpstreamError):
    """The upstream answered the WebSocket handshake with a non-101 HTTP status."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        # Upstream bodies are kept short: they are shown to clients and may echo request details.
        self.body = body[:2048]
        super().__init__(f"upstream refused the session with HTTP {status}")
