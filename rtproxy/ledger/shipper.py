"""The shipper: the spend log's JSONL is the ledger's outbox.

One shipper per process follows the spend log (:mod:`rtproxy.ledger.tail`, through rotations)
and writes its records to the ledger in batches of at most :data:`BATCH_RECORDS`, looking for new
lines every :data:`SHIP_INTERVAL_S` (at once again while a batch came back full). Each batch is
one transaction: ``INSERT … ON CONFLICT (id) DO NOTHING`` for its records, and the shipper's
cursor (file identity, head, offset) in ``ledger_cursors`` — so a crash anywhere loses nothing (the
cursor never passes what is stored) and doubles nothing (a record stored twice is kept once).

Several processes on one log (``--workers N``): one ships, the one holding an exclusive ``flock``
on ``.<log name>.ledger-lock`` beside the log (hidden: a ``spend.jsonl.*`` glob does not find it);
the others try again every :data:`LOCK_RETRY_S`, so when the shipping process dies (its lock goes
with it) another takes over within that time. Were two to ship anyway (a file system without
``flock``), the ids keep every record once.

A database that cannot be reached is retried with exponential backoff (:data:`BACKOFF_MIN_S` to
:data:`BACKOFF_MAX_S`), logged at most every :data:`ERROR_LOG_INTERVAL_S`; the gateway serves on
(the JSONL is the audit log) and ``/health`` shows the error and the growing lag.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from .db import Conn, Ledger, LedgerError, migrate
from .rollup import rollups
from .rows import INSERT_SQL, line_to_row
from .tail import LogTail, Read, TailCursor, file_id

log = logging.getLogger("rtproxy.ledger")

#: Records written to the ledger in one transaction, at most.
BATCH_RECORDS = 1000
#: Bytes of the log read for one batch, at most.
BATCH_BYTES = 8 * 1024 * 1024
#: How often the shipper looks for new lines once it has caught up.
SHIP_INTERVAL_S = 0.5
#: Backoff after a failed database call: doubled each failure, from the first to the last.
BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
#: A failing ledger is logged at most this often.
ERROR_LOG_INTERVAL_S = 30.0
#: A process that does not ship tries to take the shipping lock this often.
LOCK_RETRY_S = 2.0
#: On shutdown, what is left is shipped within this time (the rest on the next start).
FINAL_FLUSH_S = 2.0
#: A spend query waits at most this long for this process's log to be shipped first.
FLUSH_S = 1.0
#: How often :meth:`Shipper.wait_caught_up` reads the cursor another process stores.
CATCH_UP_POLL_S = 0.05

_UPSERT_CURSOR = ("INSERT INTO ledger_cursors (name, file_id, head, file_offset, updated_us) "
                  "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET file_id = excluded.file_id, "
                  "head = excluded.head, file_offset = excluded.file_offset, "
                  "updated_us = excluded.updated_us")


def cursor_name(log_path: Path) -> str:
    """The shipper's cursor: one per host and log file (the workers of one host share it)."""
    return f"{socket.gethostname()}:{log_path.resolve()}"


def load_cursor(conn: Conn, name: str) -> TailCursor | None:
    rows = conn.execute("SELECT file_id, head, file_offset FROM ledger_cursors WHERE name = ?", (name,))
    return TailCursor(rows[0][0], rows[0][1], int(rows[0][2])) if rows else None


#: Ids looked up at once when a batch checks which of its records are stored already.
_ID_CHUNK = 500
HOURLY_UPSERT = (
    "INSERT INTO spend_hourly (hour_us, key_name, team, model, provider, cost_usd, billed, responses, sessions, "
    "unpriced, audio_in_ms, audio_out_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (hour_us, key_name, team, model, provider) DO UPDATE SET "
    "cost_usd = spend_hourly.cost_usd + excluded.cost_usd, billed = spend_hourly.billed + excluded.billed, "
    "responses = spend_hourly.responses + excluded.responses, sessions = spend_hourly.sessions + excluded.sessions, "
    "unpriced = spend_hourly.unpriced + excluded.unpriced, "
    "audio_in_ms = spend_hourly.audio_in_ms + excluded.audio_in_ms, "
    "audio_out_ms = spend_hourly.audio_out_ms + excluded.audio_out_ms")
