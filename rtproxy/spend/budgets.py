"""Per-key spend as the spend log records it: what the state store's totals are rebuilt from
when it holds none (a first start, a new Redis). The log is the audit record; the store is the
fast, shared view of it."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from .log import iter_records
from .records import BILLED_RECORDS


def spend_totals(path: Path) -> dict[str, float]:
    """The sum of ``cost_usd`` of every billed record (responses, input transcriptions), per
    ``key_name``; a record written again after a copytruncate (the same ``id``) counts once."""
    totals: dict[str, float] = {}
    seen: set[str] = set()
    for _, record in iter_records(path):
        if record.get("record") not in BILLED_RECORDS:
            continue
        rid = record.get("id")
        if isinstance(rid, str):
            if rid in seen:
                continue
            seen.add(rid)
        key, cost = record.get("key_name"), record.get("cost_usd")
        if isinstance(key, str) and isinstance(cost, (int, float)) and not isinstance(cost, bool):
            totals[key] = totals.get(key, 0.0) + float(cost)
    return totals


def spend_ledger(path: Path, recent: int) -> tuple[dict[str, float], list[tuple[str | None, str, float]]]:
    """What a state store is rebuilt from: per-key sums of every billed record but the newest
    ``recent``, and those newest as (record id, key, cost), so the store can count each of them
    once against a charge of the same record that lands while it is being rebuilt. Records are
    deduplicated by ``id`` as in :func:`spend_totals`."""
    older: dict[str, float] = {}
    newest: deque[tuple[str | None, str, float]] = deque()
    seen: set[str] = set()
    for _, record in iter_records(path):
        if record.get("record") not in BILLED_RECORDS:
            continue
        rid = record.get("id")
        if isinstance(rid, str):
            if rid in seen:
                continue
            seen.add(rid)
        key, cost = record.get("key_name"), record.get("cost_usd")
        if not (isinstance(key, str) and isinstance(cost, (int, float)) and not isinstance(cost, bool)) or not cost:
            continue
        newest.append((rid if isinstance(rid, str) else None, key, float(cost)))
        if len(newest) > recent:
            _, k, c = newest.popleft()
            older[k] = older.get(k, 0.0) + c
    return older, list(newest)
