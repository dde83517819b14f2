"""Appending spend records to the JSON-lines file, and reading them back, through rotation.

Writing: each record is serialised to one line and written with a single ``os.write`` on a file
opened ``O_APPEND``, under an exclusive ``flock`` shared by every process writing the file, so
lines from several worker processes never interleave and a line is in the kernel as soon as ``write`` returns
(a ``kill -9`` loses nothing written). The file is created 0600: records can hold prompts.

Operations the writer survives:

- **rotation by rename** (logrotate ``create``): at most every :data:`ROTATION_CHECK_S` (and at
  once after :meth:`SpendLogWriter.reopen`, which ``SIGHUP`` calls) the writer compares the file
  it holds with the one at the configured path and, if they differ or the path is gone, goes on
  in the file now at the path; records written before it noticed are whole lines in the rotated
  file;
- **truncation** (logrotate ``copytruncate``): ``O_APPEND`` writes land at the new end. logrotate
  copies the file and then truncates it, so lines written between the two would be lost: the
  writer remembers what it wrote in the last :data:`REWRITE_WINDOW_S` and, when it finds the file
  shorter than where its last line ended, writes those lines again. A record may then stand in
  both the rotated copy and the new file; every record has a unique ``id`` and readers that sum
  (the budget rebuild) count each ``id`` once;
- **torn lines**: a writer that finds the file not ending in a newline (a crash mid-write, a short
  write by any process) writes one before its record, so a fragment never swallows the next
  record;
- **records that cannot be serialised** (nothing a client sends does this — :func:`encode_record`
  escapes what UTF-8 cannot carry — but a bug must not stop billing): :meth:`SpendLogWriter.write`
  never raises; the record is counted in :attr:`SpendLogWriter.unwritable`, logged, and the
  caller charges it all the same;
- **failed and short writes** (disk full, permission, file system gone): never raised into the
  session. The record stays queued (at most :data:`MAX_QUEUED_RECORDS`, the oldest dropped and
  counted beyond that) and is written whole, after a newline, by the next write or check that
  succeeds. Failures are counted, logged at most once per :data:`ERROR_LOG_INTERVAL_S`, and
  ``/health`` says degraded until the queue is empty again.

Reading: :class:`LogCursor` remembers which file (device, inode) and how far; a reader that finds
the file shorter than its offset (truncated) or another file at the path (rotated) starts over in
the new one. Lines that do not parse (a torn fragment) are skipped.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs

log = logging.getLogger("rtproxy.spend")

#: A failing spend log is reported in the server log at most this often.
ERROR_LOG_INTERVAL_S = 30.0
#: How often (at most) the writer checks that its file is still the one at the configured path.
ROTATION_CHECK_S = 1.0
#: Records kept in memory while the log cannot be written; beyond this the oldest are dropped.
MAX_QUEUED_RECORDS = 10_000
#: After a truncation the lines this process wrote in this window are written again.
REWRITE_WINDOW_S = 10.0
#: ... at most this many of them.
MAX_REWRITE_LINES = 2_000


def encode_record(record: dict[str, Any]) -> bytes:
    """One line of UTF-8 JSON. Text UTF-8 cannot carry (a lone surrogate such as ``"\\ud800"``,
    which is valid JSON a client may send) makes the whole line ASCII with ``\\u`` escapes
    instead: still one valid line, which reads back to exactly what was recorded."""
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(record, separators=(",", ":"), ensure_ascii=True, default=str).encode("ascii") + b"\n"


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return (st.st_dev, st.st_ino)


class SpendLogWriter:
    def __init__(self, path: Path, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._fd: int | None = None
        self._fd_id: tuple[int, int] | None = None
        self._checked_at = -ROTATION_CHECK_S
        self._reopen = False
        self._queue: deque[bytes] = deque()
        #: (when, line) written lately: written again after a copytruncate.
        self._recent: deque[tuple[float, bytes]] = deque(maxlen=MAX_REWRITE_LINES)
        #: Where the file ended after this process's last line (a smaller file was truncated).
        self._end = 0
        self.truncations = 0
        self.written = 0
        self.failures = 0
        #: Records dropped because the queue was full while the log could not be written.
        self.lost = 0
        #: Records that could not be serialised at all (never written; still charged by the caller).
        self.unwritable = 0
        self.reopened = 0
        self.last_error: str | None = None
        self._last_logged = -ERROR_LOG_INTERVAL_S

    @property
    def healthy(self) -> bool:
        """No write failing now, and no record ever lost for want of serialising it."""
        return self.last_error is None and self.unwritable == 0

    @property
    def open_file_id(self) -> str | None:
        """The file this writer appends to now, as :func:`file_id` names it (None: none open)."""
        if self._fd is None or self._fd_id is None:
            return None
        return f"{self._fd_id[0]}:{self._fd_id[1]}"

    @property
    def queued(self) -> int:
        return len(self._queue)

    def reopen(self) -> None:
        """Check the file at the next write or :meth:`check` (SIGHUP from logrotate's postrotate)."""
        self._reopen = True

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_RDWR: the last byte is read back to see whether the file ends in a newline
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._fd, self._fd_id = fd, _file_id(os.fstat(fd))
        return self._fd

    def _close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = self._fd_id = None

    def _check_rotation(self) -> None:
        now = self._clock()
        if not self._reopen and now - self._checked_at < ROTATION_CHECK_S:
            return
        self._checked_at = now
        self._reopen = False
        if self._fd is None:
            return
        try:
            at_path = _file_id(os.stat(self.path))
        except FileNotFoundError:
            at_path = None
        except OSError:
            return
        if at_path != self._fd_id:
            log.info("spend log %s was rotated: continuing in the file now at that path", self.path)
            self.reopened += 1
            self._close()
            self._recent.clear()
            self._end = 0
            return
        self._check_truncation(self._fd)

    def _check_truncation(self, fd: int) -> None:
        size = os.fstat(fd).st_size
        if size < self._end:
            horizon = self._clock() - REWRITE_WINDOW_S
            again = [line for t, line in self._recent if t >= horizon]
            log.info("spend log %s was truncated: writing the last %d record(s) again", self.path, len(again))
            self.truncations += 1
            self._recent.clear()
            self._queue.extendleft(reversed(again))
        self._end = min(self._end, size)

    def check(self) -> None:
        """Notice a rotation and write queued records (the gateway calls it every second)."""
        try:
            self._check_rotation()
            self._drain()
        except OSError as exc:
            self._failed(exc)

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record as one line. Returns False (and never raises) if it is not written
        yet: it stays queued and goes out whole with the next successful write."""
        try:
            line = encode_record(record)
        except (ValueError, TypeError, RecursionError) as exc:
            self.unwritable += 1
            log.error("spend log: a %s record of session %s could not be serialised (%s); it is charged, not "
                      "written", str(record.get("record"))[:20], str(record.get("session_id"))[:40],
                      type(exc).__name__)
            return False
        if len(self._queue) >= MAX_QUEUED_RECORDS:
            self._queue.popleft()
            self.lost += 1
        self._queue.append(line)
        try:
            self._check_rotation()
            self._drain()
        except OSError as exc:
            self._failed(exc)
            return False
        return True

    def _drain(self) -> None:
        queue = self._queue
        while queue:
            try:
                self._try_drain_one()
            except _Requeued:
                continue
        if self.last_error is not None:
            log.warning("spend log %s is writable again", self.path)
            self.last_error = None

    def _try_drain_one(self) -> None:
        queue = self._queue
        if queue:
            line = queue[0]
            self._write_line(line)
            queue.popleft()
            self._recent.append((self._clock(), line))
            self.written += 1

    def _write_line(self, line: bytes) -> None:
        fd = self._open()
        # The lock makes "look at the last byte, then append" one step across every process
        # writing this file: without it a reader of the last byte can see another writer's
        # line half-copied and add a needless newline.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            size = os.fstat(fd).st_size
            if size < self._end:  # truncated since our last line: queue the lost lines first
                self._check_truncation(fd)
                raise _Requeued()
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # a torn line before us: keep it on a line of its own
            n = os.write(fd, line)
            self._end = size + n
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        if n != len(line):
            # The fragment stays in the file (it will not parse); the whole line is written
            # again, after a newline, when there is room.
            raise OSError(errno.ENOSPC, f"short write ({n} of {len(line)} bytes)")

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self.last_error = exc.strerror or str(exc)
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            self._close()  # reopen next time (the file or its directory may come back)
        now = self._clock()
        if now - self._last_logged >= ERROR_LOG_INTERVAL_S:
            self._last_logged = now
            log.error("cannot write the spend log %s: %s (%d record(s) waiting, %d lost)",
                      self.path, self.last_error, len(self._queue), self.lost)

    def close(self) -> None:
        self._close()


class _Requeued(Exception):
    """The file was truncated: lost lines were queued ahead of the one being written."""


@attrs.define
class LogCursor:
    """Where a reader is: which file (device, inode) and the offset after the last whole line."""

    file_id: tuple[int, int] | None = None
    offset: int = 0


def iter_records(path: Path, *, start: int = 0, cursor: LogCursor | None = None
                 ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset after the line, record) for each complete, parseable line from ``start``.

    With a ``cursor``, reading starts at the cursor (or at 0 when the file at ``path`` is not the
    one it was on, or is shorter than its offset: rotated or truncated) and the cursor follows.
    A last line without its newline (being written right now) is not returned yet.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        st = os.fstat(f.fileno())
        if cursor is not None:
            fid = _file_id(st)
            if cursor.file_id != fid or st.st_size < cursor.offset:
                cursor.file_id, cursor.offset = fid, 0
            start = cursor.offset
        elif start > st.st_size:
            start = 0  # the file was truncated since the caller's offset
        f.seek(start)
        offset = start
        end = st.st_size  # what is there now: a reader never chases a file that keeps growing
        while offset < end:
            raw = f.readline(end - offset)
            if not raw.endswith(b"\n"):
                break
            offset += len(raw)
            if cursor is not None:
                cursor.offset = offset
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield offset, record


def file_id(path: Path) -> str | None:
    """The file at ``path`` as a string a client can hand back (``/spend/logs?file_id=``)."""
    try:
        dev, ino = _file_id(os.stat(path))
    except OSError:
        return None
    return f"{dev}:{ino}"
