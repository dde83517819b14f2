"""The embedded state store: one SQLite file in WAL mode, exact across one host's processes.

Every admission is one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock is taken at BEGIN,
so two workers admitting at once are serialised by the database, never both let through).

Where a call runs: first on the event loop, on a connection that never waits for a lock (busy
timeout 0). A transaction here takes about 0.05 ms of CPU; handing it to a worker thread costs
several times that in wake-ups and GIL hand-offs (bench/PROFILE.md), on every connect and every
close. Only when another process holds the write lock (SQLITE_BUSY, nothing done yet) does the
same call go to a worker thread, on a second connection that waits up to :data:`BUSY_TIMEOUT_S`.
The event loop never syncs to disk either: its connection does not checkpoint the WAL
(``wal_autocheckpoint=0``, commits under ``synchronous=NORMAL`` do not fsync); every
:data:`CHECKPOINT_EVERY_COMMITS` inline writes, the next call checkpoints it in the worker thread.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import trio

from .store import (
    CHARGE_ID_TTL_S,
    LEGACY_EPOCH,
    RATE_WINDOW_S,
    Charge,
    KeyLimits,
    Refusal,
    StateStoreError,
    StoreLostData,
    check_limits,
)

#: How long a call in the worker thread waits for another process's write transaction before failing.
BUSY_TIMEOUT_S = 5.0
#: Inline write calls between two WAL checkpoints (run in the worker thread, where fsync may block).
CHECKPOINT_EVERY_COMMITS = 256

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, key TEXT NOT NULL, owner TEXT NOT NULL,
                                     expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS sessions_key ON sessions (key, expires);
CREATE TABLE IF NOT EXISTS opens (key TEXT NOT NULL, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS opens_key ON opens (key, at);
CREATE TABLE IF NOT EXISTS spend (key TEXT PRIMARY KEY, usd REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (name TEXT PRIMARY KEY, value TEXT NOT NULL, expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS blob_owners (name TEXT PRIMARY KEY, owner TEXT NOT NULL, bytes INTEGER NOT NULL,
                                        expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS blob_owners_owner ON blob_owners (owner, expires);
CREATE TABLE IF NOT EXISTS contributors (epoch TEXT NOT NULL, contributor TEXT NOT NULL,
                                         PRIMARY KEY (epoch, contributor));
CREATE TABLE IF NOT EXISTS charged (id TEXT PRIMARY KEY, expires REAL NOT NULL);
CREATE INDEX IF NOT EXISTS charged_expires ON charged (expires);
"""


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def _epoch(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM meta WHERE name = 'spend_seeded'").fetchone()
    return str(row[0]) if row else None


def _apply_charges(db: sqlite3.Connection, charges: Sequence[Charge], now: float) -> None:
    """Inside a write transaction: add each charge whose id is not remembered yet."""
    db.execute("DELETE FROM charged WHERE expires <= ?", (now,))
    for c in charges:
        if c.charge_id is not None:
            if db.execute("INSERT OR IGNORE INTO charged VALUES (?, ?)",
                          (c.charge_id, now + CHARGE_ID_TTL_S)).rowcount == 0:
                continue  # applied before: a replay
        db.execute("INSERT INTO spend VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET usd = usd + excluded.usd",
                   (c.key, float(c.cost_usd)))


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    db = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    return db


def _busy(exc: sqlite3.Error) -> bool:
    """The database's write lock is held by another connection: the call did nothing."""
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) == sqlite3.SQLITE_BUSY