LATENCY_UPSERT = (
    "INSERT INTO spend_hourly_latency (hour_us, key_name, team, model, provider, bin, responses) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hour_us, key_name, team, model, provider, bin) DO UPDATE SET "
    "responses = spend_hourly_latency.responses + excluded.responses")


def store_batch(conn: Conn, rows: list[tuple[Any, ...]], name: str, cursor: TailCursor | None) -> int:
    """The records and the cursor after them, in one transaction: the number of new records.

    The batch takes the next number of ``ledger_batches`` first (on Postgres the row stays locked
    until this transaction ends, so batches commit in their numbers' order: a follower reading
    ``batch_no > N`` misses none), then stores the records not stored before and adds those to
    the hourly rollups (rtproxy/ledger/rollup.py) — a batch stored again after a crash adds nothing."""
    with conn.transaction():
        added = 0
        if rows:
            conn.execute("UPDATE ledger_batches SET n = n + 1 WHERE id = 1")
            batch_no = int(conn.execute("SELECT n FROM ledger_batches WHERE id = 1")[0][0])
            stored: set[str] = set()
            ids = list(dict.fromkeys(r[0] for r in rows))
            for i in range(0, len(ids), _ID_CHUNK):
                chunk = ids[i:i + _ID_CHUNK]
                stored.update(r[0] for r in conn.execute(
                    f"SELECT id FROM spend_records WHERE id IN ({', '.join('?' * len(chunk))})", chunk))
            fresh: list[tuple[Any, ...]] = []
            for r in rows:
                if r[0] not in stored:
                    stored.add(r[0])  # a line twice in one batch (a copytruncate's copy): once
                    fresh.append((*r[:-1], batch_no))
            added = conn.executemany(INSERT_SQL, fresh) if fresh else 0
            sums, latency = rollups(fresh)
            if sums:
                conn.executemany(HOURLY_UPSERT, [(*g, *s) for g, s in sums.items()])
            if latency:
                conn.executemany(LATENCY_UPSERT, [(*g, b, n) for (g, b), n in latency.items()])
        if cursor is not None:
            conn.execute(_UPSERT_CURSOR, (name, cursor.file_id, cursor.head, cursor.offset,
                                          int(time.time() * 1e6)))
    return added


