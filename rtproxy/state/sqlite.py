"""The embedded state store: one SQLite file in WAL mode, exact across one host's processes.

Every admission is one ``BEGIN IMMEDIATE`` transaction (SQLite's write lock is taken at BEGIN,
so two workers admitting at once are serialised by the database, never both let through). Calls
run in a worker thread (sqlite3 blocks); one connection per store, used by one thread at a time.
A busy database waits at most :data:`BUSY_TIMEOUT_S` before the call fails.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import trio

from .store import RATE_WINDOW_S, KeyLimits, Refusal, StateStoreError, check_limits

#: How long a call waits for another process's write transaction before failing.
BUSY_TIMEOUT_S = 5.0

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
"""


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._db = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._limiter = trio.CapacityLimiter(1)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                try:
                    self._db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise StateStoreError(f"state database {self.path.name}: {exc}") from None
        return await trio.to_thread.run_sync(call, limiter=self._limiter)

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float, lease_s: float
                    ) -> Refusal | None:
        def tx(db: sqlite3.Connection) -> Refusal | None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM sessions WHERE expires <= ?", (now,))
            db.execute("DELETE FROM opens WHERE at <= ?", (now - RATE_WINDOW_S,))
            row = db.execute("SELECT usd FROM spend WHERE key = ?", (limits.key,)).fetchone()
            key_open = db.execute("SELECT count(*) FROM sessions WHERE key = ?", (limits.key,)).fetchone()[0]
            total = db.execute("SELECT count(*) FROM sessions").fetchone()[0]
            recent = db.execute("SELECT count(*) FROM opens WHERE key = ?", (limits.key,)).fetchone()[0]
            refusal = check_limits(limits, spent=row[0] if row else 0.0, key_open=key_open, total_open=total,
                                   recent_opens=recent)
            if refusal is None:
                db.execute("INSERT OR REPLACE INTO sessions VALUES (?, ?, ?, ?)",
                           (session_id, limits.key, owner, now + lease_s))
                if limits.max_sessions_per_minute is not None:
                    db.execute("INSERT INTO opens VALUES (?, ?)", (limits.key, now))
            db.execute("COMMIT")
            return refusal
        return await self._run(tx)

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float, lease_s: float) -> None:
        ids = [(now + lease_s, sid) for sid, _ in session_ids]
        if not ids:
            return

        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.executemany("UPDATE sessions SET expires = ? WHERE id = ?", ids)
            db.execute("COMMIT")
        await self._run(tx)

    async def release(self, session_id: str, key: str) -> None:
        await self._run(lambda db: db.execute("DELETE FROM sessions WHERE id = ?", (session_id,)))

    async def charge(self, key: str, cost_usd: float) -> float:
        def tx(db: sqlite3.Connection) -> float:
            db.execute("BEGIN IMMEDIATE")
            db.execute("INSERT INTO spend VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET usd = usd + excluded.usd",
                       (key, cost_usd))
            total = float(db.execute("SELECT usd FROM spend WHERE key = ?", (key,)).fetchone()[0])
            db.execute("COMMIT")
            return total
        return await self._run(tx)

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        wanted = list(keys)

        def read(db: sqlite3.Connection) -> dict[str, float]:
            out = dict.fromkeys(wanted, 0.0)
            for key, usd in db.execute("SELECT key, usd FROM spend"):
                if key in out:
                    out[key] = float(usd)
            return out
        return await self._run(read)

    async def open_sessions(self, key: str, *, now: float) -> int:
        return await self._run(lambda db: int(db.execute(
            "SELECT count(*) FROM sessions WHERE key = ? AND expires > ?", (key, now)).fetchone()[0]))

    async def seed_spend(self, totals: Mapping[str, float]) -> bool:
        rows = [(k, float(v)) for k, v in totals.items()]

        def tx(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("SELECT 1 FROM meta WHERE name = 'spend_seeded'").fetchone():
                db.execute("COMMIT")
                return False
            db.executemany("INSERT INTO spend VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET usd = excluded.usd", rows)
            db.execute("INSERT INTO meta VALUES ('spend_seeded', '1')")
            db.execute("COMMIT")
            return True
        return await self._run(tx)

    async def put_blob(self, name: str, value: str, *, now: float, ttl_s: float) -> None:
        def tx(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("DELETE FROM blobs WHERE expires <= ?", (now,))
            db.execute("INSERT OR REPLACE INTO blobs VALUES (?, ?, ?)", (name, value, now + ttl_s))
            db.execute("COMMIT")
        await self._run(tx)

    async def get_blob(self, name: str, *, now: float) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT value FROM blobs WHERE name = ? AND expires > ?", (name, now)).fetchone()
            return str(row[0]) if row else None
        return await self._run(read)

    async def aclose(self) -> None:
        def close(db: sqlite3.Connection) -> Any:
            db.close()
        try:
            await self._run(close)
        except StateStoreError:
            pass
