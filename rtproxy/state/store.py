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

Renewal restores a lease that is gone (its process stalled longer than ``lease_s`` and another
admission swept it away) if the key's caps still allow it; when they do not, the store says so
and the gateway ends that session (``session_lease_lost``): a cap holds, whatever stalled.

Time is the store's: Redis scripts read ``TIME`` (every server sharing it agrees, whatever its
own clock says), the embedded store its one host's clock. ``now`` is only passed by tests.

Spend totals are rebuilt from the ledger and the JSONL spend logs (the audit record) when the
store holds none: a first start, a new Redis, a Redis that restarted empty (how the two are split:
rtproxy/server/limits.py ``Limits.rebuild``). A store that has been rebuilt carries
an **epoch** marker; a store without one refuses admissions and charges (:class:`StoreLostData`)
until it is rebuilt, so nothing is ever counted against a total that starts again from zero.
Each spend log is added once per epoch (its *contributor* name: host and path, shared by the
workers of one host), and charges carry the id of their record: a charge replayed after an
outage, or one that lands while a rebuild reads the log, is counted once
(:data:`CHARGE_ID_TTL_S`, :data:`MAX_REBUILD_IDS`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import attrs

#: The window of ``max_sessions_per_minute``.
RATE_WINDOW_S = 60.0
#: How long a store remembers that a record's charge was applied (so a replay is a no-op). Covers
#: an outage of the store this long: older replays would count twice (see Limits.charge).
CHARGE_ID_TTL_S = 3600.0
#: A rebuild adds the newest this many records one by one, by id (each counted once against
#: charges of the same records landing meanwhile); older records are added as per-key sums.
MAX_REBUILD_IDS = 10_000
#: The epoch of a store seeded before epochs existed: its totals already hold every log.
LEGACY_EPOCH = "1"


@attrs.frozen
class Charge:
    """One billed record's cost, applied to its key's total once (by ``charge_id`` when it has one)."""

    key: str
    cost_usd: float
    charge_id: str | None = None


@attrs.frozen
class KeyLimits:
    """What one admission is checked against."""

    key: str
    max_sessions: int | None = None
    max_sessions_per_minute: int | None = None
    max_budget_usd: float | None = None
    #: Sessions open at once across everything sharing the store (``[state] max_open_sessions``).
    max_open_sessions: int | None = None
    #: Further budgets checked at admission: (account, its maximum, the refusal's message) — a
    #: key's budget for its current period, its team's (see rtproxy.spend.budgets).
    budgets: tuple[tuple[str, float, str], ...] = ()


@attrs.frozen
class Refusal:
    code: str
    message: str


class StateStoreError(Exception):
    """The store could not be reached or answered garbage; the message names no secret."""


class StoreLostData(StateStoreError):
    """The store holds no epoch marker: it restarted empty (or never was seeded). Nothing was
    done; rebuild it from the spend log, then call again."""


class StateStore(Protocol):
    """The shared state behind admission and budgets. Every method may raise StateStoreError.

    ``now`` (seconds since the epoch) is for tests; None, as the gateway passes it, is the
    store's own clock."""

    name: str

    async def admit(self, session_id: str, owner: str, limits: KeyLimits, *, now: float | None = None,
                    lease_s: float) -> Refusal | None:
        """Atomically: refuse (budget, per-key cap, total cap, rate), or register the session's
        lease. Raises :class:`StoreLostData` on a store that lost its data."""

    async def renew(self, session_ids: Iterable[tuple[str, str]], *, now: float | None = None, lease_s: float
                    ) -> list[str]:
        """Extend the leases of these (session id, key) pairs; the ids whose lease is gone (not renewed)."""

    async def release(self, session_id: str, key: str) -> None:
        """The session is over: it stops counting."""

    async def charge_batch(self, charges: Sequence[Charge]) -> dict[str, float]:
        """Add each charge once (a charge id already applied is skipped); the new totals of the
        keys charged. Raises :class:`StoreLostData` (nothing applied) on a store that lost its data."""

    async def charge(self, key: str, cost_usd: float, charge_id: str | None = None) -> float:
        """:meth:`charge_batch` of one: the key's new total."""

    async def spent(self, keys: Iterable[str]) -> dict[str, float]:
        """The keys' spend totals (0 for a key with none)."""

    async def open_sessions(self, key: str, *, now: float | None = None) -> int:
        """Sessions of ``key`` holding a live lease."""

    async def epoch(self) -> str | None:
        """The marker of the store's current rebuild; None: it lost its data (or was never seeded)."""

    async def rebuild(self, contributor: str, older: Mapping[str, float], recent: Sequence[Charge], *,
                      epoch: str) -> tuple[bool, str]:
        """Add one spend log's totals once per epoch: starts epoch ``epoch`` if the store has none,
        then, unless ``contributor`` already added its log in the current epoch, adds ``older``
        (per-key sums) and each of ``recent`` once by charge id. (whether this call added, the epoch)."""

    async def put_blob(self, name: str, value: str, *, now: float | None = None, ttl_s: float) -> None:
        """Keep ``value`` under ``name`` for ``ttl_s`` (an ephemeral token's session config)."""

    async def put_owned_blob(self, name: str, value: str, owner: str, *, max_count: int, max_bytes: int,
                             now: float | None = None, ttl_s: float) -> bool:
        """:meth:`put_blob`, counted against ``owner``'s quota: False (nothing kept) when the owner's
        unexpired blobs would be more than ``max_count`` or ``max_bytes`` (UTF-8) with this one."""

    async def get_blob(self, name: str, *, now: float | None = None) -> str | None:
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


def check_limits(limits: KeyLimits, *, spent: float, key_open: int, total_open: int, recent_opens: int,
                 budget_spent: Sequence[float] = ()) -> Refusal | None:
    """The admission rule, shared by the stores (the Redis script is the same rule in Lua).
    ``budget_spent``: the totals of ``limits.budgets``' accounts, in order."""
    if limits.max_budget_usd is not None and spent >= limits.max_budget_usd:
        return refusal_for("budget_exceeded", limits)
    for (_, most, message), used in zip(limits.budgets, budget_spent, strict=True):
        if used >= most:
            return Refusal("budget_exceeded", message)
    if limits.max_sessions is not None and key_open >= limits.max_sessions:
        return refusal_for("too_many_sessions", limits)
    if limits.max_open_sessions is not None and total_open >= limits.max_open_sessions:
        return refusal_for("server_at_capacity", limits)
    if limits.max_sessions_per_minute is not None and recent_opens >= limits.max_sessions_per_minute:
        return refusal_for("rate_limited", limits)
    return None
