"""Reading the ledger: sans-IO query builders (SQL and parameters, no I/O) and thin executors.

The builders return a :class:`Query` written with ``?`` placeholders (each connection adapts
them); the executors run one in a worker thread (:meth:`rtproxy.ledger.db.Ledger.run`) and shape
the answer. Every query is served by an index (rtproxy/ledger/schema.py):

- :func:`key_page`: one key's records newest first, ``limit`` at a time; ``next_cursor`` (the
  last row's time and id) pages further back — keyset paging on ``(key_name, time_us, id)``, as
  fast on the thousandth page as on the first;
- :func:`session_query`: one session's records, oldest first (``(session_id, time_us)``);
- :func:`summary_query`: totals by key, model or provider over a time range (the time index,
  which carries the columns summed).

Billed records (``response``, ``transcription``, ``usage``) carry the cost; a ``session`` record
repeats its session's sum, so a summary adds the billed records' cost and audio and counts the
session records.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

import attrs

from .db import Conn, Ledger
from .rows import to_us
from .schema import Dialect

#: Most records one page may ask for.
MAX_PAGE = 1000
SummaryBy = Literal["key_name", "model", "provider", "team"]
_GROUPS = ("key_name", "model", "provider", "team")


@attrs.frozen
class Query:
    sql: str
    params: tuple[Any, ...] = ()


def _cursor(value: str) -> tuple[int, str]:
    t, sep, rid = value.partition(":")
    if not sep or not t.lstrip("-").isdigit() or not rid:
        raise ValueError("not a cursor from a previous page")
    return int(t), rid


def key_page(key_name: str, *, limit: int = 100, cursor: str | None = None, since: datetime | None = None,
             until: datetime | None = None) -> Query:
    """One key's records, newest first: ``limit + 1`` rows (the extra one says a next page exists)."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1 to {MAX_PAGE}")
    where: list[str] = ["key_name = ?"]
    params: list[Any] = [key_name]
    if cursor is not None:
        t, rid = _cursor(cursor)
        where.append("(time_us, id) < (?, ?)")
        params += [t, rid]
    if since is not None:
        where.append("time_us >= ?")
        params.append(to_us(since))
    if until is not None:
        where.append("time_us < ?")
        params.append(to_us(until))
    return Query(f"SELECT time_us, id, data FROM spend_records WHERE {' AND '.join(where)} "
                 "ORDER BY time_us DESC, id DESC LIMIT ?", (*params, limit + 1))


def session_query(session_id: str, *, limit: int = MAX_PAGE) -> Query:
    return Query("SELECT time_us, id, data FROM spend_records WHERE session_id = ? "
                 "ORDER BY time_us, id LIMIT ?", (session_id, limit))


def summary_query(by: SummaryBy, since: datetime, until: datetime, *, key_name: str | None = None,
                  dialect: Dialect = "sqlite") -> Query:
    """Totals per ``by`` over ``[since, until)``: cost, billed records, responses, sessions, audio.

    On SQLite the time index, which carries every column summed, is named (``INDEXED BY``): left
    to itself the planner skip-scans the (key, time) or (model, time) index and reads each row
    from the table — 2–3 times slower on 2 million records (bench/ledger.py). Postgres reads the
    same index only (``INCLUDE``) once the table is vacuumed."""
    if by not in _GROUPS:
        raise ValueError(f"by must be one of {', '.join(_GROUPS)}")
    where: list[str] = ["time_us >= ?", "time_us < ?"]
    params: list[Any] = [to_us(since), to_us(until)]
    if key_name is not None:
        where.append("key_name = ?")
        params.append(key_name)
    billed = "record <> 'session'"
    return Query(
        f"SELECT {by}, SUM(CASE WHEN {billed} THEN COALESCE(cost_usd, 0) ELSE 0 END), "
        f"SUM(CASE WHEN {billed} THEN 1 ELSE 0 END), SUM(CASE WHEN record = 'response' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN record = 'session' THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN {billed} THEN COALESCE(audio_in_ms, 0) ELSE 0 END), "
        f"SUM(CASE WHEN {billed} THEN COALESCE(audio_out_ms, 0) ELSE 0 END) "
        f"FROM spend_records{' INDEXED BY spend_records_time' if dialect == 'sqlite' else ''} "
        f"WHERE {' AND '.join(where)} GROUP BY {by} ORDER BY 2 DESC", tuple(params))


@attrs.frozen
class RecordsPage:
    records: list[dict[str, Any]]
    #: Pass back as ``cursor`` for the next (older) page; None: this was the last.
    next_cursor: str | None


@attrs.frozen
class SummaryRow:
    group: str | None
    cost_usd: float
    billed_records: int
    responses: int
    sessions: int
    audio_in_ms: int
    audio_out_ms: int


def _page(rows: list[tuple[Any, ...]], limit: int) -> RecordsPage:
    more = len(rows) > limit
    rows = rows[:limit]
    nxt = f"{rows[-1][0]}:{rows[-1][1]}" if more and rows else None
    return RecordsPage([json.loads(r[2]) for r in rows], nxt)


def run_query(conn: Conn, q: Query) -> list[tuple[Any, ...]]:
    return conn.execute(q.sql, q.params)


async def records_page(ledger: Ledger, key_name: str, *, limit: int = 100, cursor: str | None = None,
                       since: datetime | None = None, until: datetime | None = None) -> RecordsPage:
    q = key_page(key_name, limit=limit, cursor=cursor, since=since, until=until)
    return await ledger.run(lambda conn: _page(run_query(conn, q), limit))


async def session_records(ledger: Ledger, session_id: str) -> list[dict[str, Any]]:
    q = session_query(session_id)
    return await ledger.run(lambda conn: [json.loads(r[2]) for r in run_query(conn, q)])


def _summary_rows(rows: list[tuple[Any, ...]]) -> list[SummaryRow]:
    return [SummaryRow(r[0], float(r[1] or 0), int(r[2] or 0), int(r[3] or 0), int(r[4] or 0), int(r[5] or 0),
                       int(r[6] or 0)) for r in rows]


async def summary(ledger: Ledger, by: SummaryBy, since: datetime, until: datetime, *,
                  key_name: str | None = None) -> list[SummaryRow]:
    q = summary_query(by, since, until, key_name=key_name, dialect=ledger.dialect)
    return await ledger.run(lambda conn: _summary_rows(run_query(conn, q)))


async def count_records(ledger: Ledger) -> int:
    return await ledger.run(lambda conn: int(conn.execute("SELECT COUNT(*) FROM spend_records")[0][0]))
