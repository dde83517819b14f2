"""Per-key spend as the spend log records it: what the state store's totals are rebuilt from
when it holds none (a first start, a new Redis). The log is the audit record; the store is the
fast, shared view of it.

A key's audio use (the ``audio_in_ms`` + ``audio_out_ms`` of its billed records, for
``max_audio_minutes``) is kept beside its spend as a second account in the same totals,
:func:`audio_account`, in milliseconds: charged, made idempotent, kept through an outage and
rebuilt exactly as money is, with no second mechanism.

**Periods and teams** are accounts too. A billed record is booked to its key's lifetime account
(the key's name) and, when the key has a ``budget_period``, to the key's account for the period
the record falls in (:func:`period_account`: the key's name and the period's first day); when the
record carries a ``team``, to the team's lifetime account and, with a team period, the team's
account for that period. A period's budget is checked against its period's account, so a new
period starts from zero on every server at once, and a rebuild after the store lost its data
books each record to the same accounts again (:class:`Book`: the keys' and teams' periods as
configured when it runs)."""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path

import attrs

from ..periods import Period, window
from .log import iter_records
from .records import BILLED_RECORDS


#: Prefix of a key's audio account among the store's totals: a control character no configured key
#: name can hold, so no key's spend account can be mistaken for another key's audio account.
AUDIO_ACCOUNT_PREFIX = "\x1faudio_ms:"


#: Prefix of a team's account (a control character: no key or team name holds one).
TEAM_ACCOUNT_PREFIX = "\x1fteam:"
#: Between an account and the first day of its period, in a period's account.
PERIOD_MARK = "\x1fp:"


def audio_account(key: str) -> str:
    """The name under which ``key``'s audio milliseconds are totalled."""
    return AUDIO_ACCOUNT_PREFIX + key


def team_account(team: str) -> str:
    return TEAM_ACCOUNT_PREFIX + team


@attrs.frozen
class Terms:
    """A key's or a team's budget period (None: its budget is for its lifetime), and the moment
    its 7- and 30-day periods count from (seconds since the epoch)."""

    period: Period | None = None
    anchor_s: float = 0.0


LIFETIME = Terms()


def period_account(account: str, terms: Terms, time_s: float) -> str:
    """The account of ``account``'s spend in the period (of ``terms``) that holds ``time_s``;
    ``account`` itself when ``terms`` has no period."""
    if terms.period is None:
        return account
    return account + PERIOD_MARK + window(terms.period, terms.anchor_s, time_s).name


@attrs.define
class Book:
    """The budget periods of keys and teams (by name), as a rebuild books old records: a key or
    team not in it has a lifetime budget only."""

    keys: Mapping[str, Terms] = attrs.field(factory=dict)
    teams: Mapping[str, Terms] = attrs.field(factory=dict)


def booked_accounts(key: str, team: str | None, time_s: float, key_terms: Terms = LIFETIME,
                    team_terms: Terms = LIFETIME) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Where a billed record's cost and its audio are booked: (charge-id suffix, account) for the
    money, then for the audio. The suffixes keep one record's charges apart (each is applied once)."""
    money = [("", key)]
    audio = [("/audio", audio_account(key))]
    if key_terms.period is not None:
        money.append(("/p", period_account(key, key_terms, time_s)))
        audio.append(("/audio/p", period_account(audio_account(key), key_terms, time_s)))
    if team:
        money.append(("/t", team_account(team)))
        if team_terms.period is not None:
            money.append(("/tp", period_account(team_account(team), team_terms, time_s)))
    return money, audio


def record_time_s(record: Mapping[str, object]) -> float | None:
    """When a record was written: its ``end_time``, else ``time``, else ``start_time``."""
    for name in ("end_time", "time", "start_time"):
        value = record.get(name)
        if isinstance(value, str):
            try:
                when = dt.datetime.fromisoformat(value)
            except ValueError:
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            return when.timestamp()
    return None


