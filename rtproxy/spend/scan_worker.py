"""A spend-log scan, as a value, and the child process that runs them.

A scan parses every line of the JSONL log: CPU-bound Python. In a worker *thread* it still holds
the GIL for most of each switch interval, and the event loop — every session of the process —
waits for it (``make abuse`` measured 330 ms stalls with two scans of 200k lines). So scans run
in child processes (:mod:`rtproxy.spend.scans` keeps them), which share no interpreter lock with
the gateway: the process reads :class:`ScanRequest` values as JSON lines on stdin and answers
each with one JSON line on stdout, ``{"ok": <the answer's JSON text>}`` or ``{"error": "..."}``.

    python -m rtproxy.spend.scan_worker
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import attrs

from .log import iter_records
from .query import SpendFilter, appended_since, newest_first
from .summary import summarize


@attrs.frozen
class ScanRequest:
    """One scan: ``logs`` (a page of ``/spend/logs``) or ``summary`` (``/spend/summary``)."""

    kind: Literal["logs", "summary"]
    path: str
    filter: SpendFilter
    limit: int = 100
    cursor: int | None = None
    after: int | None = None
    file_id: str | None = None
    bucket: str = "hour"
    #: A summary's rows split by provider too (``/spend/summary?split=provider``).
    by_provider: bool = False

    def to_json(self) -> str:
        flt = attrs.asdict(self.filter)
        for name in ("since", "until"):
            if flt[name] is not None:
                flt[name] = flt[name].isoformat()
        return json.dumps({**attrs.asdict(self, recurse=False), "filter": flt}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> ScanRequest:
        raw: dict[str, Any] = json.loads(text)
        flt = dict(raw.pop("filter"))
        for name in ("since", "until"):
            if flt.get(name) is not None:
                flt[name] = datetime.fromisoformat(flt[name])
        return cls(filter=SpendFilter(**flt), **raw)


def run_scan(request: ScanRequest) -> str:
    """The answer's JSON text (what the route sends as is)."""
    path = Path(request.path)
    if request.kind == "summary":
        return json.dumps(summarize((r for _, r in iter_records(path) if request.filter.matches(r)), request.bucket,
                                    by_provider=request.by_provider), separators=(",", ":"))
    if request.after is not None:
        page = appended_since(path, request.filter, after=request.after, limit=request.limit,
                              since_file=request.file_id)
    else:
        page = newest_first(path, request.filter, limit=request.limit, cursor=request.cursor)
    return json.dumps({"object": "list", "data": page.records, "next_cursor": page.next_cursor,
                       "end_offset": page.end_offset, "file_id": page.file_id}, separators=(",", ":"))


#: A scan process runs at this niceness: it takes what CPU the gateway's sessions leave.
SCAN_NICENESS = 10


def main() -> None:
    try:
        os.nice(SCAN_NICENESS)
    except OSError:
        pass  # not permitted here: it runs at the gateway's priority
    for line in sys.stdin:
        try:
            answer = {"ok": run_scan(ScanRequest.from_json(line))}
        except Exception as exc:  # one bad scan answers an error; the worker goes on
            answer = {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}
        sys.stdout.write(json.dumps(answer, separators=(",", ":")) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
