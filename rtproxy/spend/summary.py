"""The spend dashboard's figures: spend records in, time buckets × key × model out. No I/O.

One pass over the records :func:`summarize` is given (already filtered by the caller's key
rules): per bucket (an hour or a day, UTC) and per (key, model) — and per provider too when
asked (``by_provider``: each row then also names its ``provider``; without it the rows are
exactly as before, for the clients that read them) — the spend in USD (responses,
transcriptions and GPT-Live seconds, as billed), the sessions that started, the responses, and
the responses' latency (median and 95th percentile of ``duration_ms``, from at most
:data:`MAX_LATENCY_SAMPLES` per bucket: enough for a percentile a chart can show).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from .query import parse_time
from .records import BILLED_RECORDS

Bucket = Literal["hour", "day"]
#: Response durations kept per bucket for its percentiles (the first ones; the count is whole).
MAX_LATENCY_SAMPLES = 5000
#: Buckets one summary may hold (a year of days, or a month of hours).
MAX_BUCKETS = 744
#: Record ids remembered to count a line written twice once: a copytruncate rewrites only the
#: last seconds' lines, so the most recent ids are enough, and memory stays bounded on any log.
MAX_DEDUPE_IDS = 100_000


def bucket_start(t: datetime, bucket: Bucket) -> str:
    t = t.astimezone(UTC)
    t = t.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        t = t.replace(hour=0)
    return t.isoformat().replace("+00:00", "Z")


def _percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def summarize(records: Iterable[dict[str, Any]], bucket: Bucket = "hour", *,
              by_provider: bool = False) -> dict[str, Any]:
    rows: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    latency: dict[str, list[float]] = {}
    latency_count: dict[str, int] = {}
    seen: dict[str, None] = {}  # insertion-ordered: the oldest are forgotten first
    for r in records:
        rid = r.get("id")
        if isinstance(rid, str):
            if rid in seen:  # a line written again after a copytruncate counts once
                continue
            seen[rid] = None
            if len(seen) > MAX_DEDUPE_IDS:
                del seen[next(iter(seen))]
        kind = r.get("record")
        t = parse_time(r.get("start_time") or r.get("time"))
        if t is None or kind not in BILLED_RECORDS | {"session"}:
            continue
        b = bucket_start(t, bucket)
        if b not in latency and len(latency) >= MAX_BUCKETS:
            continue
        latency.setdefault(b, [])
        key = (b, str(r.get("key_name") or ""), str(r.get("model") or ""),
               str(r.get("provider") or "") if by_provider else "")
        row = rows.setdefault(key, {"cost_usd": 0.0, "sessions": 0, "responses": 0, "unpriced": 0})
        cost = r.get("cost_usd")
        if kind in BILLED_RECORDS:
            if isinstance(cost, (int, float)) and not isinstance(cost, bool):
                row["cost_usd"] = round(row["cost_usd"] + cost, 10)
            else:
                row["unpriced"] += 1
        if kind == "session":
            row["sessions"] += 1
        elif kind == "response":
            row["responses"] += 1
            d = r.get("duration_ms")
            if isinstance(d, (int, float)) and not isinstance(d, bool) and d >= 0:
                latency_count[b] = latency_count.get(b, 0) + 1
                if len(latency[b]) < MAX_LATENCY_SAMPLES:
                    latency[b].append(float(d))
    buckets = sorted(latency)
    return {
        "bucket": bucket,
        "buckets": buckets,
        "data": [{"time": b, "key_name": k, "model": m, **({"provider": p} if by_provider else {}), **v}
                 for (b, k, m, p), v in sorted(rows.items())],
        "latency": [{"time": b, "responses": latency_count.get(b, 0), "p50_ms": _percentile(latency[b], 50),
                     "p95_ms": _percentile(latency[b], 95)} for b in buckets],
    }
