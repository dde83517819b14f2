"""What the ledger adds to a state store that lost its data (sans-IO query, thin executor).

A store's totals are rebuilt in an *epoch* that names a cut-off time and a shipping batch
(rtproxy/server/limits.py): every billed record written before the cut-off and stored by that
batch or an earlier one is added from the ledger — every server's, every rotated file's — and each
host adds, from its own spend log, the records written since the cut-off and those the ledger did
not hold by that batch (:func:`shipped_ids` tells them apart). Batches up to a number are
committed and never change, so every host sees the same split, whenever it rebuilds.
Records are booked to their accounts as the gateway charges them (rtproxy.spend.budgets:
lifetime, period, team), by the UTC day they were written in: periods start at 00:00 UTC, so a
day's records all fall in one period.
"""

from __future__ import annotations

from typing import Any

from ..spend.budgets import LIFETIME, Book, booked_accounts
from ..spend.records import BILLED_RECORDS
from .db import Conn

_DAY_US = 86_400_000_000
_BILLED = tuple(sorted(BILLED_RECORDS))


def batch_head(conn: Conn) -> int:
    return int(conn.execute("SELECT n FROM ledger_batches WHERE id = 1")[0][0])


def ledger_totals(conn: Conn, cut_us: int, head: int, book: Book) -> dict[str, float]:
    """Every account's total from the ledger's billed records written before ``cut_us`` and
    stored by batch ``head`` or earlier."""
    rows = conn.execute(
        f"SELECT key_name, team, time_us / {_DAY_US}, SUM(COALESCE(cost_usd, 0)), "
        "SUM(CASE WHEN audio_in_ms > 0 THEN audio_in_ms ELSE 0 END + "
        "CASE WHEN audio_out_ms > 0 THEN audio_out_ms ELSE 0 END) "
        f"FROM spend_records WHERE time_us < ? AND batch_no <= ? AND key_name IS NOT NULL "
        f"AND record IN ({', '.join('?' * len(_BILLED))}) GROUP BY 1, 2, 3", (cut_us, head, *_BILLED))
    return totals_of(rows, book)


def shipped_ids(conn: Conn, ids: list[str], cut_us: int, head: int) -> set[str]:
    """Which of ``ids`` :func:`ledger_totals` counts: stored by batch ``head``, written before
    ``cut_us`` (as the ledger dates them: a record with no time of its own by when it was shipped)."""
    if not ids:
        return set()
    return {r[0] for r in conn.execute(
        f"SELECT id FROM spend_records WHERE batch_no <= ? AND time_us < ? AND id IN ({', '.join('?' * len(ids))})",
        (head, cut_us, *ids))}


def totals_of(rows: list[tuple[Any, ...]], book: Book) -> dict[str, float]:
    """(key, team, day number, cost, audio ms) rows as account totals."""
    totals: dict[str, float] = {}
    for key, team, day, cost, audio in rows:
        when = int(day) * 86_400 + 43_200  # noon: any moment of the day books alike
        key_terms = book.keys.get(key, LIFETIME)
        team_terms = book.teams.get(team, LIFETIME) if team else LIFETIME
        money, audio_accounts = booked_accounts(key, team or None, when, key_terms, team_terms)
        if cost:
            for _, account in money:
                totals[account] = totals.get(account, 0.0) + float(cost)
        if audio:
            for _, account in audio_accounts:
                totals[account] = totals.get(account, 0.0) + float(audio)
    return totals
