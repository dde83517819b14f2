"""``rtproxy logs`` on the ledger: every server's records, every rotated file's, oldest first.

Before reading, the command ships what this host's spend log holds and the ledger lacks (when no
running gateway on this host ships it: the shipping lock says), so a log written by a server that
is stopped is read whole. ``--follow`` then prints the records each later shipping batch stores
(from any server), every :data:`FOLLOW_POLL_S`. ``rtproxy logs --file`` reads a JSONL file
directly instead (rtproxy/server/cli.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import json

import trio

from ..config import Config
from . import open_ledger, shipper_for
from .db import Conn, Ledger, LedgerError, migrate

#: How often ``--follow`` looks for newly stored batches.
FOLLOW_POLL_S = 0.5
#: Records read from the ledger per query.
PAGE = 500
#: Shipping this host's log before reading waits at most this long.
SHIP_FIRST_S = 30.0
#: How long to wait for a running gateway that ships this host's log to have shipped what the log
#: holds now (it ships every half second): past it, the ledger is read as it is.
CATCH_UP_S = 3.0


def ship_local_log(cfg: Config, ledger: Ledger) -> None:
    """Ship this host's spend log to the ledger, or, when a running gateway ships it, wait for that
    gateway to have shipped what the log holds now: a session just ended is in what is read."""
    shipper = shipper_for(cfg, ledger)

    async def ship() -> None:
        if not await shipper.ship_if_unclaimed(SHIP_FIRST_S):
            await shipper.wait_caught_up(CATCH_UP_S)

    trio.run(ship)


def _where(session: str | None, key: str | None) -> tuple[str, list[Any]]:
    where, params = [], []
    if session:
        where.append("session_id LIKE ? ESCAPE '\\'")
        params.append(session.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%")
    if key:
        where.append("key_name = ?")
        params.append(key)
    return (" AND ".join(where), params)


def read_records(ledger: Ledger, session: str | None, key: str | None) -> tuple[Iterator[dict[str, Any]], Callable[[], int]]:
    """Every matching record oldest first (by write time, then id), and the batch head as read
    before the first page (where a follow starts)."""
    head = [ledger.call(lambda c: int(c.execute("SELECT n FROM ledger_batches WHERE id = 1")[0][0]))]
    cond, params = _where(session, key)

    def pages() -> Iterator[dict[str, Any]]:
        after: tuple[int, str] | None = None
        while True:
            where = [cond] if cond else []
            args = list(params)
            if after is not None:
                where.append("(time_us > ? OR (time_us = ? AND id > ?))")
                args += [after[0], after[0], after[1]]
            sql = (f"SELECT time_us, id, data FROM spend_records{' WHERE ' + ' AND '.join(where) if where else ''} "
                   "ORDER BY time_us, id LIMIT ?")
            rows = ledger.call(lambda c: c.execute(sql, (*args, PAGE)))
            for r in rows:
                yield json.loads(r[2])
            if len(rows) < PAGE:
                return
            after = (int(rows[-1][0]), rows[-1][1])

    return pages(), lambda: head[0]


def follow(cfg: Config, ledger: Ledger, session: str | None, key: str | None, after: int,
           emit: Callable[[dict[str, Any]], None]) -> None:
    cond, params = _where(session, key)
    while True:
        time.sleep(FOLLOW_POLL_S)
        ship_local_log(cfg, ledger)  # no gateway here ships it: this command does, as it is written

        def newer(c: Conn, after: int = after) -> list[tuple[Any, ...]]:
            where = " AND ".join([*([cond] if cond else []), "batch_no > ?"])
            return c.execute(f"SELECT batch_no, data FROM spend_records WHERE {where} ORDER BY batch_no, time_us, id",
                             (*params, after))

        for batch_no, data in ledger.call(newer):
            emit(json.loads(data))
            after = max(after, int(batch_no))
        after = max(after, ledger.call(lambda c: int(c.execute("SELECT n FROM ledger_batches WHERE id = 1")[0][0])))


def open_for_reading(cfg: Config) -> Ledger:
    """The config's ledger, migrated, with this host's log shipped to it. Raises LedgerError."""
    ledger = open_ledger(cfg)
    logging.getLogger("rtproxy.ledger").setLevel(logging.WARNING)  # a reader's output is records, not migrations
    try:
        ledger.call(migrate)
        ship_local_log(cfg, ledger)
    except BaseException:
        ledger.close()
        raise
    return ledger


__all__ = ["LedgerError", "follow", "open_for_reading", "read_records"]
