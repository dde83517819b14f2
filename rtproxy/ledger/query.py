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
from datetime import datetime, timezone
from typing import Any, Literal

import attrs

from ..spend.query import SpendFilter
from .db import Conn, Ledger
from .rollup import percentile
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
    if not sep or not t.lstrip("-").isdigit() or not rid or len(t) > 19 or abs(int(t)) >= 2 ** 62:
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


# -- the spend API's queries (/spend/logs, /spend/summary, rtproxy logs) -------------------------------

#: Where a follow starts when it names no batch, and what the API calls the ledger as a "file".
LEDGER_FILE_ID = "ledger"


def _like_prefix(prefix: str) -> str:
    escaped = prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _filters(flt: SpendFilter, *, hourly: bool = False) -> tuple[list[str], list[Any]]:
    """``flt`` as SQL conditions: on ``spend_records`` columns, or (``hourly``) on the rollups'."""
    where: list[str] = []
    params: list[Any] = []
    exact = (("key_name", flt.key_name), ("model", flt.model), ("provider", flt.provider))
    if not hourly:
        exact += (("session_id", flt.session_id), ("record", flt.record), ("status", flt.status))
    for column, value in exact:
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    for column, prefix in (("key_name", flt.key_prefix), ("model", flt.model_prefix)):
        if prefix:
            where.append(f"lower({column}) LIKE ? ESCAPE '\\'")
            params.append(_like_prefix(prefix))
    if not hourly:
        for op, t in ((">=", flt.since), ("<", flt.until)):
            if t is not None:
                where.append(f"COALESCE(start_us, time_us) {op} ?")
                params.append(to_us(t))
    return where, params


def logs_query(flt: SpendFilter, *, limit: int, cursor: str | None = None) -> Query:
    """Matching records newest first (by write time, then id), ``limit + 1`` of them; ``cursor``
    (a previous page's ``next_cursor``) pages further back."""
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be 1 to {MAX_PAGE}")
    where, params = _filters(flt)
    if cursor is not None:
        t, rid = _cursor(cursor)
        where.append("(time_us < ? OR (time_us = ? AND id < ?))")
        params += [t, t, rid]
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return Query(f"SELECT time_us, id, data FROM spend_records{clause} ORDER BY time_us DESC, id DESC LIMIT ?",
                 (*params, limit + 1))


def follow_query(flt: SpendFilter, *, after: int, limit: int) -> Query:
    """Matching records stored by shipping batches after batch ``after``, in the order stored."""
    where, params = _filters(flt)
    where.append("batch_no > ?")
    params.append(after)
    return Query(f"SELECT batch_no, id, data FROM spend_records WHERE {' AND '.join(where)} "
                 "ORDER BY batch_no, time_us, id LIMIT ?", (*params, limit))


@attrs.frozen
class LogsPage:
    records: list[dict[str, Any]]
    next_cursor: str | None
    #: The newest shipping batch the answer covers: pass as ``after`` to follow.
    end_offset: int


def _batch_head(conn: Conn) -> int:
    return int(conn.execute("SELECT n FROM ledger_batches WHERE id = 1")[0][0])


def read_logs(conn: Conn, flt: SpendFilter, *, limit: int, cursor: str | None = None, after: int | None = None
              ) -> LogsPage:
    """One ``/spend/logs`` answer, from one connection (the batch head read first: a follow from
    it misses nothing stored while the page was read)."""
    head = _batch_head(conn)
    if after is None:
        rows = run_query(conn, logs_query(flt, limit=limit, cursor=cursor))
        page = _page(rows, limit)
        return LogsPage(page.records, page.next_cursor, head)
    rows = run_query(conn, follow_query(flt, after=after, limit=limit))
    end = max([head, after, *(int(r[0]) for r in rows)])
    if len(rows) == limit:
        # cut at a batch's edge, so the next follow starts with a whole batch (a batch commits
        # whole); a single batch with more matches than ``limit`` is given its first ``limit``
        last = int(rows[-1][0])
        whole = [r for r in rows if int(r[0]) < last]
        rows, end = (whole, last - 1) if whole else (rows, last)
    return LogsPage([json.loads(r[2]) for r in rows], None, end)


