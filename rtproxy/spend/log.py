"""Appending spend records to the JSON-lines file, and reading them back.

Writing: each record is serialised to one line and written with a single ``os.write`` on a file
opened ``O_APPEND``, so lines from several worker processes never interleave (the kernel appends
each write whole on a local file system) and a line is in the kernel as soon as ``write`` returns
(a ``kill -9`` loses nothing written). The file is created 0600: records can hold prompts.

A failed write (disk full, permission, file system gone) never raises into the session: it is
counted, logged loudly at most once per :data:`ERROR_LOG_INTERVAL_S`, and reported by
``/health`` as degraded until a write succeeds again. After a short (torn) write the next line
starts with a newline, so the fragment stays on a line of its own and every later line is whole;
readers skip lines that do not parse.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("rtproxy.spend")

#: A failing spend log is reported in the server log at most this often.
ERROR_LOG_INTERVAL_S = 30.0


def encode_record(record: dict[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8") + b"\n"


class SpendLogWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._torn = False
        self.written = 0
        self.failures = 0
        self.last_error: str | None = None
        self._last_logged = -ERROR_LOG_INTERVAL_S

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        return self._fd

    def write(self, record: dict[str, Any]) -> bool:
        """Append one record as one line. Returns False (and never raises) if it was not written."""
        line = encode_record(record)
        if self._torn:
            line = b"\n" + line
        try:
            fd = self._open()
            n = os.write(fd, line)
            if n != len(line):
                self._torn = True
                raise OSError(28, f"short write ({n} of {len(line)} bytes)")
        except OSError as exc:
            self._failed(exc)
            return False
        self._torn = False
        self.written += 1
        if self.last_error is not None:
            log.warning("spend log %s is writable again", self.path)
            self.last_error = None
        return True

    def _failed(self, exc: OSError) -> None:
        self.failures += 1
        self.last_error = exc.strerror or str(exc)
        if self._fd is not None and exc.errno not in (28, 122):  # keep the fd on ENOSPC/EDQUOT
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        now = time.monotonic()
        if now - self._last_logged >= ERROR_LOG_INTERVAL_S:
            self._last_logged = now
            log.error("cannot write the spend log %s: %s (%d records lost so far)",
                      self.path, self.last_error, self.failures)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def iter_records(path: Path, *, start: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """(offset after the line, record) for each complete, parseable line from ``start``.

    A last line without its newline (being written right now) is not returned yet.
    """
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        return
    with f:
        f.seek(start)
        offset = start
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            offset += len(raw)
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield offset, record
