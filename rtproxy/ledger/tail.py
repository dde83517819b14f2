"""Following the spend log through rotation, for the shipper (plain blocking file I/O: the
shipper runs it in a worker thread).

A file is known by its identity (device and inode) and its **head**: a hash of its first line,
which holds a record's unique id. The shipper's persisted cursor is (file identity, head, offset
after the last shipped line) of the oldest file it still reads.

Rotation, as :mod:`rtproxy.spend.log`'s writer survives it:

- **rename** (logrotate ``create``): another file appears at the path. Writers go on appending
  to the renamed file until they notice (within :data:`rtproxy.spend.log.ROTATION_CHECK_S`), so
  the tail keeps reading it beside the new one, and leaves it only once it has been fully read
  and unchanged for :data:`ROTATION_SETTLE_S`; until then the cursor stays on it (a restart
  reads the new file again from its start: shipping is idempotent).
- **copytruncate**: the file at the path becomes shorter than the offset. The lines the tail had
  not read yet are in logrotate's copy: the tail finds it among the log's siblings by its head
  (uncompressed: ``delaycompress``), reads it from the offset on, then the truncated file from
  its start. Writers also write their last lines again after a truncation; the ledger keeps each
  record id once.
- **restart**: the cursor's file is found at the path, or among the siblings by identity and head
  (renamed since), and read from the offset; a file that is gone (compressed, deleted) is
  reported (:attr:`LogTail.missed_files`) and the file at the path is read from its start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import attrs

log = logging.getLogger("rtproxy.ledger")

#: A file's head: the hash of its first line, or of this many bytes when the line is longer.
HEAD_BYTES = 4096
#: A file replaced at the path is read until it has not grown for this long (writers notice a
#: rotation within a second).
ROTATION_SETTLE_S = 3.0
#: Bytes read from a file per read call.
READ_CHUNK_BYTES = 1024 * 1024
#: Suffixes of rotated files that are not plain text (never opened as a sibling).
COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip")
#: Unread bytes counted line by line to report the lag in records (beyond, extrapolated).
COUNT_LIMIT_BYTES = 4 * 1024 * 1024


@attrs.frozen
class TailCursor:
    file_id: str | None
    head: str | None
    offset: int


def file_id(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


class _File:
    def __init__(self, path: Path, fd: int, fid: str, offset: int, now: float) -> None:
        self.path = path
        self.fd = fd
        self.id = fid
        self.offset = offset
        self.head: str | None = None
        self.replaced = False
        self.grew_at = now

    def size(self) -> int:
        return os.fstat(self.fd).st_size

    def compute_head(self) -> str | None:
        if self.head is None:
            self.head = head_of(self.fd)
        return self.head

    def close(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass


def head_of(fd: int) -> str | None:
    """The file's head, or None while its first line is not complete."""
    first = os.pread(fd, HEAD_BYTES, 0)
    nl = first.find(b"\n")
    if nl < 0 and len(first) < HEAD_BYTES:
        return None
    return hashlib.sha256(first[: nl + 1] if nl >= 0 else first).hexdigest()[:32]


def _open(path: Path) -> tuple[int, str] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    return fd, file_id(os.fstat(fd))


@attrs.define
class Read:
    #: Complete lines, newline included.
    lines: list[bytes]
    #: The cursor to persist once these lines are in the ledger.
    cursor: TailCursor | None
    #: More is waiting right now (the batch was full).
    more: bool


