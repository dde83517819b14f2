"""The spend ledger: the database every spend query will read (issue #29).

The JSONL spend log stays the audit log and is the ledger's outbox: a :class:`~.shipper.Shipper`
per process tails it and writes its records to the ledger (:mod:`.db`: SQLite embedded by
default, Postgres for several servers) in idempotent batches; :mod:`.query` reads it.

- :mod:`.url`: ``[ledger] url`` → a :class:`~.url.LedgerTarget`, and keeping passwords out of logs;
- :mod:`.schema`: the versioned migrations;
- :mod:`.db`: connections in a bounded pool, used from worker threads (never on the event loop);
- :mod:`.rows`: a JSONL line as a row (sans-IO);
- :mod:`.tail`: following the log through rotations;
- :mod:`.shipper`: the shipper, its cursor, lag and retries;
- :mod:`.query`: sans-IO query builders and their executors.
"""

from __future__ import annotations

from ..config import Config
from .db import Ledger, LedgerError
from .shipper import Shipper
from .url import LedgerTarget, ledger_target

__all__ = ["Ledger", "LedgerError", "LedgerTarget", "Shipper", "ledger_target", "open_ledger", "shipper_for"]


def open_ledger(config: Config) -> Ledger:
    """The ledger ``config`` names (nothing is connected until the first call)."""
    return Ledger(ledger_target(config), max_connections=config.ledger.max_connections,
                  timeout_s=config.ledger.timeout_s)


def shipper_for(config: Config, ledger: Ledger | None = None) -> Shipper:
    return Shipper(ledger or open_ledger(config), config.resolve_path(config.spend_log.path))