class _LockHeld(Exception):
    """The inline connection found the write lock held: run the call in the worker thread."""


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        #: Used by worker threads, one at a time: waits for locks, checkpoints the WAL.
        self._db = _connect(path, BUSY_TIMEOUT_S)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        #: Used on the event loop only: never waits for a lock, never checkpoints.
        self._inline = _connect(path, 0.0)
        self._inline.execute("PRAGMA wal_autocheckpoint=0")
        self._limiter = trio.CapacityLimiter(1)
        self._inline_writes = 0
        self._inline_changes = 0
        #: Calls that found the write lock held and went to the worker thread (for tests, metrics).
        self.deferred = 0

    def _call(self, db: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return fn(db)
        except sqlite3.Error as exc:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # closed, or the rollback failed too: the transaction is void either way
            if db is self._inline and _busy(exc):
                raise _LockHeld from None
            raise StateStoreError(f"state database {self.path.name}: {exc}") from None

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        checkpoint = self._inline_writes >= CHECKPOINT_EVERY_COMMITS
        if not checkpoint:
            try:
                result = self._call(self._inline, fn)
            except _LockHeld:
                self.deferred += 1
            else:
                changes = self._inline.total_changes
                if changes != self._inline_changes:
                    self._inline_changes = changes
                    self._inline_writes += 1
                await trio.lowlevel.checkpoint()  # a call that never waits is still a checkpoint
                return result

        def in_thread() -> T:
            if checkpoint:
                self._inline_writes = 0
                try:
                    self._db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error:
                    pass  # a failed checkpoint loses nothing: the WAL keeps the pages, tried again later
            return self._call(self._db, fn)
        return await trio.to_thread.run_sync(in_thread, limiter=self._limiter)

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float | None = None,
                    lease_s: float) -> Refusal | None:
        def tx(db: sqlite3.Connection) -> Refusal | None:
            at = _now(now)
            db.execute("BEGIN IMMEDIATE")
            if _epoch(db) is None:
                db.execute("COMMIT")
                raise StoreLostData(f"state database {self.path.name} holds no spend totals")
            db.execute("DELETE FROM sessions WHERE expires <= ?", (at,))
            db.execute("DELETE FROM opens WHERE at <= ?", (at - RATE_WINDOW_S,))
            row = db.execute("SELECT usd FROM spend WHERE key = ?", (limits.key,)).fetchone()
            key_open = db.execute("SELECT count(*) FROM sessions WHERE key = ?", (limits.key,)).fetchone()[0]
            total = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
            recent = db.execute("SELECT count(*) FROM opens WHERE key = ?", (limits.key,)).fetchone()[0]
            budget_spent = []
            for account, _, _ in limits.budgets:
                found = db.execute("SELECT usd FROM spend WHERE key = ?", (account,)).fetchone()
                budget_spent.append(found[0] if found else 0.0)
            refusal = check_limits(limits, spent=row[0] if row else 0.0, key_open=key_open, total_open=total,
                                   recent_opens=recent, budget_spent=budget_spent)
            if refusal is None:
                db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                           (session_id, limits.key, owner, at + lease_s))
                if limits.max_sessions_per_minute is not None:
                    db.execute("INSERT INTO opens VALUES (?, ?)", (limits.key, at))
            db.execute("COMMIT")
            return refusal
        return await self._run(tx)

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float | None = None, lease_s: float
                    ) -> list[str]:
        ids = [sid for sid, _ in session_ids]
        if not ids:
            return []

        def tx(db: sqlite3.Connection) -> list[str]:
            expires = _now(now) + lease_s
            db.execute("BEGIN IMMEDIATE")
            lost = [sid for sid in ids
                    if db.execute("UPDATE sessions SET expires = ? WHERE id = ?", (expires, sid)).rowcount == 0]
            db.execute("COMMIT")
            return lost
        return await self._run(tx)

    async def release(self, session_id: str, key: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)))

    async def charge_batch(self, charges: Sequence[Charge]) -> dict[str, float]:
        keys = sorted({c.key for c in charges})

        def tx(db: sqlite3.Connection) -> dict[str, float]:
            db.execute("BEGIN IMMEDIATE")
            if _epoch(db) is None:
                db.execute("COMMIT")
                raise StoreLostData(f"state database {self.path.name} holds no spend totals")
            _apply_charges(db, charges, time.time())
            totals = {k: float(db.execute("SELECT usd FROM spend WHERE key = ?", (k,)).fetchone()[0]) for k in keys}
            db.execute("COMMIT")
            return totals
        return await self._run(tx)

    async def charge(self, key: str, cost_usd: float, charge_id: str | None = None) -> float:
        return (await self.charge_batch([Charge(key, cost_usd, charge_id)]))[key]

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        wanted = list(keys)

        def read(db: sqlite3.Connection) -> dict[str, float]:
            out = dict.fromkeys(wanted, 0.0)
            for key, usd in db.execute("SELECT key, usd FROM spend"):
                if key in out:
                    out[key] = float(usd)
            return out
        return await self._run(read)

    async def open_sessions(self, key: str, *, now: float | None = None) -> int:
        return await self._run(lambda db: int(db.execute(
            "SELECT count(*) FROM sessions WHERE key = ? AND expires > ?", (key, _now(now))).fetchone()[0]))

    async def epoch(self) -> str | None:
        return await self._run(_epoch)

    async def rebuild(self, contributor: str, older: Mapping[str, float], recent: Sequence[Charge], *,
                      epoch: str) -> tuple[bool, str]:
        rows = [(k, float(v)) for k, v in older.items()]

        def tx(db: sqlite3.Connection) -> tuple[bool, str]:
            db.execute("BEGIN IMMEDIATE")
            current = _epoch(db)
            if current is None:
                current = epoch
                db.execute("INSERT INTO meta VALUES ('spend_seeded', ?)", (current,))
            if current == LEGACY_EPOCH or db.execute("INSERT OR IGNORE INTO contributors VALUES (?, ?)",
                                                     (current, contributor)).rowcount == 0:
                db.execute("COMMIT")
                return False, current
            db.executemany("INSERT INTO spend VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET usd = usd + excluded.usd",
                           rows)
            _apply_charges(db, recent, time.time())
            db.execute("COMMIT")
            return True, current
        return await self._run(tx)

    async def put_blob(self, name: str, value: str, *, now: float | None = None, ttl_s: float) -> None:
        def tx(db: sqlite3.Connection) -> None:
            at = _now(now)
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM blobs WHERE expires <= ?", (at,))
            db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", (name, value, at + ttl_s))
            db.execute("COMMIT")
        await self._run(tx)

    async def put_owned_blob(self, name: str, value: str, owner: str, *, max_count: int, max_bytes: int,
                             now: float | None = None, ttl_s: float) -> bool:
        size = len(value.encode("utf-8", "surrogatepass"))

        def tx(db: sqlite3.Connection) -> bool:
            at = _now(now)
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM blobs WHERE expires <= ?", (at,))
            db.execute("DELETE FROM blob_owners WHERE expires <= ?", (at,))
            count, used = db.execute("SELECT count(*), coalesce(sum(bytes), 0) FROM blob_owners "
                                     "WHERE owner = ? AND name != ?", (owner, name)).fetchone()
            if count + 1 > max_count or used + size > max_bytes:
                db.execute("COMMIT")
                return False
            db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", (name, value, at + ttl_s))
            db.execute("INSERT OR REPLACE INTO blob_owners VALUES (?, ?, ?, ?)", (name, owner, size, at + ttl_s))
            db.execute("COMMIT")
            return True
        return await self._run(tx)

    async def get_blob(self, name: str, *, now: float | None = None) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM blobs WHERE name = ? AND expires > ?", (name, _now(now))).fetchone()
            return str(row[0]) if row else None
        return await self._run(read)

    async def aclose(self) -> None:
        def close(db: sqlite3.Connection) -> Any:
            db.close()
        self._inline.close()
        try:
            await trio.to_thread.run_sync(lambda: self._call(self._db, close), limiter=self._limiter)
        except StateStoreError:
            pass
