"""The gateway's view of the shared limits: the state store, its failure policy, and a cache of
the spend totals of keys with sessions open here.

- :meth:`Limits.admit` asks the store to admit a session (budget, per-key cap, total cap, rate)
  and register its lease; when the store is unreachable it applies ``[state] on_unavailable``:
  ``fail_closed`` refuses with ``state_store_unavailable``, ``fail_open`` admits against this
  process's own :class:`~rtproxy.state.MemoryStore`.
- :meth:`Limits.charge` adds a response's cost, by its record's id; the answer (the key's total,
  whichever instance spent it) decides the mid-session cut-off. A charge the store cannot take
  (it is unreachable; open sessions go on) is kept here (:data:`MAX_PENDING_CHARGES`, then summed
  per key) and applied when the store answers again — by id, so never twice.
- :meth:`Limits.tick` (every :data:`TICK_S`) checks the store's epoch marker (a Redis that
  restarted empty has none, or one another server started: this server's spend log is added to
  it), applies pending charges, renews this process's leases every ``lease_s / 3`` — restoring a
  lease that is gone when the key's caps allow, else naming the session to end — and refreshes the
  spend of keys with budgets and open sessions, so a key pushed over its budget by another
  instance is cut off here too.
- A store that lost its data answers admissions and charges with
  :class:`~rtproxy.state.StoreLostData`: it is rebuilt from the spend log at once (in a worker
  thread, one rebuild at a time) and the call made again.

Store errors are counted, logged at most once per :data:`ERROR_LOG_INTERVAL_S`, and make
``/health`` say degraded until a call succeeds again.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio

from ..auth.keys import KeyStore, VirtualKey
from ..config import Config
from ..ledger.db import Ledger, LedgerError
from ..ledger.rebuild import batch_head, ledger_totals, shipped_ids
from ..periods import window
from ..spend.budgets import LIFETIME, Book, Terms, audio_account, booked_accounts, period_account, spend_ledger, \
    team_account
from ..state import KeyLimits, MemoryStore, Refusal, StateStore, StateStoreError, StoreLostData, open_store
from ..state.store import MAX_REBUILD_IDS, Charge

log = logging.getLogger("rtproxy.state")

T = TypeVar("T")

#: A rebuilt store takes from the ledger the records written before this long before the rebuild
#: began (every server has shipped them by then), and from each host's log the records since.
REBUILD_CUT_BACK_S = 300.0


def epoch_cut(epoch: str) -> tuple[int, int] | None:
    """The cut-off an epoch names — (µs since the epoch, the ledger's shipping batch) — or None:
    an epoch without one."""
    parts = epoch.split(":")
    if len(parts) != 3 or not all(p.isdigit() and len(p) < 19 for p in parts[:2]):
        return None
    return int(parts[0]), int(parts[1])


#: How often the gateway checks the store's epoch, renews leases (when due) and refreshes budgets.
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
#: Charges kept by record id while the store is unreachable; beyond this they are summed per key
#: (still applied when the store is back, but no longer by id).
MAX_PENDING_CHARGES = 100_000
UNAVAILABLE = Refusal("state_store_unavailable",
                      "the gateway cannot reach its state store, so it cannot check this key's limits; retry later")


@attrs.frozen
class Budget:
    """One limit a key's sessions are held against: an account of the store's totals, its maximum,
    and what a session or admission is refused with once the account reaches it."""

    account: str
    maximum: float
    code: str
    message: str
    #: Money (``usd``) or audio (``audio_ms``).
    unit: str = "usd"


def key_terms(key: VirtualKey) -> Terms:
    return Terms(key.budget_period, key.budget_anchor_s) if key.budget_period else LIFETIME


def team_terms(key: VirtualKey) -> Terms:
    team = key.team
    return Terms(team.budget_period, team.anchor_s) if team is not None and team.budget_period else LIFETIME


def budgets_of(key: VirtualKey, now_s: float) -> list[Budget]:
    """Every budget ``key`` is held to at ``now_s``: its money and audio for its current period
    (or lifetime), its team's money for the team's current period."""
    found: list[Budget] = []
    kt = key_terms(key)
    since = "" if kt.period is None else f" for the period from {window(kt.period, kt.anchor_s, now_s).name}"
    if key.max_budget_usd is not None:
        found.append(Budget(period_account(key.name, kt, now_s), key.max_budget_usd, "budget_exceeded",
                            f"key {key.name!r} has used its budget of ${key.max_budget_usd:g}{since}"))
    if key.max_audio_minutes is not None:
        found.append(Budget(period_account(audio_account(key.name), kt, now_s), key.max_audio_minutes * 60_000,
                            "audio_minutes_exceeded",
                            f"key {key.name!r} has used its {key.max_audio_minutes:g} minutes of audio{since}",
                            unit="audio_ms"))
    team = key.team
    if team is not None and team.max_budget_usd is not None:
        tt = team_terms(key)
        team_since = "" if tt.period is None else f" for the period from {window(tt.period, tt.anchor_s, now_s).name}"
        found.append(Budget(period_account(team_account(team.name), tt, now_s), team.max_budget_usd,
                            "budget_exceeded", f"team {team.name!r} (of key {key.name!r}) has used its budget of "
                            f"${team.max_budget_usd:g}{team_since}"))
    return found


def book_of(keys: KeyStore) -> Book:
    """The budget periods of ``keys`` and their teams, for a rebuild."""
    book = Book({}, {})
    for key in keys:
        if key.budget_period is not None:
            book.keys[key.name] = key_terms(key)  # type: ignore[index]
        if key.team is not None and key.team.budget_period is not None:
            book.teams[key.team.name] = team_terms(key)  # type: ignore[index]
    return book


@attrs.frozen
class LostLease:
    """A session whose lease was gone and could not be restored: the key's caps are taken now."""

    session_id: str
    key: str
    refusal: Refusal


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
        self._renewed_at = time.monotonic()
        #: session id -> (key, held in the fallback store)
        self._held: dict[str, tuple[VirtualKey, bool]] = {}
        #: key name -> when (monotonic) its last admission was refused
        self._refused_at: dict[str, float] = {}
        #: The spend log the store is rebuilt from, and its name as a contributor to the store
        #: (the workers of one host share a log, so they add it once between them).
        self.log_path: Path | None = None
        self.contributor = ""
        #: The store's epoch this process has added its log to.
        self._epoch: str | None = None
        self._rebuilding = trio.Lock()
        #: charge id -> (key, cost): charged while the store was unreachable, not applied there yet
        self._pending: dict[str, tuple[str, float]] = {}
        #: key -> cost: pending charges without an id, or beyond MAX_PENDING_CHARGES
        self._pending_sums: dict[str, float] = {}
        self.rebuilds = 0
        self.leases_restored = 0
        self.leases_lost = 0
        #: The clock budget periods are read on (tests move it across a period's end).
        self.clock: Callable[[], float] = time.time
        #: The keys' and teams' budget periods, as a rebuild books old records (the gateway's keys).
        self.book: Callable[[], Book] = Book
        #: The ledger the store's totals are rebuilt from (None: from the spend log alone).
        self.ledger: Ledger | None = None

    @property
    def healthy(self) -> bool:
        return self.last_error is None

    @property
    def pending_charges(self) -> int:
        return len(self._pending) + len(self._pending_sums)

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
        money = [b for b in self.budgets(key) if b.unit == "usd"]
        return KeyLimits(key=key.name, max_sessions=key.max_sessions,
                         max_sessions_per_minute=key.max_sessions_per_minute,
                         max_open_sessions=self.config.state.max_open_sessions,
                         budgets=tuple((b.account, b.maximum, b.message) for b in money))

    def budgets(self, key: VirtualKey) -> list[Budget]:
        return budgets_of(key, self.clock())

    # -- the store's data, and rebuilding it -----------------------------------------------------

    async def seed(self, log_path: Path) -> None:
        """At start-up: add this host's spend log to the store (once per epoch), and to the fallback."""
        self.log_path = log_path
        self.contributor = f"{socket.gethostname()}:{log_path.resolve()}"
        try:
            await self.rebuild()
        except StateStoreError as exc:
            self._failed(exc)
        older, recent = await trio.to_thread.run_sync(spend_ledger, log_path, 0, self.book())
        await self.fallback.rebuild("local", older, [], epoch="local")

    async def rebuild(self) -> None:
        """Add this host's spend to the store if its current epoch lacks it (starting an epoch on a
        store that lost its data). One at a time; logs are read in a worker thread. Raises
        StateStoreError.

        With a ledger (:attr:`ledger`), an epoch names a cut-off time (``<µs>:<random>``,
        :data:`REBUILD_CUT_BACK_S` before the epoch began): the ledger adds every server's records
        written before it — every rotated file's too — once per epoch (contributor ``ledger``),
        and each host adds the records of its spend log written since. Without one (or while it
        cannot be read when an epoch starts), the epoch has no cut-off and each host adds its whole
        log, as before the ledger."""
        if self.log_path is None:
            return
        async with self._rebuilding:
            current = await self.store.epoch()
            if current is not None and current == self._epoch:
                return  # done meanwhile, by the call this one waited for
            epoch = current or await self._propose_epoch()
            cut = await self._add_ledger(epoch)
            shipped = None
            if cut is not None and self.ledger is not None:
                ledger, cut_us, head = self.ledger, cut[0], cut[1]

                def shipped(ids: list[str]) -> set[str]:  # in the worker thread that reads the log
                    return ledger.call(lambda conn: shipped_ids(conn, ids, cut_us, head))
            try:
                older, recent = await trio.to_thread.run_sync(functools.partial(
                    spend_ledger, self.log_path, MAX_REBUILD_IDS, self.book(),
                    since_s=None if cut is None else cut[0] / 1_000_000, shipped=shipped))
            except LedgerError as exc:
                raise StateStoreError(f"the store's spend is rebuilt with the ledger, which cannot be read: {exc}") \
                    from None
            added, self._epoch = await self.store.rebuild(
                self.contributor, older, [Charge(k, c, rid) for rid, k, c in recent], epoch=epoch)
            self._ok()
            if added:
                self.rebuilds += 1
                how = "rebuilt" if current is None else "added to the store's totals"
                # the first one is a start-up's routine; any later one means the store lost its data
                log.log(logging.INFO if self.rebuilds == 1 else logging.WARNING,
                        "state store (%s): spend totals %s from %s (%d key(s), epoch %s)", self.store.name,
                        how, self.log_path, len(older) + len({k for _, k, _ in recent}), self._epoch)

    async def _propose_epoch(self) -> str:
        """A new epoch's name: with a cut-off time when the ledger can be read now."""
        if self.ledger is None:
            return secrets.token_hex(8)
        try:
            with trio.fail_after(self.ledger.timeout_s):
                head = await self.ledger.run(batch_head)
        except (LedgerError, trio.TooSlowError) as exc:
            log.error("state store (%s): the ledger cannot be read (%s): each server adds its whole spend log "
                      "(records in rotated logs are not counted)", self.store.name, exc)
            return secrets.token_hex(8)
        # a whole second: a record's time read as seconds (the log) and as µs (the ledger) falls on
        # the same side of it
        cut_us = int(self.clock() - REBUILD_CUT_BACK_S) * 1_000_000
        return f"{max(cut_us, 0)}:{head}:{secrets.token_hex(8)}"

    async def _add_ledger(self, epoch: str) -> tuple[int, int] | None:
        """Add the ledger's records before ``epoch``'s cut-off (once per epoch, whoever adds them):
        the cut-off (µs, shipping batch) from which this host's log is added, or None (an
        epoch without one: the whole log). Raises StateStoreError when the ledger cannot be read."""
        cut = epoch_cut(epoch)
        if cut is None or self.ledger is None:
            return None
        cut_us, head = cut
        book = self.book()
        try:
            totals = await self.ledger.run(lambda conn: ledger_totals(conn, cut_us, head, book))
        except LedgerError as exc:
            raise StateStoreError(f"the store's spend is rebuilt from the ledger, which cannot be read: {exc}") \
                from None
        added, _ = await self.store.rebuild("ledger", totals, [], epoch=epoch)
        if added:
            log.info("state store (%s): %d account(s) added from the ledger (records before %s)", self.store.name,
                     len(totals), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cut_us / 1e6)))
        return cut_us, head

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """A store call that a store without its data refuses: rebuilt, then called once more."""
        try:
            return await fn()
        except StoreLostData as exc:
            log.warning("state store (%s) lost its data (%s): rebuilding it from the spend log", self.store.name, exc)
            await self.rebuild()
            return await fn()

    async def check_epoch(self) -> None:
        """A store whose epoch is not the one this process added its log to (it restarted empty, or
        another server rebuilt it since) gets this host's log now. Raises StateStoreError."""
        if await self.store.epoch() != self._epoch:
            await self.rebuild()

    # -- admission and leases ------------------------------------------------------------------------

    async def admit(self, session_id: str, key: VirtualKey) -> Refusal | None:
        audio = [b for b in self.budgets(key) if b.unit == "audio_ms"]
        if audio:  # the store's admission knows money, not minutes
            await self.refresh([b.account for b in audio])
            refusal = self._over(audio)
            if refusal is not None:
                self._note_refusal(key.name)
                return refusal
        limits = self.limits_of(key)
        try:
            refusal = await self._call(lambda: self.store.admit(session_id, self.owner, limits, lease_s=self.lease_s))
            self._ok()
            held_locally = False
        except StateStoreError as exc:
            self._failed(exc)
            if self.policy == "fail_closed":
                return UNAVAILABLE
            refusal = await self.fallback.admit(session_id, self.owner, limits, lease_s=self.lease_s)
            held_locally = True
        if refusal is None:
            self._held[session_id] = (key, held_locally)
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
        if self.over_limit(key) is not None:
            return False
        refused = self._refused_at.get(key.name)
        return refused is None or time.monotonic() - refused >= PREDIAL_AFTER_REFUSAL_S

    async def release(self, session_id: str) -> None:
        key, local = self._held.pop(session_id, (None, False))
        name = key.name if key is not None else ""
        if local:
            await self.fallback.release(session_id, name)
            return
        try:
            await self.store.release(session_id, name)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)  # the lease runs out by itself

    async def _renew(self) -> list[LostLease]:
        """Renew every lease held here; restore those that are gone where the key's caps allow
        (rate and budget aside: the session is not new, and its budget has its own cut-off)."""
        shared = [(sid, key.name) for sid, (key, local) in self._held.items() if not local]
        local = [(sid, key.name) for sid, (key, is_local) in self._held.items() if is_local]
        await self.fallback.renew(local, lease_s=self.lease_s)
        gone = await self.store.renew(shared, lease_s=self.lease_s)
        lost: list[LostLease] = []
        for sid in gone:
            held = self._held.get(sid)
            if held is None:
                continue  # released meanwhile
            key = held[0]
            limits = attrs.evolve(self.limits_of(key), max_sessions_per_minute=None, max_budget_usd=None, budgets=())
            refusal = await self._call(lambda: self.store.admit(sid, self.owner, limits, lease_s=self.lease_s))
            if refusal is None:
                self.leases_restored += 1
                log.warning("session %s: its lease had expired (this server stalled or lost the store for over "
                            "%g s); restored", sid, self.lease_s)
            else:
                self.leases_lost += 1
                self._held.pop(sid, None)
                lost.append(LostLease(sid, key.name, refusal))
        return lost

    # -- spend ---------------------------------------------------------------------------------------

    async def budget_refusal(self, key: VirtualKey) -> Refusal | None:
        """Whether ``key`` may not start more work now (minting a token), by its spend, its team's
        and its audio minutes."""
        budgets = self.budgets(key)
        if not budgets:
            return None
        await self.refresh([b.account for b in budgets])
        return self._over(budgets)

    def _over(self, budgets: Iterable[Budget]) -> Refusal | None:
        for b in budgets:
            if self.spent.get(b.account, 0.0) >= b.maximum:
                return Refusal(b.code, b.message)
        return None

    def audio_left_ms(self, key: VirtualKey) -> float | None:
        """Milliseconds of audio ``key`` has left (as last refreshed or charged here); None: no limit."""
        audio = [b for b in self.budgets(key) if b.unit == "audio_ms"]
        if not audio:
            return None
        return min(b.maximum - self.spent.get(b.account, 0.0) for b in audio)

    def over_limit(self, key: VirtualKey) -> Refusal | None:
        """``key`` has used its budget, its team's, or its audio minutes (as last refreshed or
        charged here): its sessions end, and it starts nothing new."""
        return self._over(self.budgets(key))

    def stop_reason(self, key: VirtualKey) -> tuple[str, str] | None:
        """:meth:`over_limit` as the (error code, message) a session is ended with."""
        over = self.over_limit(key)
        return None if over is None else (over.code, over.message)

    def limited_accounts(self, key: VirtualKey) -> list[str]:
        """The totals a key's open sessions are held against (refreshed each tick)."""
        return [b.account for b in self.budgets(key)]

    async def charge(self, key: str, cost_usd: float, charge_id: str | None = None, *, audio_ms: float = 0.0,
                     terms: VirtualKey | None = None, team: str | None = None) -> None:
        """Add a billed record's cost and its audio to every account it is booked to
        (:func:`~rtproxy.spend.budgets.booked_accounts`: the key's, for its lifetime and its
        current period (by ``terms``, the key as it stands), and ``team``'s): in the store (once,
        by ``charge_id``), or, while the store cannot be reached, here until it can."""
        kt = key_terms(terms) if terms is not None else LIFETIME
        tt = team_terms(terms) if terms is not None and terms.team is not None and terms.team.name == team else LIFETIME
        money, audio = booked_accounts(key, team, self.clock(), kt, tt)
        def cid(suffix: str) -> str | None:
            return None if charge_id is None else charge_id + suffix
        charges = [Charge(account, cost_usd, cid(suffix)) for suffix, account in money] if cost_usd else []
        if audio_ms:
            charges += [Charge(account, audio_ms, cid(suffix)) for suffix, account in audio]
        if not charges:
            return
        for c in charges:
            await self.fallback.charge(c.key, c.cost_usd, c.charge_id)
        try:
            await self.apply_pending()
            totals = await self._call(lambda: self.store.charge_batch(charges))
            self.spent.update(totals)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
            for c in charges:
                self.spent[c.key] = self.spent.get(c.key, 0.0) + c.cost_usd
                self._keep_pending(c.key, c.cost_usd, c.charge_id)

    def _keep_pending(self, key: str, cost_usd: float, charge_id: str | None) -> None:
        if charge_id is not None and (charge_id in self._pending or len(self._pending) < MAX_PENDING_CHARGES):
            self._pending[charge_id] = (key, cost_usd)
        else:
            self._pending_sums[key] = self._pending_sums.get(key, 0.0) + cost_usd

    async def apply_pending(self) -> None:
        """Apply the charges kept while the store was unreachable. Raises StateStoreError (they stay kept)."""
        if not self._pending and not self._pending_sums:
            return
        charges = [Charge(k, c, cid) for cid, (k, c) in self._pending.items()]
        charges += [Charge(k, c) for k, c in self._pending_sums.items()]
        totals = await self._call(lambda: self.store.charge_batch(charges))
        self._pending.clear()
        self._pending_sums.clear()
        self.spent.update(totals)
        log.warning("state store (%s): %d charge(s) made while it was unreachable applied", self.store.name,
                    len(charges))

    async def refresh(self, keys: Iterable[str]) -> None:
        wanted = list(keys)
        if not wanted:
            return
        try:
            totals = await self.store.spent(wanted)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
            # what this process has not seen yet is read from its own log's totals (the fallback,
            # seeded at start-up and charged since), never taken as nothing
            unknown = [k for k in wanted if k not in self.spent]
            if unknown:
                self.spent.update(await self.fallback.spent(unknown))
            return
        pending: dict[str, float] = dict(self._pending_sums)
        for k, c in self._pending.values():
            pending[k] = pending.get(k, 0.0) + c
        for k, v in totals.items():
            self.spent[k] = v + pending.get(k, 0.0)  # charges not applied there yet still count here

    async def tick(self, budget_keys: Iterable[str]) -> list[LostLease]:
        """The store's epoch, pending charges, leases when due, the totals of ``budget_keys``
        (accounts: :meth:`limited_accounts`). The
        sessions whose leases were lost and could not be restored (the caller ends them)."""
        lost: list[LostLease] = []
        try:
            await self.check_epoch()
            await self.apply_pending()
            now = time.monotonic()
            if now - self._renewed_at >= self.lease_s / 3:
                self._renewed_at = now
                lost = await self._renew()
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
        await self.refresh(budget_keys)
        return lost

    # -- blobs ---------------------------------------------------------------------------------------

    async def keep_token_session(self, ref: str, config: str, ttl_s: float, owner: str) -> bool | None:
        """Keep an ephemeral token's session config until the token expires, counted against the
        ``owner`` key's quota (``[state] max_token_sessions_per_key``, ``max_token_session_bytes_per_key``).
        True: kept; False: over the quota; None: the store is unreachable under ``fail_closed``
        (under ``fail_open`` it is kept in this process only)."""
        st = self.config.state

        def put(store: StateStore) -> Awaitable[bool]:
            return store.put_owned_blob(TOKEN_SESSION_PREFIX + ref, config, owner,
                                        max_count=st.max_token_sessions_per_key,
                                        max_bytes=st.max_token_session_bytes_per_key, ttl_s=ttl_s)
        try:
            kept = await put(self.store)
            self._ok()
            return kept
        except StateStoreError as exc:
            self._failed(exc)
            if self.policy == "fail_closed":
                return None
            return await put(self.fallback)

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
        try:
            await self.store.put_blob(name, value, ttl_s=ttl_s)
            self._ok()
            return True
        except StateStoreError as exc:
            self._failed(exc)
            if self.policy == "fail_closed":
                return False
            await self.fallback.put_blob(name, value, ttl_s=ttl_s)
            return True

    async def _recall(self, name: str) -> str | None:
        try:
            found = await self.store.get_blob(name)
            self._ok()
        except StateStoreError as exc:
            self._failed(exc)
            found = None
        if found is None:
            found = await self.fallback.get_blob(name)
        return found

    def health(self) -> dict[str, Any]:
        return {"ok": self.healthy, "backend": self.store.name, "policy": self.policy, "errors": self.errors,
                "error": self.last_error, "epoch": self._epoch, "rebuilds": self.rebuilds,
                "pending_charges": self.pending_charges, "leases_restored": self.leases_restored,
                "leases_lost": self.leases_lost}

    async def aclose(self) -> None:
        await self.store.aclose()
