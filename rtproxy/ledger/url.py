"""Where the ledger lives: ``[ledger] url`` turned into a target, and kept out of logs.

A Postgres URL may carry a password. It is never logged and never put in an error message:
:func:`redact` shows a URL with its password as ``***``, and :func:`scrub` removes the password
(and the whole URL) from a driver's message before it is logged or shown in ``/health``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit, urlunsplit

import attrs

from ..config import Config

#: The embedded ledger's file name, beside the spend log when ``[ledger] url`` is unset.
DEFAULT_SQLITE_NAME = "ledger.sqlite3"


@attrs.frozen
class LedgerTarget:
    kind: Literal["sqlite", "postgres"]
    #: The SQLite file (``kind == "sqlite"``).
    path: Path | None = None
    #: The libpq connection URL (``kind == "postgres"``); never printed.
    dsn: str | None = attrs.field(default=None, repr=False)

    @property
    def display(self) -> str:
        """What logs and ``/health`` may say about where the ledger is."""
        if self.kind == "sqlite":
            return f"sqlite:{self.path}"
        return redact(self.dsn or "")

    def scrub(self, message: str) -> str:
        return scrub(message, self.dsn)


def redact(url: str) -> str:
    """The URL with its password replaced by ``***`` (and nothing else changed)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def scrub(message: str, url: str | None) -> str:
    """A driver's message with the URL and its password taken out."""
    if not url:
        return message
    message = message.replace(url, redact(url))
    try:
        password = urlsplit(url).password
    except ValueError:
        password = None
    for secret in {password, unquote(password) if password else None}:
        if secret and len(secret) >= 3:
            message = message.replace(secret, "***")
    return message


def ledger_target(config: Config) -> LedgerTarget:
    """The ledger ``config`` names (its ``url`` already resolved from ``env:`` and checked): unset,
    the SQLite file beside the spend log (in ``[server] state_dir`` when the log is no regular file)."""
    url = config.ledger.url
    if not url:
        log_path = config.resolve_path(config.spend_log.path)
        if log_path.exists() and not log_path.is_file():  # /dev/full, a pipe: not beside it
            state_dir = config.resolve_path(config.server.state_dir)
            return LedgerTarget("sqlite", path=state_dir / DEFAULT_SQLITE_NAME)
        return LedgerTarget("sqlite", path=log_path.parent / DEFAULT_SQLITE_NAME)
    if url.startswith(("postgresql://", "postgres://")):
        return LedgerTarget("postgres", dsn=url)
    if url.startswith("sqlite:"):
        rest = url[len("sqlite:"):]
        # sqlite:///abs/path (three slashes: an absolute path), sqlite:relative/path
        path = rest.removeprefix("//")
        return LedgerTarget("sqlite", path=config.resolve_path(path))
    return LedgerTarget("sqlite", path=config.resolve_path(url))