class Shipper:
    def __init__(self, ledger: Ledger, log_path: Path, *, batch_records: int = BATCH_RECORDS,
                 interval_s: float = SHIP_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ledger = ledger
        self.log_path = log_path
        self.name = cursor_name(log_path)
        self.batch_records = batch_records
        self.interval_s = interval_s
        self._clock = clock
        self._tail: LogTail | None = None
        self._pending: tuple[Read, list[tuple[Any, ...]]] | None = None
        #: The cursor last stored (a batch with no lines and the same cursor stores nothing).
        self._stored: TailCursor | None = None
        self._lock_fd: int | None = None
        self._shipping_lock = trio.Lock()
        #: Set once the shipping lock was tried (``shipping`` says who got it), and once this
        #: shipper's tail is open (migrated, cursor read): what :meth:`flush` waits for.
        self.lock_tried = trio.Event()
        self.ready = trio.Event()
        #: This process holds the shipping lock (False: another process on this host ships).
        self.shipping = False
        self.schema_version: int | None = None
        #: Records written to the ledger by this shipper, and those it found there already.
        self.shipped = 0
        self.duplicates = 0
        #: Lines that are no record (torn fragments): skipped.
        self.skipped = 0
        self.batches = 0
        self.failures = 0
        self.last_error: str | None = None
        self._last_logged = -ERROR_LOG_INTERVAL_S
        self._caught_up_at = clock()
        self._behind = (0, 0)
        #: Set once the shipper has caught up with the log at least once (tests, the bench).
        self.caught_up = trio.Event()
        #: Set when :meth:`run` has returned (its last batch stored, its lock released).
        self.stopped = trio.Event()

    # -- the lock ------------------------------------------------------------------------------

    def _try_lock(self) -> bool:
        path = self.log_path.with_name(f".{self.log_path.name}.ledger-lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("ledger: cannot open the shipping lock %s (%s): shipping without it", path,
                        exc.strerror)
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    # -- status --------------------------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def lag(self) -> dict[str, Any]:
        """How far the ledger is behind the log: records, bytes, seconds (0 when caught up)."""
        if not self.shipping:
            return {"records": None, "bytes": None, "seconds": None}
        if self._tail is None:  # not reading yet (the ledger unreachable since the start)
            return {"records": None, "bytes": None, "seconds": round(self._clock() - self._caught_up_at, 3)}
        pending = self._pending
        records = self._behind[1] + (len(pending[0].lines) if pending else 0)
        nbytes = self._behind[0] + (sum(map(len, pending[0].lines)) if pending else 0)
        seconds = 0.0 if records == 0 and nbytes == 0 else self._clock() - self._caught_up_at
        return {"records": records, "bytes": nbytes, "seconds": round(seconds, 3)}

    def status(self) -> dict[str, Any]:
        return {"ok": self.healthy, "backend": self.ledger.dialect, "where": self.ledger.target.display,
                "shipping": self.shipping, "schema_version": self.schema_version, "shipped": self.shipped,
                "duplicates": self.duplicates, "skipped": self.skipped, "failures": self.failures,
                "missed_files": self._tail.missed_files if self._tail else 0, "lag": self.lag(),
                "error": self.last_error}

    def _failed(self, exc: LedgerError) -> None:
        self.failures += 1
        self.last_error = str(exc)
        now = self._clock()
        if now - self._last_logged >= ERROR_LOG_INTERVAL_S:
            self._last_logged = now
            log.error("ledger %s: %s (the spend log keeps every record; shipping is retried)",
                      self.ledger.target.display, self.last_error)

    def _recovered(self) -> None:
        if self.last_error is not None:
            log.warning("ledger %s: reachable again", self.ledger.target.display)
            self.last_error = None

    # -- running -------------------------------------------------------------------------------

    async def _retrying(self, fn: Callable[[Conn], Any]) -> Any:
        backoff = BACKOFF_MIN_S
        while True:
            try:
                result = await self.ledger.run(fn)
            except LedgerError as exc:
                self._failed(exc)
                await trio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX_S)
                continue
            self._recovered()
            return result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Ship until cancelled (then what is left, for up to :data:`FINAL_FLUSH_S`)."""
        task_status.started()
        if self.log_path.exists() and not self.log_path.is_file():
            log.warning("ledger: the spend log %s is not a regular file: it is not shipped", self.log_path)
            self.lock_tried.set()
            self.stopped.set()
            return
        try:
            while not self._try_lock():
                self.lock_tried.set()
                await trio.sleep(LOCK_RETRY_S)
            self.shipping = True
            self.lock_tried.set()
            version, _ = await self._retrying(migrate)
            self.schema_version = version
            self._open_tail(await self._retrying(lambda conn: load_cursor(conn, self.name)))
            backoff = BACKOFF_MIN_S
            while True:
                try:
                    more = await self.ship_once()
                except Exception as exc:  # noqa: BLE001 - the gateway serves on whatever the shipper meets
                    if not isinstance(exc, LedgerError):
                        log.exception("ledger: shipping failed")
                        exc = LedgerError(f"shipping failed: {type(exc).__name__}: {exc}")
                    self._failed(exc)
                    await trio.sleep(backoff)
                    backoff = min(backoff * 2, BACKOFF_MAX_S)
                    continue
                backoff = BACKOFF_MIN_S
                if not more:
                    await trio.sleep(self.interval_s)
        finally:
            with trio.CancelScope(shield=True):
                if self._tail is not None and self.last_error is None:
                    with trio.move_on_after(FINAL_FLUSH_S):
                        try:
                            while await self.ship_once():
                                pass
                        except Exception:  # noqa: BLE001 - shipped at the next start instead
                            log.debug("ledger: the last batch was not shipped", exc_info=True)
                if self._tail is not None:
                    self._tail.close()
                self._unlock()
                self.shipping = False
                self.stopped.set()

    def _open_tail(self, cursor: TailCursor | None) -> None:
        self._stored = cursor
        self._tail = LogTail(self.log_path, cursor, clock=self._clock)
        self.ready.set()

    async def prepare(self) -> None:
        """Migrate and load the cursor, once, without retrying (tests; :meth:`run` retries)."""
        self.schema_version, _ = await self.ledger.run(migrate)
        self._open_tail(await self.ledger.run(lambda conn: load_cursor(conn, self.name)))
        self.shipping = True

    async def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait until the ledger holds this log up to where it ends now, shipped by the running
        gateway that holds its lock (it ships every :data:`SHIP_INTERVAL_S`): so ``rtproxy logs``
        just after a session shows it. Whether it caught up in time (a ledger that cannot be
        read: False at once)."""
        try:
            st = os.stat(self.log_path)
        except OSError:
            return True  # no log: nothing to wait for
        fid, end = file_id(st), st.st_size
        with trio.move_on_after(timeout_s):
            while True:
                try:
                    cursor = await self.ledger.run(lambda conn: load_cursor(conn, self.name))
                except LedgerError:
                    return False
                if cursor is not None and cursor.file_id == fid and cursor.offset >= end:
                    return True
                await trio.sleep(CATCH_UP_POLL_S)
        return False

    async def ship_if_unclaimed(self, timeout_s: float) -> bool:
        """Ship this log once, up to now, unless a running gateway on this host ships it (its lock
        is held): for a command that reads the ledger (``rtproxy logs``). Whether it shipped."""
        if not self.log_path.is_file() or not self._try_lock():
            return False
        try:
            with trio.move_on_after(timeout_s):
                await self.prepare()
                while await self.ship_once():
                    pass
                return True
            return False
        finally:
            self._unlock()
            self.shipping = False

    async def flush(self, timeout_s: float = FLUSH_S) -> bool:
        """Ship what this process's log holds now, before a spend query reads the ledger (so a
        server's own records are in its answers at once): whether the ledger caught up within
        ``timeout_s``. A process that does not ship (another worker of this host does) returns
        False at once; so does a failing ledger (the query then reads what is there)."""
        with trio.move_on_after(timeout_s):
            await self.lock_tried.wait()  # a process just started: whether it ships is known soon
            if not self.shipping:
                return False
            await self.ready.wait()  # migrated, its cursor read
            try:
                while await self.ship_once():
                    pass
                return True
            except LedgerError:
                return False
        return False

    async def ship_once(self) -> bool:
        """Read one batch and store it: True if more is waiting. Raises LedgerError (the batch is
        kept and stored by the next call). One at a time (the loop and :meth:`flush`)."""
        async with self._shipping_lock:
            return await self._ship_once()

    async def _ship_once(self) -> bool:
        tail = self._tail
        assert tail is not None
        if self._pending is None:
            def read() -> tuple[Read, list[tuple[Any, ...]], tuple[int, int]]:
                batch = tail.read(self.batch_records, BATCH_BYTES)
                now_us = int(time.time() * 1e6)
                rows = [row for line in batch.lines if (row := line_to_row(line, now_us)) is not None]
                return batch, rows, tail.behind()

            try:
                batch, rows, self._behind = await trio.to_thread.run_sync(read)
            except OSError as exc:
                raise LedgerError(f"cannot read the spend log {self.log_path}: "
                                  f"{exc.strerror or exc}") from None
            self.skipped += len(batch.lines) - len(rows)
            self._pending = (batch, rows)
        batch, rows = self._pending
        if batch.lines or batch.cursor != self._stored:
            added = await self.ledger.run(lambda conn: store_batch(conn, rows, self.name, batch.cursor))
            self.shipped += added
            self.duplicates += len(rows) - added
            self.batches += 1
            self._stored = batch.cursor
        self._pending = None
        self._recovered()
        if not batch.more and self._behind == (0, 0):
            self._caught_up_at = self._clock()
            self.caught_up.set()
        return batch.more
