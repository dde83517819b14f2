"""Per-key spend as the spend log records it: what the state store's totals are rebuilt from
when it holds none (a first start, a new Redis). The log is the audit record; the store is the
fast, shared view of it.

A key's audio use (the ``audio_in_ms`` + ``audio_out_ms`` of its billed records, for
``max_audio_minutes``) is kept beside its spend as a second account in the same totals,
:func:`audio_account`, in milliseconds: charged, made idempotent, kept through an outage and
rebuilt exactly as money is, with no second mechanism."""

from __future__ import annotations

from collections import deque
from pathlib import Path

from .log import iter_records
from .records import BILLED_RECORDS


#: Prefix of a key's audio account among the store's totals: a control character no configured key
#: name can hold, so no key's spend account can be mistaken for another key's audio account.
AUDIO_ACCOUNT_PREFIX = "\x1faudio_ms:"


def audio_account(key: str) -> str:
    """The name under which ``key``'s audio milliseconds are totalled."""
    return AUDIO_ACCOUNT_PREFIX + key


def record_audio_ms(record: dict[str, object]) -> float:
    """The audio a billed record measured (sent and received), in milliseconds."""
    total = 0.0
    for name in ("audio_in_ms", "audio_out_ms"):
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            total += float(value)
    return total


def record_charges(record: dict[str, object]) -> list[tuple[str | None, str, float]]:
    """What a billed record adds to the totals: (charge id, account, amount) for its cost and for
    its audio; nothing for other records, or for zero amounts."""
    if record.get("record") not in BILLED_RECORDS:
        return []
    key, cost, rid = record.get("key_name"), record.get("cost_usd"), record.get("id")
    if not isinstance(key, str):
        return []
    rid = rid if isinstance(rid, str) else None
    charges: list[tuple[str | None, str, float]] = []
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost:
        charges.append((rid, key, float(cost)))
    audio = record_audio_ms(record)
    if audio:
        charges.append((None if rid is None else rid + "/audio", audio_account(key), audio))
    return charges


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
    """What a state store is rebuilt from: per-account sums of every billed record's charges
    (:func:`record_charges`: its cost, its audio) but the newest ``recent``, and those newest as
    (charge id, account, amount), so the store can count each of them once against a charge of the
    same record that lands while it is being rebuilt. Records are deduplicated by ``id`` as in
    :func:`spend_totals`."""
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
        for charge in record_charges(record):
            newest.append(charge)
            if len(newest) > recent:
                _, k, c = newest.popleft()
                older[k] = older.get(k, 0.0) + c
    return older, list(newest)
