"""Per-key budgets (``max_budget_usd``) and concurrent-session caps (``max_sessions``).

Spend per key is rebuilt from the spend log at start-up (the sum of ``cost_usd`` of its
response records) and grows with every response record this process writes. With several
workers, each also picks up the others' records by re-reading what was appended to the log since
it last looked (:meth:`Budgets.refresh`, called before each connect check), so a key's budget
holds across workers to within the responses in flight.
"""

from __future__ import annotations

from pathlib import Path

from ..auth.keys import VirtualKey
from .log import iter_records


class Budgets:
    def __init__(self, log_path: Path | None = None) -> None:
        self.spent: dict[str, float] = {}
        self.active: dict[str, int] = {}
        self._path = log_path
        self._offset = 0
        self._own_ids: set[str] = set()

    def refresh(self) -> None:
        """Count response records appended to the log (by any worker) since the last look."""
        if self._path is None:
            return
        try:
            if self._path.stat().st_size <= self._offset:
                return
        except FileNotFoundError:
            return
        for offset, record in iter_records(self._path, start=self._offset):
            self._offset = offset
            rid = record.get("id")
            if rid in self._own_ids:
                self._own_ids.discard(rid)
                continue
            self._count(record)

    def _count(self, record: dict[str, object]) -> None:
        if record.get("record") != "response":
            return
        key = record.get("key_name")
        cost = record.get("cost_usd")
        if isinstance(key, str) and isinstance(cost, (int, float)) and not isinstance(cost, bool):
            self.spent[key] = self.spent.get(key, 0.0) + float(cost)

    def charge(self, record: dict[str, object]) -> None:
        """Count a response record this process just wrote (refresh will skip it)."""
        self._count(record)
        rid = record.get("id")
        if isinstance(rid, str) and self._path is not None:
            self._own_ids.add(rid)

    def over_budget(self, key: VirtualKey) -> bool:
        return key.max_budget_usd is not None and self.spent.get(key.name, 0.0) >= key.max_budget_usd

    def refusal(self, key: VirtualKey) -> tuple[str, str] | None:
        """(code, message) when this key may not open another session now, else None."""
        self.refresh()
        if self.over_budget(key):
            return "budget_exceeded", f"key {key.name!r} has used its budget of ${key.max_budget_usd:g}"
        if key.max_sessions is not None and self.active.get(key.name, 0) >= key.max_sessions:
            return "too_many_sessions", f"key {key.name!r} already has {key.max_sessions} open session(s)"
        return None

    def opened(self, key: VirtualKey) -> None:
        self.active[key.name] = self.active.get(key.name, 0) + 1

    def closed(self, key: VirtualKey) -> None:
        n = self.active.get(key.name, 0) - 1
        if n > 0:
            self.active[key.name] = n
        else:
            self.active.pop(key.name, None)
