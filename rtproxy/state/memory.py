"""A state store in this process's memory: the limits of one process only.

Used as the ``fail_open`` fallback while the shared store is unreachable (each process then
enforces its own view), and in tests of the policy.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from .store import RATE_WINDOW_S, KeyLimits, Refusal, check_limits


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._sessions: dict[str, tuple[str, float]] = {}  # id -> (key, lease expiry)
        self._opens: dict[str, list[float]] = {}
        self._spend: dict[str, float] = {}
        self._seeded = False
        self._blobs: dict[str, tuple[str, float]] = {}

    def _expire(self, now: float) -> None:
        for sid in [s for s, (_, exp) in self._sessions.items() if exp <= now]:
            del self._sessions[sid]

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float, lease_s: float
                    ) -> Refusal | None:
        self._expire(now)
        opens = [t for t in self._opens.get(limits.key, []) if t > now - RATE_WINDOW_S]
        self._opens[limits.key] = opens
        refusal = check_limits(limits, spent=self._spend.get(limits.key, 0.0),
                               key_open=sum(1 for k, _ in self._sessions.values() if k == limits.key),
                               total_open=len(self._sessions), recent_opens=len(opens))
        if refusal is None:
            self._sessions[session_id] = (limits.key, now + lease_s)
            if limits.max_sessions_per_minute is not None:
                opens.append(now)
        return refusal

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float, lease_s: float) -> None:
        for sid, key in session_ids:
            if sid in self._sessions:
                self._sessions[sid] = (key, now + lease_s)

    async def release(self, session_id: str, key: str) -> None:
        self._sessions.pop(session_id, None)

    async def charge(self, key: str, cost_usd: float) -> float:
        self._spend[key] = self._spend.get(key, 0.0) + cost_usd
        return self._spend[key]

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        return {k: self._spend.get(k, 0.0) for k in keys}

    async def open_sessions(self, key: str, *, now: float) -> int:
        self._expire(now)
        return sum(1 for k, _ in self._sessions.values() if k == key)

    async def seed_spend(self, totals: Mapping[str, float]) -> bool:
        if self._seeded:
            return False
        self._seeded = True
        for k, v in totals.items():
            self._spend[k] = float(v)
        return True

    async def put_blob(self, name: str, value: str, *, now: float, ttl_s: float) -> None:
        for stale in [n for n, (_, exp) in self._blobs.items() if exp <= now]:
            del self._blobs[stale]
        self._blobs[name] = (value, now + ttl_s)

    async def get_blob(self, name: str, *, now: float) -> str | None:
        value, expires = self._blobs.get(name, ("", 0.0))
        return value if expires > now else None

    async def aclose(self) -> None:
        pass
