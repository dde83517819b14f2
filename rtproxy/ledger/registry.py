"""Keeping a process's keys in step with the ledger's key table.

Every :data:`KEY_POLL_S` each process reads ``registry_version`` (one indexed row: ~0.2 ms on
loopback Postgres, less on SQLite, in a worker thread); when it moved, the keys and teams are read
again and replace the ledger keys of the process's :class:`~rtproxy.auth.keys.KeyStore` as a
whole. So a key created, changed, rotated or revoked on any server is in force on every server
within :data:`KEY_POLL_S` plus one read (measured: ``tests/test_keys_two_servers.py``).

Why polling and not Postgres ``LISTEN/NOTIFY`` or Redis pub/sub: it is the same code on SQLite
(``--workers N`` on one host) and Postgres, it needs no connection held open per process, and
a notification lost while a connection was down cannot leave a server on stale keys: the next
poll sees the version. Four reads a second per process is nothing to a database.

A ledger that cannot be read leaves the keys as last read (a server that restarts during an outage
has its config keys only, until the ledger answers); errors are counted, logged at most every
:data:`ERROR_LOG_INTERVAL_S` and shown on ``/health``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import trio

from ..auth.keys import KeyStore
from .db import Conn, Ledger, LedgerError, migrate
from .keys import KeyRow, TeamRow, live_key, load_registry, registry_version

log = logging.getLogger("rtproxy.ledger")

#: How often each process looks at the ledger's key version.
KEY_POLL_S = 0.25
#: A failing key read is logged at most this often.
ERROR_LOG_INTERVAL_S = 30.0
#: After a failed read, the next is tried after this long (doubling up to the last).
RETRY_MIN_S = 0.5
RETRY_MAX_S = 10.0


class KeyRegistry:
    def __init__(self, ledger: Ledger, keys: KeyStore, *, poll_s: float = KEY_POLL_S) -> None:
        self.ledger = ledger
        self.keys = keys
        self.poll_s = poll_s
        self.version: int | None = None
        self.loads = 0
        self.failures = 0
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self._logged_at = -ERROR_LOG_INTERVAL_S
        #: Called after each load with the rows read (the gateway's metrics).
        self.on_load: Callable[[list[KeyRow], list[TeamRow]], None] | None = None
        self.teams: list[TeamRow] = []
        self._loading = trio.Lock()
        #: Set once the keys were read at least once.
        self.loaded = trio.Event()

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def status(self) -> dict[str, Any]:
        return {"ok": self.healthy, "version": self.version, "ledger_keys": self.keys.live_count, "loads": self.loads,
                "failures": self.failures, "error": self.last_error}

    async def load(self) -> bool:
        """Read the keys if the version moved (or never read): whether they were. One load at a
        time (the poll and an admin change); the rows are read and the lookup tables built in a
        worker thread, and only swapped in here. Raises LedgerError."""
        async with self._loading:
            version = await self.ledger.run(registry_version)
            if version == self.version:
                return False
            keys = self.keys

            def read(conn: Conn) -> tuple[int, list[KeyRow], list[TeamRow], Any]:
                version, rows, teams = load_registry(conn)
                by_name = {t.name: t for t in teams}
                return version, rows, teams, keys.prepare_live([live_key(r, by_name) for r in rows])

            version, rows, teams, prepared = await self.ledger.run(read)
            if self.version is not None and version < self.version:
                return False  # an older read than the one in force
            self.keys.install(prepared, version)
            self.version, self.teams = version, teams
        self.loads += 1
        self.loaded_at = time.monotonic()
        if self.on_load is not None:
            self.on_load(rows, teams)
        return True

    async def prime(self) -> None:
        """At start-up, before the state store is rebuilt (which books old records by the keys'
        periods): migrate and read the keys once, within the ledger's timeout. A failure is
        logged and left to :meth:`run`."""
        try:
            with trio.fail_after(self.ledger.timeout_s):
                await self.ledger.run(migrate)
                await self.load()
            self.loaded.set()
        except (LedgerError, trio.TooSlowError) as exc:
            self._failed(exc if isinstance(exc, LedgerError) else LedgerError("the ledger did not answer in time"))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        backoff = RETRY_MIN_S
        migrated = False
        while True:
            try:
                if not migrated:
                    await self.ledger.run(migrate)
                    migrated = True
                await self.load()
            except LedgerError as exc:
                self._failed(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, RETRY_MAX_S)
                continue
            backoff = RETRY_MIN_S
            if self.last_error is not None:
                log.warning("ledger %s: keys readable again", self.ledger.target.display)
                self.last_error = None
            self.loaded.set()
            await trio.sleep(self.poll_s)

    def _failed(self, exc: LedgerError) -> None:
        self.failures += 1
        self.last_error = str(exc)
        now = time.monotonic()
        if now - self._logged_at >= ERROR_LOG_INTERVAL_S:
            self._logged_at = now
            log.error("ledger %s: cannot read the keys (%s); the keys last read stay in force",
                      self.ledger.target.display, exc)
