"""A state store in this process's memory: the limits of one process only.

Used as the ``fail_open`` fallback while the shared store is unreachable (each process then
enforces its own view), and in tests of the policy. It never loses its data, so it has an epoch
from its first rebuild on and never raises :class:`~rtproxy.state.store.StoreLostData`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from .store import CHARGE_ID_TTL_S, RATE_WINDOW_S, Charge, KeyLimits, Refusal, check_limits


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, float]] = {}  # id -> (key, lease expiry)
        self._opens: dict[str, list[float]] = {}
        self._spend: dict[str, float] = {}
        self._epoch: str | None = None
        self._contributors: set[str] = set()
        #: charge id -> when it stops being remembered (oldest first)
        self._charged: dict[str, float] = {}
        self._blobs: dict[str, tuple[str, float]] = {}
        #: blob name -> (owner, bytes), for the owners' quotas
        self._owned: dict[str, tuple[str, int]] = {}

    def _expire(self, now: float) -> None:
        for sid in [s for s, (_, exp) in self._sessions.items() if exp <= now]:
            del self._sessions[sid]

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float | None = None,
                    lease_s: float) -> Refusal | None:
        now = time.time() if now is None else now
        self._expire(now)
        opens = [t for t in self._opens.get(limits.key, []) if t > now - RATE_WINDOW_S]
        self._opens[limits.key] = opens
        refusal = check_limits(limits, spent=self._spend.get(limits.key, 0.0),
                               key_open=sum(1 for k, _ in self._sessions.values() if k == limits.key),
                               total_open=len(self._sessions), recent_opens=len(opens),
                               budget_spent=[self._spend.get(a, 0.0) for a, _, _ in limits.budgets])
        if refusal is None:
            self._sessions[session_id] = (limits.key, now + lease_s)
            if limits.max_sessions_per_minute is not None:
                opens.append(now)
        return refusal

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float | None = None, lease_s: float
                    ) -> list[str]:
        now = time.time() if now is None else now
        lost = []
        for sid, key in session_ids:
            if sid in self._sessions:
                self._sessions[sid] = (key, now + lease_s)
            else:
                lost.append(sid)
        return lost

    async def release(self, session_id: str, key: str) -> None:
        self._sessions.pop(session_id, None)

    def _apply(self, charge: Charge, now: float) -> None:
        if charge.charge_id is not None:
            if charge.charge_id in self._charged:
                return
            self._charged[charge.charge_id] = now + CHARGE_ID_TTL_S
        self._spend[charge.key] = self._spend.get(charge.key, 0.0) + charge.cost_usd

    def _forget_old_charges(self, now: float) -> None:
        charged = self._charged
        while charged:
            oldest = next(iter(charged))
            if charged[oldest] > now:
                break
            del charged[oldest]

    async def charge_batch(self, charges: Sequence[Charge]) -> dict[str, float]:
        now = time.time()
        self._forget_old_charges(now)
        for charge in charges:
            self._apply(charge, now)
        return {c.key: self._spend[c.key] for c in charges if c.key in self._spend}

    async def charge(self, key: str, cost_usd: float, charge_id: str | None = None) -> float:
        await self.charge_batch([Charge(key, cost_usd, charge_id)])
        return self._spend.get(key, 0.0)

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        return {k: self._spend.get(k, 0.0) for k in keys}

    async def open_sessions(self, key: str, *, now: float | None = None) -> int:
        self._expire(time.time() if now is None else now)
        return sum(1 for k, _ in self._sessions.values() if k == key)

    async def epoch(self) -> str | None:
        return self._epoch

    async def rebuild(self, contributor: str, older: Mapping[str, float], recent: Sequence[Charge], *,
                      epoch: str) -> tuple[bool, str]:
        if self._epoch is None:
            self._epoch = epoch
        if contributor in self._contributors:
            return False, self._epoch
        self._contributors.add(contributor)
        for k, v in older.items():
            self._spend[k] = self._spend.get(k, 0.0) + float(v)
        await self.charge_batch(recent)
        return True, self._epoch

    def _sweep_blobs(self, now: float) -> None:
        for stale in [n for n, (_, exp) in self._blobs.items() if exp <= now]:
            del self._blobs[stale]
            self._owned.pop(stale, None)

    async def put_blob(self, name: str, value: str, *, now: float | None = None, ttl_s: float) -> None:
        now = time.time() if now is None else now
        self._sweep_blobs(now)
        self._blobs[name] = (value, now + ttl_s)

    async def put_owned_blob(self, name: str, value: str, owner: str, *, max_count: int, max_bytes: int,
                             now: float | None = None, ttl_s: float) -> bool:
        now = time.time() if now is None else now
        self._sweep_blobs(now)
        size = len(value.encode("utf-8", "surrogatepass"))
        mine = [b for n, (o, b) in self._owned.items() if o == owner and n != name]
        if len(mine) + 1 > max_count or sum(mine) + size > max_bytes:
            return False
        self._blobs[name] = (value, now + ttl_s)
        self._owned[name] = (owner, size)
        return True

    async def get_blob(self, name: str, *, now: float | None = None) -> str | None:
        now = time.time() if now is None else now
        value, expires = self._blobs.get(name, ("", 0.0))
        return value if expires > now else None

    async def aclose(self) -> None:
        pass
