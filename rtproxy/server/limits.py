"""The gateway's view of the shared limits: the state store, its failure policy, and a cache of
the spend totals of keys with sessions open here.

- :meth:`Limits.admit` asks the store to admit a session (budget, per-key cap, total cap, rate)
  and register its lease; when the store is unreachable it applies ``[state] on_unavailable``:
  ``fail_closed`` refuses with ``state_store_unavailable``, ``fail_open`` admits against this
  process's own :class:`~rtproxy.state.MemoryStore`.
- :meth:`Limits.charge` adds a response's cost; the answer (the key's total, whichever instance
  spent it) decides the mid-session cut-off.
- :meth:`Limits.tick` (every :data:`TICK_S`) renews this process's leases every ``lease_s / 3``
  and refreshes the spend of keys with budgets and open sessions, so a key pushed over its budget
  by another instance is cut off here too.

Store errors are counted, logged at most once per :data:`ERROR_LOG_INTERVAL_S`, and make
``/health`` say degraded until a call succeeds again.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..auth.keys import VirtualKey
from ..config import Config
from ..spend.budgets import spend_totals
from ..state import KeyLimits, MemoryStore, Refusal, StateStore, StateStoreError, open_store

log = logging.getLogger("rtproxy.state")

#: How often the gateway renews leases (when due) and refreshes budgets of open keys.
TICK_S = 1.0
#: A failing state store is reported in the server log at most this often.
ERROR_LOG_INTERVAL_S = 30.0
#: What a token's stored session config is named under in the store.
TOKEN_SESSION_PREFIX = "token_session:"
#: State-store names of GPT-Live session owners (key and model), for its sideband and forks.
LIVE_SESSION_PREFIX = "live_session:"
CALL_PREFIX = "call:"
#: A key refused admission is not predialed (see relay/predial.py) for this long afterwards.
PREDIAL_AFTER_REFUSAL_S = 10.0
#: Keys whose last refusal is remembered (the oldest is forgotten first).
MAX_REMEMBERED_REFUSALS = 4096
UNAVAILABLE = Refusal("state_store_unavailable",
                      "the gateway cannot reach its state store, so it cannot check this key's limits; retry later")


class Limits:
    def __init__(self, config: Config, store: StateStore | None = None) -> None:
        self.config = config
        self.store = store or open_store(config)
        self.fallback = MemoryStore()
        self.policy = config.state.on_unavailable
        self.lease_s = config.state.lease_s
        #: This process, as the owner of its sessions' leases.
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.spent: dict[str, float] = {}
        self.errors = 0
        self.last_error: str | None = None
        self._logged_at = -ERROR_LOG_INTERVAL_S
        self._renewed_at = time.time()
        #: session id -> (key name, held in the fallback store)
        self._held: dict[str, tuple[str, bool]] = {}
        #: key name -> when (monotonic) its last admission was refused
        self._refused_at: dict[str, float] = {}

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    #: Called on each failed store call (the gateway counts them in its metrics).
    on_error: Callable[[], None] | None = None

    def _failed(self, exc: StateStoreError) -> None:
        self.errors += 1
        if self.on_error is not None:
            self.on_error()
        self.last_error = str(exc)
        now = time.monotonic()
        if now - self._logged_at >= ERROR_LOG_INTERVAL_S:
            self._logged_at = now
            log.error("state store (%s) unavailable: %s; policy %s", self.store.name, exc, self.policy)

    def _ok(self) -> None:
        if self.last_error is not None:
            log.warning("state store (%s) is reachable again", self.store.name)
            self.last_error = None

    def limits_of(self, key: VirtualKey) -> KeyLimits:
        return KeyLimits(key=key.name, max_sessions=key.max_sessions,
                         max_sessions_per_minute=key.max_sessions_per_minute, max_budget_usd=key.max_budget_usd,
                         max_open_sessions=self.config.state.max_open_sessions)

    async def seed(self, log_path: Path) -> None:
        """Rebuild the store's spend totals from the spend log if it holds none."""
        try:
            if await self.store.seed_spend(spend_totals(log_path)):
                log.info("state store (%s): spend totals rebuilt from %s", self.store.name, log_path)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
        await self.fallback.seed_spend(spend_totals(log_path))

    async def admit(self, session_id: str, key: VirtualKey) -> Refusal | None:
        limits = self.limits_of(key)
        now = time.time()
        try:
            refusal = await self.store.admit(session_id, self.owner, limits, now=now, lease_s=self.lease_s)
            self._ok()
            held_locally = False
        except StateStoreError as exc:
            self._failed(exc)
            if self.policy == "fail_closed":
                return UNAVAILABLE
            refusal = await self.fallback.admit(session_id, self.owner, limits, now=now, lease_s=self.lease_s)
            held_locally = True
        if refusal is None:
            self._held[session_id] = (key.name, held_locally)
        else:
            self._note_refusal(key.name)
        return refusal

    def _note_refusal(self, key_name: str) -> None:
        refused = self._refused_at
        refused.pop(key_name, None)  # re-inserted last: the dict stays oldest-first
        if len(refused) >= MAX_REMEMBERED_REFUSALS:
            del refused[next(iter(refused))]
        refused[key_name] = time.monotonic()

    def expects_admission(self, key: VirtualKey) -> bool:
        """Whether :meth:`admit` will most likely let ``key`` in, by what this process knows: not
        over its budget (as last refreshed) and not refused in the last
        :data:`PREDIAL_AFTER_REFUSAL_S`. Decides only whether to dial early, never admission."""
        if self.over_budget(key):
            return False
        refused = self._refused_at.get(key.name)
        return refused is None or time.monotonic() - refused >= PREDIAL_AFTER_REFUSAL_S

    async def release(self, session_id: str) -> None:
        key, local = self._held.pop(session_id, ("", False))
        if local:
            await self.fallback.release(session_id, key)
            return
        try:
            await self.store.release(session_id, key)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)  # the lease runs out by itself

    async def budget_refusal(self, key: VirtualKey) -> Refusal | None:
        """Whether ``key`` may not start more work now (minting a token), by its spend."""
        if key.max_budget_usd is None:
            return None
        await self.refresh([key.name])
        if self.spent.get(key.name, 0.0) >= key.max_budget_usd:
            return Refusal("budget_exceeded", f"key {key.name!r} has used its budget of ${key.max_budget_usd:g}")
        return None

    async def keep_token_session(self, ref: str, config: str, ttl_s: float) -> bool:
        """Keep an ephemeral token's session config until the token expires. False when the store
        is unreachable under ``fail_closed`` (kept in this process only under ``fail_open``)."""
        return await self._keep(TOKEN_SESSION_PREFIX + ref, config, ttl_s)

    async def token_session(self, ref: str) -> str | None:
        """The session config kept for a token, or None (expired, or kept by no store we share)."""
        return await self._recall(TOKEN_SESSION_PREFIX + ref)

    async def keep_live_session(self, live_id: str, owner: str, ttl_s: float) -> bool:
        """Remember which key (and model) opened a GPT-Live session, so that its sideband and
        forks are allowed only to that key, on any instance sharing the store."""
        return await self._keep(LIVE_SESSION_PREFIX + live_id, owner, ttl_s)

    async def live_session(self, live_id: str) -> str | None:
        return await self._recall(LIVE_SESSION_PREFIX + live_id)

    async def keep_call(self, call_id: str, owner: str, ttl_s: float) -> bool:
        """Remember which key (and model) made a WebRTC call: its hang-up and sidebands are that
        key's only, on any instance sharing the store."""
        return await self._keep(CALL_PREFIX + call_id, owner, ttl_s)

    async def call(self, call_id: str) -> str | None:
        return await self._recall(CALL_PREFIX + call_id)

    async def _keep(self, name: str, value: str, ttl_s: float) -> bool:
        now = time.time()
        try:
            await self.store.put_blob(name, value, now=now, ttl_s=ttl_s)
            self._ok()
            return True
        except StateStoreError as exc:
            self._failed(exc)
            if self.policy == "fail_closed":
                return False
            await self.fallback.put_blob(name, value, now=now, ttl_s=ttl_s)
            return True

    async def _recall(self, name: str) -> str | None:
        now = time.time()
        try:
            found = await self.store.get_blob(name, now=now)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
            found = None
        if found is None:
            found = await self.fallback.get_blob(name, now=now)
        return found

    async def charge(self, key: str, cost_usd: float) -> None:
        await self.fallback.charge(key, cost_usd)
        try:
            self.spent[key] = await self.store.charge(key, cost_usd)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
            self.spent[key] = self.spent.get(key, 0.0) + cost_usd

    def over_budget(self, key: VirtualKey) -> bool:
        return key.max_budget_usd is not None and self.spent.get(key.name, 0.0) >= key.max_budget_usd

    async def refresh(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        if not wanted:
            return
        try:
            self.spent.update(await self.store.spent(wanted))
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)

    async def tick(self, budget_keys: Iterable[str]) -> None:
        """Renew leases when due; refresh the spend of ``budget_keys``."""
        now = time.time()
        if now - self._renewed_at >= self.lease_s / 3:
            self._renewed_at = now
            shared = [(sid, key) for sid, (key, local) in self._held.items() if not local]
            local = [(sid, key) for sid, (key, is_local) in self._held.items() if is_local]
            await self.fallback.renew(local, now=now, lease_s=self.lease_s)
            try:
                await self.store.renew(shared, now=now, lease_s=self.lease_s)
                self._ok()
            except StateStoreError as exc:
                self._failed(exc)
        await self.refresh(budget_keys)

    def health(self) -> dict[str, Any]:
        return {"ok": self.healthy, "backend": self.store.name, "policy": self.policy, "errors": self.errors,
                "error": self.last_error}

    async def aclose(self) -> None:
        await self.store.aclose()