def record_audio_ms(record: dict[str, object]) -> float:
    """The audio a billed record measured (sent and received), in milliseconds."""
    total = 0.0
    for name in ("audio_in_ms", "audio_out_ms"):
        value = record.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            total += float(value)
    return total


def record_charges(record: dict[str, object], book: Book | None = None) -> list[tuple[str | None, str, float]]:
    """What a billed record adds to the totals: (charge id, account, amount) for its cost and for
    its audio, in every account it is booked to (:func:`booked_accounts`, periods from ``book``);
    nothing for other records, or for zero amounts."""
    if record.get("record") not in BILLED_RECORDS:
        return []
    key, cost, rid = record.get("key_name"), record.get("cost_usd"), record.get("id")
    if not isinstance(key, str):
        return []
    rid = rid if isinstance(rid, str) else None
    team = record.get("team")
    team = team if isinstance(team, str) and team else None
    book = book or Book()
    key_terms, team_terms = book.keys.get(key, LIFETIME), book.teams.get(team, LIFETIME) if team else LIFETIME
    when = record_time_s(record) if key_terms.period or team_terms.period else None
    money, audio_accounts = booked_accounts(key, team, 0.0 if when is None else when, key_terms, team_terms)
    charges: list[tuple[str | None, str, float]] = []
    if isinstance(cost, (int, float)) and not isinstance(cost, bool) and cost:
        charges += [(None if rid is None else rid + suffix, account, float(cost)) for suffix, account in money]
    audio = record_audio_ms(record)
    if audio:
        charges += [(None if rid is None else rid + suffix, account, audio) for suffix, account in audio_accounts]
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


#: Record ids asked of the ledger at once (``shipped`` in :func:`spend_ledger`).
SHIPPED_CHUNK = 500


def spend_ledger(path: Path, recent: int, book: Book | None = None, *, since_s: float | None = None,
                 shipped: Callable[[list[str]], set[str]] | None = None
                 ) -> tuple[dict[str, float], list[tuple[str | None, str, float]]]:
    """What a state store is rebuilt from: per-account sums of every billed record's charges
    (:func:`record_charges`: its cost, its audio) but the newest ``recent``, and those newest as
    (charge id, account, amount), so the store can count each of them once against a charge of the
    same record that lands while it is being rebuilt. Records are deduplicated by ``id`` as in
    :func:`spend_totals`. ``since_s``: the records written before it are left to the ledger (a
    rebuild whose older records come from there) — but for those ``shipped`` (asked with their ids,
    :data:`SHIPPED_CHUNK` at a time) says the ledger does not hold."""
    older: dict[str, float] = {}
    newest: deque[tuple[str | None, str, float]] = deque()
    seen: set[str] = set()
    held: list[dict[str, object]] = []  # older than since_s: asked about in chunks, in order

    def add(record: dict[str, object]) -> None:
        for charge in record_charges(record, book):
            newest.append(charge)
            if len(newest) > recent:
                _, k, c = newest.popleft()
                older[k] = older.get(k, 0.0) + c

    def flush_held() -> None:
        if not held:
            return
        ids = [str(r["id"]) for r in held]
        known = shipped(ids) if shipped is not None else set(ids)
        for r in held:
            if r["id"] not in known:
                add(r)
        held.clear()

    for _, record in iter_records(path):
        if record.get("record") not in BILLED_RECORDS:
            continue
        rid = record.get("id")
        if isinstance(rid, str):
            if rid in seen:
                continue
            seen.add(rid)
        if since_s is not None:
            when = record_time_s(record)
            if when is None or when < since_s:
                if isinstance(rid, str):  # an id-less record is in the ledger under another id
                    held.append(record)
                    if len(held) >= SHIPPED_CHUNK:
                        flush_held()
                continue
        flush_held()
        add(record)
    flush_held()
    return older, list(newest)