class LogTail:
    def __init__(self, path: Path, cursor: TailCursor | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._cursor = cursor
        self._files: list[_File] = []
        self._started = False
        #: Files the cursor named that could not be found again (rotated and compressed, deleted):
        #: their unshipped lines, if any, are in the JSONL only.
        self.missed_files = 0
        #: Copies of truncated files found and read (copytruncate).
        self.copies_read = 0

    # -- finding files -------------------------------------------------------------------------

    def _siblings(self) -> list[Path]:
        try:
            names = os.listdir(self.path.parent)
        except OSError:
            return []
        base = self.path.name
        return [self.path.parent / n for n in sorted(names)
                if n != base and n.startswith(base) and not n.lower().endswith(COMPRESSED)]

    def _find(self, fid: str | None, head: str | None, min_size: int, *, exclude: str | None = None
              ) -> _File | None:
        """An open file among the path and its siblings: same identity and head first, else same head."""
        by_head: _File | None = None
        for p in [self.path, *self._siblings()]:
            opened = _open(p)
            if opened is None:
                continue
            fd, pid = opened
            f = _File(p, fd, pid, 0, self._clock())
            ok = pid != exclude and f.size() >= min_size
            h = f.compute_head() if ok and (head is not None or pid == fid) else None
            if ok and pid == fid and (head is None or h == head):
                if by_head is not None:
                    by_head.close()
                return f
            if ok and head is not None and h == head and by_head is None:
                by_head = f
                continue
            f.close()
        return by_head

    def _start(self) -> None:
        now = self._clock()
        c = self._cursor
        if c is not None and (c.offset > 0 or c.file_id is not None):
            f = self._find(c.file_id, c.head, c.offset)
            if f is not None:
                f.offset = c.offset
                self._files.append(f)
                if f.path != self.path:
                    log.info("ledger: the spend log was rotated while not shipping: reading %s from "
                             "offset %d", f.path.name, c.offset)
                    f.replaced = True
                    f.grew_at = now - ROTATION_SETTLE_S  # nobody writes it now
            elif c.offset > 0:
                self.missed_files += 1
                log.warning("ledger: the spend-log file the shipper was reading (%s, offset %d) is gone "
                            "(compressed or deleted after a rotation): records after that offset are in the "
                            "JSONL archive only", c.file_id, c.offset)
        if not self._files or self._files[-1].path != self.path:
            opened = _open(self.path)
            if opened is not None and (not self._files or opened[1] != self._files[-1].id):
                self._files.append(_File(self.path, opened[0], opened[1], 0, now))
            elif opened is not None:
                os.close(opened[0])
        self._started = bool(self._files)

    # -- reading -------------------------------------------------------------------------------

    def _read_file(self, f: _File, max_lines: int, max_bytes: int, out: list[bytes]) -> bool:
        """Append f's complete new lines to out; True if f has more to read."""
        size = f.size()
        while f.offset < size and len(out) < max_lines and max_bytes > 0:
            want = min(size - f.offset, READ_CHUNK_BYTES, max_bytes)
            chunk = os.pread(f.fd, want, f.offset)
            if not chunk:
                break
            end = chunk.rfind(b"\n")
            if end < 0:
                if len(chunk) < want or want == size - f.offset:
                    return False  # the last line is being written: not complete yet
                # a line longer than the chunk: read it whole
                nl = -1
                pos = f.offset + len(chunk)
                while nl < 0 and pos < size:
                    more = os.pread(f.fd, READ_CHUNK_BYTES, pos)
                    if not more:
                        break
                    nl = more.find(b"\n")
                    chunk += more if nl < 0 else more[: nl + 1]
                    pos += len(more)
                if nl < 0:
                    return False
                end = len(chunk) - 1
            start = 0
            while start <= end and len(out) < max_lines:
                nl = chunk.index(b"\n", start)
                out.append(chunk[start: nl + 1])
                start = nl + 1
            f.offset += start
            max_bytes -= start
            f.grew_at = self._clock()
        if f.head is None and f.offset > 0:
            f.compute_head()
        return f.offset < f.size() and (len(out) >= max_lines or max_bytes <= 0)

    def read(self, max_lines: int, max_bytes: int = 8 * 1024 * 1024) -> Read:
        if not self._started:
            self._start()
            if not self._started:
                return Read([], None, False)
        out: list[bytes] = []
        more = False
        for f in list(self._files):
            if self._read_file(f, max_lines, max_bytes - sum(map(len, out)), out):
                more = True
                break
        if not more:
            self._check_rotation()
            self._drop_settled()
        return Read(out, self.cursor(), more)

    def _check_rotation(self) -> None:
        now = self._clock()
        last = self._files[-1]
        size = last.size()
        # truncated (copytruncate); or truncated and written again past the offset since: another head
        rewritten = last.offset > 0 and last.head is not None and head_of(last.fd) != last.head
        if size < last.offset or rewritten:
            head = last.head
            copy = self._find(None, head, last.offset, exclude=last.id) if head is not None else None
            if copy is not None:
                log.info("ledger: the spend log was truncated: reading the rest of its copy %s",
                         copy.path.name)
                self.copies_read += 1
                copy.offset, copy.replaced, copy.grew_at = last.offset, True, now - ROTATION_SETTLE_S
                self._files.insert(len(self._files) - 1, copy)
            else:
                log.warning("ledger: the spend log was truncated and no copy of it was found: lines "
                            "after offset %d not shipped yet are in the rotated (compressed) file only",
                            last.offset)
                self.missed_files += 1
            last.offset, last.head, last.grew_at = 0, None, now
            return
        opened = _open(self.path)
        if opened is None:
            return
        fd, pid = opened
        if pid == last.id:
            os.close(fd)
            return
        log.info("ledger: the spend log was rotated: following the new file")
        last.replaced = True
        self._files.append(_File(self.path, fd, pid, 0, now))

    def _drop_settled(self) -> None:
        now = self._clock()
        while len(self._files) > 1:
            f = self._files[0]
            if not f.replaced or now - f.grew_at < ROTATION_SETTLE_S or f.offset < f.size():
                return
            f.close()
            self._files.pop(0)

    def cursor(self) -> TailCursor | None:
        if not self._files:
            return None
        f = self._files[0]
        return TailCursor(f.id, f.compute_head(), f.offset)

    def behind(self) -> tuple[int, int]:
        """(bytes, records) written to the log and not read yet (records counted up to a limit)."""
        total = lines = counted = 0
        for f in self._files:
            try:
                size = f.size()
            except OSError:
                continue
            unread = max(size - f.offset, 0)
            total += unread
            if unread and counted < COUNT_LIMIT_BYTES:
                n = min(unread, COUNT_LIMIT_BYTES - counted)
                lines += os.pread(f.fd, n, f.offset).count(b"\n")
                counted += n
        if total > counted and counted:
            lines = int(lines * total / counted)
        return total, lines

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files.clear()
        self._started = False
