"""The ledger's database, reached off the event loop: SQLite (stdlib ``sqlite3``) or Postgres
(psycopg 3's synchronous driver).

**How a call runs.** psycopg 3's async API is asyncio-only, and SQLite has none: every database
call is a plain function of one connection, run in a trio worker thread
(``trio.to_thread.run_sync``) under a :class:`trio.CapacityLimiter` of ``[ledger]
max_connections`` (default :data:`MAX_DB_THREADS`), on a connection taken from a pool of the same
size (opened on first use, kept, dropped after an error). The event loop never waits on the
database: a task awaiting a call sleeps like any trio task, and a cancelled one leaves at once
(the thread finishes the call and gives its connection back). Beyond the bound, calls wait for a
thread; the shipper is the only writer and the query API reads, so the bound is the database's
load from this process, not a queue of requests.

Why threads and not another driver: measured here (``make bench-ledger``, docs/operations.md),
the hop to a worker thread and back costs 0.12–0.25 ms per call on this loaded 2-core machine
(SQLite and Postgres alike), about one Postgres round trip on loopback (``SELECT 1``: 0.2 ms)
and far under the queries it carries (0.3–1 ms for a page, 0.25 s for a month's summary); the
drivers release the GIL while they wait on the database, so the event loop runs meanwhile. An
asyncio driver under trio would need an asyncio loop in a thread of its own anyway (anyio does
not run asyncio libraries on trio), and no pure-trio Postgres driver is maintained.

SQL is written once with ``?`` placeholders; a Postgres connection turns them into ``%s``.
"""

from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import trio

from .schema import MIGRATIONS, PG_MIGRATION_LOCK, VERSION_TABLE, Dialect, Migration
from .url import LedgerTarget

log = logging.getLogger("rtproxy.ledger")

T = TypeVar("T")

#: Database calls running at once per process (worker threads), unless ``[ledger] max_connections`` says.
MAX_DB_THREADS = 4
#: One call's limit (connecting included), unless ``[ledger] timeout_s`` says.
DB_TIMEOUT_S = 10.0


class LedgerError(Exception):
    """A database call failed (the message never holds the URL's password)."""


class LedgerSchemaTooNew(LedgerError):
    """The database was migrated by a newer rtproxy than this one."""