def hourly_queries(flt: SpendFilter, bucket: str, *, by_provider: bool) -> tuple[Query, Query]:
    """The summary's rows and its latency histogram from the hourly rollups (since and until are
    taken to the hour: an hour counts when it starts in the range)."""
    width = 3_600_000_000 if bucket == "hour" else 86_400_000_000
    where, params = _filters(flt, hourly=True)
    for op, t in ((">=", flt.since), ("<", flt.until)):
        if t is not None:
            where.append(f"hour_us {op} ?")
            us = to_us(t)
            params.append(us - us % 3_600_000_000 if op == ">=" else us)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    b = f"(hour_us / {width}) * {width}"
    groups = "key_name, model" + (", provider" if by_provider else "")
    rows = Query(f"SELECT {b} AS b, {groups}, SUM(cost_usd), SUM(sessions), SUM(responses), SUM(unpriced) "
                 f"FROM spend_hourly{clause} GROUP BY {b}, {groups}", tuple(params))
    latency = Query(f"SELECT {b} AS b, bin, SUM(responses) FROM spend_hourly_latency{clause} GROUP BY {b}, bin",
                    tuple(params))
    return rows, latency


def read_summary(conn: Conn, flt: SpendFilter, bucket: str, *, by_provider: bool,
                 max_buckets: int = 744) -> dict[str, Any]:
    """``/spend/summary``'s answer (the shape of rtproxy.spend.summary.summarize) from the rollups."""
    rows_q, latency_q = hourly_queries(flt, bucket, by_provider=by_provider)
    rows = run_query(conn, rows_q)
    bins: dict[int, dict[int, int]] = {}
    for b, bin_, n in run_query(conn, latency_q):
        bins.setdefault(int(b), {})[int(bin_)] = int(n)
    buckets = sorted({int(r[0]) for r in rows})[-max_buckets:]
    kept = set(buckets)

    def iso(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, timezone.utc).isoformat().replace("+00:00", "Z")

    data = []
    for r in sorted(rows, key=lambda r: (int(r[0]), *(str(x) for x in r[1:4]))):
        if int(r[0]) not in kept:
            continue
        provider = {"provider": r[3]} if by_provider else {}
        sums = r[4:] if by_provider else r[3:]
        data.append({"time": iso(int(r[0])), "key_name": r[1], "model": r[2], **provider,
                     "cost_usd": round(float(sums[0] or 0), 10), "sessions": int(sums[1] or 0),
                     "responses": int(sums[2] or 0), "unpriced": int(sums[3] or 0)})
    latency = [{"time": iso(b), "responses": sum(bins.get(b, {}).values()),
                "p50_ms": percentile(bins.get(b, {}), 50), "p95_ms": percentile(bins.get(b, {}), 95)}
               for b in buckets]
    return {"bucket": bucket, "buckets": [iso(b) for b in buckets], "data": data, "latency": latency}


def totals_query(by: SummaryBy, flt: SpendFilter) -> Query:
    """Totals per ``by`` (key, team, model or provider) over whole hours of ``flt``'s range, from
    the hourly rollups: spend, billed records, responses, sessions, unpriced, audio in and out."""
    if by not in _GROUPS:
        raise ValueError(f"by must be one of {', '.join(_GROUPS)}")
    where, params = _filters(flt, hourly=True)
    for op, t in ((">=", flt.since), ("<", flt.until)):
        if t is not None:
            us = to_us(t)
            where.append(f"hour_us {op} ?")
            params.append(us - us % 3_600_000_000 if op == ">=" else us)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return Query(f"SELECT {by}, SUM(cost_usd), SUM(billed), SUM(responses), SUM(sessions), SUM(unpriced), "
                 f"SUM(audio_in_ms), SUM(audio_out_ms) FROM spend_hourly{clause} GROUP BY {by} ORDER BY 2 DESC",
                 tuple(params))


def read_totals(conn: Conn, flt: SpendFilter, by: SummaryBy, *, top: int = 100) -> dict[str, Any]:
    """``/spend/totals``: the period's totals, and its ``top`` groups by spend."""
    rows = run_query(conn, totals_query(by, flt))
    groups = [{by: r[0] or None, "cost_usd": round(float(r[1] or 0), 10), "billed": int(r[2] or 0),
               "responses": int(r[3] or 0), "sessions": int(r[4] or 0), "unpriced": int(r[5] or 0),
               "audio_minutes": round((int(r[6] or 0) + int(r[7] or 0)) / 60_000, 3)} for r in rows]
    total = {name: sum(g[name] for g in groups) for name in ("billed", "responses", "sessions", "unpriced")}
    total["cost_usd"] = round(sum(g["cost_usd"] for g in groups), 10)
    total["audio_minutes"] = round(sum(g["audio_minutes"] for g in groups), 3)
    return {"object": "totals", "by": by, "total": total, "data": groups[:top], "groups": len(groups)}
