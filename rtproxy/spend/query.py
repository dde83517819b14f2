"""Filtering and paging spend records: what ``GET /spend/logs`` and ``rtproxy logs`` read.

Paging is by byte offset in the log file, which only grows:

- newest first (the default): up to ``limit`` matching records before ``cursor`` (the end of the
  file when absent); ``next_cursor`` pages further back, ``None`` at the start of the file;
- follow: ``after=<offset>`` returns the records appended since, oldest first, and
  ``end_offset`` to pass as the next ``after``, with ``file_id`` (which file the offset is in) to
  pass back as ``file_id``: after a rotation (another file at the path) or a truncation (the file
  is shorter than the offset) the follow restarts at the start of the file now at the path.

Each request scans the part of the file it pages over; that is linear in the log's size, fine for
logs of a few hundred MB, and needs no index or database.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from .log import LogCursor, file_id, iter_records

#: Most records one request may ask for.
MAX_LIMIT = 1000


@attrs.frozen
class SpendFilter:
    session_id: str | None = None
    key_name: str | None = None
    model: str | None = None
    record: str | None = None
    status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    #: Case-insensitive prefixes of the key name and the model (what a person types in the viewer).
    key_prefix: str | None = None
    model_prefix: str | None = None
    #: The record's ``provider`` exactly (``"openai"``, ``"azure"``, ``"gemini"``, ``"vertex"``,
    #: ``"local"``): the viewer's provider filter.
    provider: str | None = None

    def matches(self, r: dict[str, Any]) -> bool:
        if self.session_id is not None and r.get("session_id") != self.session_id:
            return False
        if self.key_name is not None and r.get("key_name") != self.key_name:
            return False
        if self.model is not None and r.get("model") != self.model:
            return False
        if self.record is not None and r.get("record") != self.record:
            return False
        if self.provider is not None and r.get("provider") != self.provider:
            return False
        for prefix, field in ((self.key_prefix, "key_name"), (self.model_prefix, "model")):
            if prefix is not None and not str(r.get(field) or "").casefold().startswith(prefix.casefold()):
                return False
        if self.status is not None and r.get("status") != self.status:
            return False
        if self.since is not None or self.until is not None:
            t = parse_time(r.get("start_time"))
            if t is None:
                return False
            if self.since is not None and t < self.since:
                return False
            if self.until is not None and t >= self.until:
                return False
        return True


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        from datetime import timezone

        t = t.replace(tzinfo=timezone.utc)
    return t


@attrs.frozen
class Page:
    records: list[dict[str, Any]]
    next_cursor: int | None
    end_offset: int
    #: The file the offsets are in (``"dev:inode"``), None when there is no file yet.
    file_id: str | None = None


def newest_first(path: Path, flt: SpendFilter, *, limit: int, cursor: int | None = None) -> Page:
    limit = max(1, min(limit, MAX_LIMIT))
    window: deque[tuple[int, int, dict[str, Any]]] = deque(maxlen=limit)
    start = 0
    end = 0
    skipped_before = False
    for offset, record in iter_records(path):
        line_start, end = start, offset
        start = offset
        if cursor is not None and offset > cursor:
            break
        if flt.matches(record):
            if len(window) == limit:
                skipped_before = True
            window.append((line_start, offset, record))
    records = [r for _, _, r in reversed(window)]
    # Were there matches before the oldest returned? Only if the window was full.
    next_cursor = window[0][0] if window and skipped_before else None
    return Page(records, next_cursor, end, file_id(path))


#: A ``file_id`` ("dev:inode") longer than this is no file's (and not worth turning into numbers).
MAX_FILE_ID_CHARS = 64


def _parse_file_id(value: str | None) -> tuple[int, int] | None:
    dev, _, ino = (value or "")[:MAX_FILE_ID_CHARS + 1].partition(":")
    if len(dev) + len(ino) >= MAX_FILE_ID_CHARS or not (dev.isdecimal() and ino.isdecimal()):
        return None
    return int(dev), int(ino)


def appended_since(path: Path, flt: SpendFilter, *, after: int, limit: int, since_file: str | None = None) -> Page:
    """Records appended after ``after`` in the file ``since_file`` (the current one when None)."""
    limit = max(1, min(limit, MAX_LIMIT))
    current = file_id(path)
    cursor = LogCursor(_parse_file_id(since_file or current), after)
    out: list[dict[str, Any]] = []
    for _, record in iter_records(path, cursor=cursor):
        if flt.matches(record):
            out.append(record)
            if len(out) >= limit:
                break
    fid = f"{cursor.file_id[0]}:{cursor.file_id[1]}" if cursor.file_id else current
    return Page(out, None, cursor.offset, fid)
