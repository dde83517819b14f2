"""``/spend/logs`` and ``/spend/summary`` answered from the ledger: every server's records, every
rotated file's, through its indexes and hourly rollups (rtproxy/ledger/query.py).

Before reading, this process ships what its own spend log holds (``Shipper.flush``, at most
``FLUSH_S``), so a server's answers include the records it just wrote. At most
:data:`MAX_LEDGER_QUERIES` queries wait or run at once per process; beyond, 429 with
``Retry-After``. When the ledger cannot be reached the routes fall back to scanning this server's
log (``"source": "log"`` in the answer) — a ledger cursor then means nothing, and says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any


from quart import Response

from ..ledger.db import LedgerError
from ..ledger.query import LEDGER_FILE_ID, MAX_PAGE, read_logs, read_summary, read_totals
from ..spend.query import SpendFilter

log = logging.getLogger("rtproxy.spend")

#: Ledger queries waiting or running at once in this process.
MAX_LEDGER_QUERIES = 16
#: A page of /spend/logs from the ledger, at most.
MAX_LEDGER_PAGE = MAX_PAGE
RETRY_AFTER_S = 1


class LedgerReads:
    def __init__(self, gateway: Any, json_error: Callable[..., Response]) -> None:
        self.gateway = gateway
        self.error = json_error
        self.running = 0
        self.failures = 0

    async def _run(self, fn: Callable[[Any], Any]) -> Any:
        """``fn(conn)`` on the ledger after a flush; a Response when refused; None when the ledger failed."""
        if self.running >= MAX_LEDGER_QUERIES:
            response = self.error(429, "too_many_queries", "too many spend queries at once; retry shortly",
                                  "rate_limit_error")
            response.headers["Retry-After"] = str(RETRY_AFTER_S)
            return response
        self.running += 1
        try:
            await self.gateway.shipper.flush()
            return await self.gateway.shipper.ledger.run(fn)
        except LedgerError as exc:
            self.failures += 1
            log.warning("spend query: the ledger failed (%s); reading this server's log instead", exc)
            return None
        finally:
            self.running -= 1

    async def logs(self, flt: SpendFilter, *, limit: int, cursor: str | None, after: int | None) -> Response | None:
        try:
            page = await self._run(lambda conn: read_logs(conn, flt, limit=limit, cursor=cursor, after=after))
        except ValueError as exc:  # a cursor that is no previous page's
            return self.error(400, "invalid_cursor", str(exc))
        if page is None or isinstance(page, Response):
            return page
        body = {"object": "list", "data": page.records, "next_cursor": page.next_cursor,
                "end_offset": page.end_offset, "file_id": LEDGER_FILE_ID, "source": "ledger"}
        return _json(body)

    async def totals(self, flt: SpendFilter, by: str, *, top: int) -> Response | None:
        answer = await self._run(lambda conn: read_totals(conn, flt, by, top=top))  # type: ignore[arg-type]
        if answer is None or isinstance(answer, Response):
            return answer
        return _json(answer)

    async def summary(self, flt: SpendFilter, bucket: str, *, by_provider: bool) -> Response | None:
        answer = await self._run(lambda conn: read_summary(conn, flt, bucket, by_provider=by_provider))
        if answer is None or isinstance(answer, Response):
            return answer
        return _json({**answer, "source": "ledger"})


def _json(body: dict[str, Any]) -> Response:
    # records are JSON already read from JSON: ensure_ascii keeps a lone surrogate a valid escape
    return Response(json.dumps(body, ensure_ascii=True), content_type="application/json")



