"""One state store behind every limit that must hold across processes and servers.

Concurrency caps (per key, and across the deployment), per-key session rates, per-key spend
(budgets, and the mid-session cut-off) and the registry of open sessions live behind
:class:`StateStore`, with two implementations:

- :class:`~rtproxy.state.sqlite.SqliteStore`, the embedded default: one SQLite file in WAL mode
  in the state directory, every admission one ``BEGIN IMMEDIATE`` transaction, so it is exact
  across the worker processes of one host (``--workers N``);
- :class:`~rtproxy.state.redis.RedisStore` (``[state] backend = "redis"``): the same rules as
  Lua scripts, exact across every instance sharing the Redis server.

Sessions are held by **leases**: each process renews the leases of its open sessions every
``lease_s / 3``; a session whose process died (``kill -9``) stops counting once its lease expires.

Spend totals are rebuilt from the JSONL spend log (the audit record) when the store holds none:
a first start, a new Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import attrs

#: The window of ``max_sessions_per_minute``.
RATE_WINDOW_S = 60.0


@attrs.frozen
class KeyLimits:
    """What one admission is checked against."""

    key: str
    max_sessions: int | None = None
    max_sessions_per_minute: int | None = None
    max_budget_usd: float | None = None
    #: Sessions open at once across everything sharing the store (``[state] max_open_sessions``).
    max_open_sessions: int | None = None


@attrs.frozen
class Refusal:
    code: str
    message: str


class StateStoreError(Exception):
    """The store could not be reached or answered garbage; the message names no secret."""


class StateStore(Protocol):
    """The shared state behind admission and budgets. Every method may raise StateStoreError."""

    name: str

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float, lease_s: float
                    ) -> Refusal | None:
        """Atomically: refuse (budget, per-key cap, total cap, rate), or register the session's lease."""

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float, lease_s: float) -> None:
        """Extend the leases of these (session id, key) pairs."""

    async def release(self, session_id: str, key: str) -> None:
        """The session is over: it stops counting."""

    async def charge(self, key: str, cost_usd: float) -> float:
        """Add spend; return the key's new total."""

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        """The keys' spend totals (0 for a key with none)."""

    async def open_sessions(self, key: str, *, now: float) -> int:
        """Sessions of ``key`` holding a live lease."""

    async def seed_spend(self, totals: Mapping[str, float]) -> bool:
        """Set the spend totals if the store has never been seeded; True if these were used."""

    async def put_blob(self, name: str, value: str, *, now: float, ttl_s: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl_s`` (an ephemeral token's session config)."""

    async def get_blob(self, name: str, *, now: float) -> str | None:
        """The value kept under ``name``, or None once it expired (or was never kept here)."""

    async def aclose(self) -> None: ...


def refusal_for(code: str, limits: KeyLimits) -> Refusal:
    """The refusal a store's answer ``code`` stands for, with the message a client sees."""
    messages = {
        "budget_exceeded": f"key {limits.key!r} has used its budget of ${limits.max_budget_usd or 0:g}",
        "too_many_sessions": f"key {limits.key!r} already has {limits.max_sessions} open session(s)",
        "server_at_capacity": "the gateway is at its session limit; retry later",
        "rate_limited": f"key {limits.key!r} may open {limits.max_sessions_per_minute} session(s) per minute",
    }
    return Refusal(code, messages.get(code, code))


def check_limits(limits: KeyLimits, *, spent: float, key_open: int, total_open: int, recent_opens: int
                 ) -> Refusal | None:
    """The admission rule, shared by the stores (the Redis script is the same rule in Lua)."""
    if limits.max_budget_usd is not None and spent >= limits.max_budget_usd:
        return refusal_for("budget_exceeded", limits)
    if limits.max_sessions is not None and key_open >= limits.max_sessions:
        return refusal_for("too_many_sessions", limits)
    if limits.max_open_sessions is not None and total_open >= limits.max_open_sessions:
        return refusal_for("server_at_capacity", limits)
    if limits.max_sessions_per_minute is not None and recent_opens >= limits.max_sessions_per_minute:
        return refusal_for("rate_limited", limits)
    return None