class Conn:
    """One connection, either driver, one thread at a time."""

    def __init__(self, raw: Any, dialect: Dialect) -> None:
        self.raw = raw
        self.dialect = dialect
        self._sql: dict[str, str] = {}

    def _q(self, sql: str) -> str:
        if self.dialect == "sqlite":
            return sql
        q = self._sql.get(sql)
        if q is None:
            q = self._sql[sql] = sql.replace("?", "%s")
        return q

    def execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.raw.execute(self._q(sql), tuple(params))
        if cur.description is None:
            return []
        return list(cur.fetchall())

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run ``sql`` for each row; the number of rows it changed."""
        if self.dialect == "sqlite":
            before = self.raw.total_changes
            self.raw.executemany(sql, rows)
            return int(self.raw.total_changes - before)
        with self.raw.cursor() as cur:
            cur.executemany(self._q(sql), list(rows))
            return max(int(cur.rowcount), 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """A write transaction (SQLite: the write lock taken at BEGIN)."""
        if self.dialect == "sqlite":
            self.raw.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.raw.execute("ROLLBACK")
                raise
            self.raw.execute("COMMIT")
        else:
            with self.raw.transaction():
                yield

    def close(self) -> None:
        try:
            self.raw.close()
        except Exception:  # noqa: BLE001 - closing a broken connection: nothing left to do
            pass


def _connect(target: LedgerTarget, timeout_s: float) -> Conn:
    if target.kind == "sqlite":
        assert target.path is not None
        target.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not target.path.exists():  # records can hold prompts: the file is the operator's alone
            os.close(os.open(target.path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        raw = sqlite3.connect(str(target.path), timeout=timeout_s, isolation_level=None,
                              check_same_thread=False)
        raw.execute("PRAGMA journal_mode=WAL")
        raw.execute("PRAGMA synchronous=NORMAL")
        return Conn(raw, "sqlite")
    import psycopg

    # a server that stops answering mid-call (a network partition) is given up on too: TCP
    # keepalives and tcp_user_timeout bound what statement_timeout (the server's) cannot
    whole_s = max(1, math.ceil(timeout_s))
    pg = psycopg.connect(target.dsn or "", autocommit=True, connect_timeout=whole_s,
                         options=f"-c statement_timeout={int(timeout_s * 1000)}", keepalives=1,
                         keepalives_idle=whole_s, keepalives_interval=max(1, whole_s // 3), keepalives_count=3,
                         tcp_user_timeout=int(timeout_s * 1000))
    return Conn(pg, "postgres")


def _driver_errors(kind: str) -> tuple[type[BaseException], ...]:
    errors: tuple[type[BaseException], ...] = (sqlite3.Error, OSError)
    if kind != "postgres":  # psycopg and libpq (about 20 MiB) only for a Postgres ledger
        return errors
    try:
        import psycopg
    except ImportError:  # the Postgres driver is needed only for a postgresql:// ledger
        return errors
    return (*errors, psycopg.Error)


class Ledger:
    """The ledger database of one process: a bounded pool of connections used from worker threads."""

    def __init__(self, target: LedgerTarget, *, max_connections: int = MAX_DB_THREADS,
                 timeout_s: float = DB_TIMEOUT_S) -> None:
        if target.kind == "postgres":
            try:
                import psycopg  # noqa: F401
            except ImportError:
                raise LedgerError("a postgresql:// ledger needs psycopg: "
                                  "pip install 'psycopg[binary]'") from None
        self.target = target
        self.dialect: Dialect = target.kind
        self.timeout_s = timeout_s
        self.max_connections = max_connections
        self.limiter = trio.CapacityLimiter(max_connections)
        self._idle: list[Conn] = []
        self._lock = threading.Lock()
        self._closed = False
        self._errors = _driver_errors(target.kind)
        #: Calls made (for the bench).
        self.calls = 0

    # -- the pool ------------------------------------------------------------------------------

    def _take(self) -> Conn:
        with self._lock:
            if self._closed:
                raise LedgerError("the ledger is closed")
            if self._idle:
                return self._idle.pop()
        return _connect(self.target, self.timeout_s)

    def _give_back(self, conn: Conn) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_connections:
                self._idle.append(conn)
                return
        conn.close()

    def call(self, fn: Callable[[Conn], T]) -> T:
        """Run ``fn`` on a pooled connection in this (worker or main) thread. Raises LedgerError."""
        self.calls += 1
        try:
            conn = self._take()
        except self._errors as exc:
            raise LedgerError(self.target.scrub(f"cannot connect to the ledger: {exc}")) from None
        try:
            result = fn(conn)
        except self._errors as exc:
            conn.close()  # a connection that failed once is not trusted again
            raise LedgerError(self.target.scrub(f"ledger: {type(exc).__name__}: {exc}".strip())) from None
        except BaseException:
            conn.close()
            raise
        self._give_back(conn)
        return result

    async def run(self, fn: Callable[[Conn], T]) -> T:
        """``fn(conn)`` in a worker thread (bounded by the limiter); the loop goes on meanwhile."""
        return await trio.to_thread.run_sync(self.call, fn, limiter=self.limiter, abandon_on_cancel=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def aclose(self) -> None:
        await trio.to_thread.run_sync(self.close)

    # -- migrations ----------------------------------------------------------------------------

    def migrate_sync(self, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, list[int]]:
        """Apply the migrations not applied yet: (the schema version now, the versions applied)."""
        return self.call(lambda conn: migrate(conn, migrations))

    async def migrate(self, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, list[int]]:
        return await self.run(lambda conn: migrate(conn, migrations))


def schema_version(conn: Conn) -> int:
    conn.execute(VERSION_TABLE[conn.dialect])
    rows = conn.execute("SELECT MAX(version) FROM ledger_schema")
    return int(rows[0][0] or 0)


def migrate(conn: Conn, migrations: Sequence[Migration] = MIGRATIONS) -> tuple[int, list[int]]:
    """Inside one transaction per migration, under the migration lock."""
    applied: list[int] = []
    conn.execute(VERSION_TABLE[conn.dialect])
    newest = max((m.version for m in migrations), default=0)
    for m in sorted(migrations, key=lambda m: m.version):
        with conn.transaction():
            if conn.dialect == "postgres":
                conn.execute("SET LOCAL statement_timeout = 0")  # an index on a large table takes time
                conn.execute("SELECT pg_advisory_xact_lock(?)", (PG_MIGRATION_LOCK,))
            done = {int(r[0]) for r in conn.execute("SELECT version FROM ledger_schema")}
            if m.version in done:
                continue
            for statement in m.statements(conn.dialect):
                conn.execute(statement)
            conn.execute("INSERT INTO ledger_schema (version, name, applied_us) VALUES (?, ?, ?)",
                         (m.version, m.name, int(time.time() * 1e6)))
            applied.append(m.version)
            log.info("ledger: applied migration %d (%s)", m.version, m.name)
    version = schema_version(conn)
    if version > newest:
        raise LedgerSchemaTooNew(f"the ledger's schema is at version {version}, newer than this rtproxy "
                                 f"knows ({newest}): upgrade rtproxy")
    return version, applied
