"""A spend-log line as a ledger row (sans-IO: bytes in, a tuple out)."""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any

#: The columns of ``spend_records``, in the order :func:`line_to_row` gives them.
ROW_COLUMNS = ("id", "record", "time_us", "key_name", "team", "model", "provider", "session_id",
               "cost_usd", "audio_in_ms", "audio_out_ms", "data", "status", "start_us", "duration_ms", "batch_no")
#: Where each column is in a row (the rollups read rows by name).
COLUMN = {name: i for i, name in enumerate(ROW_COLUMNS)}
INSERT_SQL = (f"INSERT INTO spend_records ({', '.join(ROW_COLUMNS)}) "
              f"VALUES ({', '.join('?' * len(ROW_COLUMNS))}) ON CONFLICT (id) DO NOTHING")
#: Longest value kept in an indexed text column (the whole value stays in ``data``).
MAX_COLUMN_CHARS = 256

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value[:MAX_COLUMN_CHARS]
    if "\x00" in value:  # Postgres text cannot hold NUL
        value = value.replace("\x00", "\ufffd")
    if not value.isascii():  # a lone surrogate (valid JSON) cannot be stored as UTF-8
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    n = _number(value)
    return int(n) if n is not None and abs(n) < 2 ** 62 else None


def time_us(value: Any) -> int | None:
    """An ISO-8601 time as microseconds since the epoch (a naive time is UTC)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def to_us(t: datetime) -> int:
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def line_to_row(line: bytes, now_us: int, batch_no: int = 0) -> tuple[Any, ...] | None:
    """The row for one JSONL line, or None for a line that is no record (a torn fragment, not a
    JSON object); a record without an ``id`` gets one made of its bytes. ``now_us`` stands in for a record with no time; ``batch_no`` is
    the shipping batch's number (set again when the batch is stored)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    rid = _text(record.get("id"))
    if not rid:
        # a record without an id (written by hand, or by a tool of the operator's) is kept too,
        # under an id made of its bytes: shipped again, the same line is the same row
        rid = "line_" + hashlib.sha256(line.rstrip(b"\n")).hexdigest()[:32]
    when = time_us(record.get("end_time")) or time_us(record.get("time")) or time_us(record.get("start_time"))
    data = line.decode("utf-8", "replace").rstrip("\n")
    if "\x00" in data:
        data = data.replace("\x00", "\ufffd")
    return (rid, _text(record.get("record")) or "", when if when is not None else now_us,
            _text(record.get("key_name")), _text(record.get("team")), _text(record.get("model")),
            _text(record.get("provider")), _text(record.get("session_id")), _number(record.get("cost_usd")),
            _int(record.get("audio_in_ms")), _int(record.get("audio_out_ms")), data, _text(record.get("status")),
            time_us(record.get("start_time")), _number(record.get("duration_ms")), batch_no)
