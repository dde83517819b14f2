"""The state store's rules, the same for every backend: caps, rates, budgets, leases, seeding."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from rtproxy.state import Charge, KeyLimits, MemoryStore, SqliteStore, StateStore, StateStoreError, StoreLostData
from rtproxy.state import sqlite as sqlite_module
from rtproxy.state.redis import RedisStore

from .redis_server import RedisServer, redis_server

LEASE_S = 30.0


@pytest.fixture
def redis(tmp_path: Path) -> Iterator[RedisServer]:
    with redis_server(tmp_path / "redis") as server:
        yield server


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StateStore]:
    s: StateStore
    if request.param == "memory":
        s = MemoryStore()
    elif request.param == "sqlite":
        s = SqliteStore(tmp_path / "state.sqlite3")
    else:
        server = request.getfixturevalue("redis")
        s = RedisStore(server.url)
    await s.rebuild("test-host:spend.jsonl", {}, [], epoch="e1")  # as the gateway does at start-up
    yield s
    await s.aclose()


async def test_a_key_holds_at_most_max_sessions_until_one_is_released(store: StateStore) -> None:
    limits = KeyLimits("k", max_sessions=2)
    assert await store.admit("s1", "me", limits, now=100, lease_s=LEASE_S) is None
    assert await store.admit("s2", "me", limits, now=100, lease_s=LEASE_S) is None
    refusal = await store.admit("s3", "me", limits, now=100, lease_s=LEASE_S)
    assert refusal is not None and refusal.code == "too_many_sessions"
    assert await store.open_sessions("k", now=100) == 2
    await store.release("s1", "k")
    assert await store.admit("s3", "me", limits, now=100, lease_s=LEASE_S) is None
    # other keys are not affected
    assert await store.admit("o1", "me", KeyLimits("other", max_sessions=1), now=100, lease_s=LEASE_S) is None


async def test_a_lease_not_renewed_stops_counting_and_a_renewed_one_does_not(store: StateStore) -> None:
    limits = KeyLimits("k", max_sessions=1)
    assert await store.admit("dead", "a", limits, now=100, lease_s=10) is None
    assert (await store.admit("x", "b", limits, now=109, lease_s=10)).code == "too_many_sessions"  # type: ignore[union-attr]
    assert await store.admit("x", "b", limits, now=110.5, lease_s=10) is None  # the dead owner's lease ran out
    await store.renew([("x", "k")], now=119, lease_s=10)
    assert (await store.admit("y", "b", limits, now=125, lease_s=10)).code == "too_many_sessions"  # type: ignore[union-attr]
    assert await store.open_sessions("k", now=125) == 1


async def test_the_rate_counts_opens_in_the_last_minute(store: StateStore) -> None:
    limits = KeyLimits("k", max_sessions_per_minute=3)
    for i in range(3):
        assert await store.admit(f"s{i}", "me", limits, now=100 + i, lease_s=LEASE_S) is None
        await store.release(f"s{i}", "k")  # a closed session still counts against the rate
    refusal = await store.admit("s3", "me", limits, now=130, lease_s=LEASE_S)
    assert refusal is not None and refusal.code == "rate_limited" and "3 session(s) per minute" in refusal.message
    assert await store.admit("s3", "me", limits, now=160.5, lease_s=LEASE_S) is None  # the first open aged out


async def test_the_total_cap_counts_every_key(store: StateStore) -> None:
    assert await store.admit("a", "me", KeyLimits("k1", max_open_sessions=2), now=1, lease_s=LEASE_S) is None
    assert await store.admit("b", "me", KeyLimits("k2", max_open_sessions=2), now=1, lease_s=LEASE_S) is None
    refusal = await store.admit("c", "me", KeyLimits("k3", max_open_sessions=2), now=1, lease_s=LEASE_S)
    assert refusal is not None and refusal.code == "server_at_capacity"


async def test_spend_adds_up_and_a_spent_budget_refuses(store: StateStore) -> None:
    assert await store.charge("k", 0.25) == pytest.approx(0.25)
    assert await store.charge("k", 0.5) == pytest.approx(0.75)
    assert await store.spent(["k", "nobody"]) == {"k": pytest.approx(0.75), "nobody": 0.0}
    assert await store.admit("s", "me", KeyLimits("k", max_budget_usd=1.0), now=1, lease_s=LEASE_S) is None
    refusal = await store.admit("t", "me", KeyLimits("k", max_budget_usd=0.75), now=1, lease_s=LEASE_S)
    assert refusal is not None and refusal.code == "budget_exceeded" and "$0.75" in refusal.message


async def test_each_spend_log_is_added_once_per_epoch_and_then_spend_only_grows(store: StateStore) -> None:
    assert await store.rebuild("host-a:spend.jsonl", {"k": 2.0, "j": 1.0}, [], epoch="other") == (True, "e1")
    await store.charge("k", 1.0)
    # the same log again (a worker of the same host, a restart): nothing added
    assert await store.rebuild("host-a:spend.jsonl", {"k": 2.0}, [], epoch="other") == (False, "e1")
    # another server's log: added
    assert await store.rebuild("host-b:spend.jsonl", {"k": 0.5}, [], epoch="other") == (True, "e1")
    assert await store.spent(["k", "j"]) == {"k": pytest.approx(3.5), "j": pytest.approx(1.0)}


async def test_a_charge_is_applied_once_by_its_record_id(store: StateStore) -> None:
    assert await store.charge("k", 0.25, "rec_1") == pytest.approx(0.25)
    assert await store.charge("k", 0.25, "rec_1") == pytest.approx(0.25)  # a replay after an outage
    assert await store.charge_batch([Charge("k", 0.5, "rec_2"), Charge("k", 0.5, "rec_2"), Charge("j", 1.0)]) == {
        "k": pytest.approx(0.75), "j": pytest.approx(1.0)}
    # a rebuild counts its newest records by id too: one already charged is not added again
    assert await store.rebuild("host-b:spend.jsonl", {}, [Charge("k", 0.5, "rec_2"), Charge("k", 2.0, "rec_3")],
                               epoch="e9") == (True, "e1")
    assert await store.spent(["k"]) == {"k": pytest.approx(2.75)}


async def test_renewal_names_the_leases_that_are_gone(store: StateStore) -> None:
    limits = KeyLimits("k", max_sessions=1)
    assert await store.admit("a", "me", limits, now=100, lease_s=10) is None
    assert await store.renew([("a", "k"), ("gone", "k")], now=105, lease_s=10) == ["gone"]
    assert await store.admit("b", "other", limits, now=116, lease_s=10) is None  # a's lease ran out: swept
    assert await store.renew([("a", "k")], now=117, lease_s=10) == ["a"]


async def test_an_owner_keeps_blobs_up_to_its_count_and_bytes(store: StateStore) -> None:
    put = store.put_owned_blob
    assert await put("t1", "x" * 100, "k", max_count=2, max_bytes=250, now=100, ttl_s=10)
    assert await put("t2", "x" * 100, "k", max_count=2, max_bytes=250, now=100, ttl_s=10)
    assert not await put("t3", "x", "k", max_count=2, max_bytes=250, now=100, ttl_s=10)  # count
    assert await put("u1", "x" * 200, "other", max_count=2, max_bytes=250, now=100, ttl_s=10)
    assert not await put("u2", "x" * 51, "other", max_count=2, max_bytes=250, now=100, ttl_s=10)  # bytes
    assert await store.get_blob("t3", now=100) is None and await store.get_blob("t2", now=100) == "x" * 100


async def test_a_store_that_lost_its_data_refuses_to_admit_or_charge_until_rebuilt(tmp_path: Path) -> None:
    for s in (SqliteStore(tmp_path / "fresh.sqlite3"),):
        with pytest.raises(StoreLostData):
            await s.admit("s", "me", KeyLimits("k"), lease_s=LEASE_S)
        with pytest.raises(StoreLostData):
            await s.charge("k", 1.0, "rec_1")
        assert await s.epoch() is None
        assert await s.rebuild("h", {"k": 1.0}, [], epoch="e2") == (True, "e2")
        assert await s.charge("k", 1.0, "rec_1") == pytest.approx(2.0)
        await s.aclose()


async def test_a_redis_restarted_empty_has_no_epoch_and_refuses_until_rebuilt(tmp_path: Path) -> None:
    with redis_server(tmp_path / "r") as server:
        store = RedisStore(server.url)
        await store.rebuild("h", {"k": 1.0}, [], epoch="e1")
        assert await store.charge("k", 1.0, "rec_1") == pytest.approx(2.0)
    with redis_server(tmp_path / "r"):  # the same socket, an empty server
        with pytest.raises(StateStoreError):
            await store.epoch()  # the old connection is gone: the next call dials again
        assert await store.epoch() is None
        with pytest.raises(StoreLostData):
            await store.admit("s", "me", KeyLimits("k", max_budget_usd=1.5), lease_s=LEASE_S)
        with pytest.raises(StoreLostData):
            await store.charge("k", 1.0, "rec_2")
        assert await store.rebuild("h", {"k": 2.0}, [], epoch="e2") == (True, "e2")
        refusal = await store.admit("s", "me", KeyLimits("k", max_budget_usd=1.5), lease_s=LEASE_S)
        assert refusal is not None and refusal.code == "budget_exceeded"
    await store.aclose()


async def test_redis_stamps_leases_with_its_own_clock_when_the_caller_names_none(redis: RedisServer) -> None:
    store = RedisStore(redis.url)
    await store.rebuild("h", {}, [], epoch="e1")
    limits = KeyLimits("k", max_sessions=1)
    assert await store.admit("a", "server-a", limits, lease_s=LEASE_S) is None
    # the gateway passes no clock: Redis's TIME stamps and sweeps every lease
    refusal = await store.admit("b", "server-b-ahead", limits, lease_s=LEASE_S)
    assert refusal is not None and refusal.code == "too_many_sessions"
    assert await store.open_sessions("k") == 1
    await store.aclose()


async def test_concurrent_admissions_never_exceed_the_cap(store: StateStore) -> None:
    limits = KeyLimits("k", max_sessions=2)
    admitted: list[str] = []

    async def one(i: int) -> None:
        if await store.admit(f"s{i}", "me", limits, now=1, lease_s=LEASE_S) is None:
            admitted.append(f"s{i}")

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(one, i)
    assert len(admitted) == 2


async def test_an_unreachable_redis_raises_a_store_error_naming_no_password(tmp_path: Path) -> None:
    store = RedisStore("redis://:hunter2-secret@127.0.0.1:1/0", timeout_s=0.5)
    with pytest.raises(StateStoreError) as info:
        await store.admit("s", "me", KeyLimits("k"), now=1, lease_s=LEASE_S)
    assert "127.0.0.1:1" in str(info.value) and "hunter2" not in str(info.value)
    missing = RedisStore(f"unix://{tmp_path}/none.sock", timeout_s=0.5)
    with pytest.raises(StateStoreError):
        await missing.charge("k", 1.0)


async def test_a_restarted_redis_is_used_again_and_its_scripts_reloaded(tmp_path: Path) -> None:
    with redis_server(tmp_path / "r") as server:
        store = RedisStore(server.url)
        await store.rebuild("h", {}, [], epoch="e1")
        assert await store.admit("s1", "me", KeyLimits("k", max_sessions=1), now=1, lease_s=LEASE_S) is None
    with pytest.raises(StateStoreError):
        await store.admit("s2", "me", KeyLimits("k", max_sessions=1), now=1, lease_s=LEASE_S)
    with redis_server(tmp_path / "r"):
        # a new, empty Redis: the connection is dialled again and the scripts loaded again
        await store.rebuild("h", {}, [], epoch="e2")
        assert await store.admit("s2", "me", KeyLimits("k", max_sessions=1), now=1, lease_s=LEASE_S) is None
    await store.aclose()


# -- the embedded store's two connections (state/sqlite.py) --------------------------------------

class _Recording:
    """A sqlite3 connection that notes each statement run on it (the worker thread's)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self.statements: list[str] = []

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        self.statements.append(sql)
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


async def test_sqlite_calls_run_on_the_event_loop_until_another_process_holds_the_write_lock(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "state.sqlite3")
    await store.rebuild("h", {}, [], epoch="e1")
    thread = store._db = _Recording(store._db)  # type: ignore[assignment]
    limits = KeyLimits("k", max_sessions=2)
    assert await store.admit("s1", "me", limits, now=1, lease_s=LEASE_S) is None
    assert store.deferred == 0 and thread.statements == []  # no worker thread for an uncontended call
    other = sqlite3.connect(str(store.path), isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another worker process, mid-transaction
    results: list[object] = []

    async def admit_s2() -> None:
        results.append(await store.admit("s2", "me", limits, now=1, lease_s=LEASE_S))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(admit_s2)
        await trio.testing.wait_all_tasks_blocked()
        # it neither failed nor blocked the event loop: it waits in the worker thread
        assert results == [] and store.deferred == 1
        other.execute("COMMIT")
    assert results == [None] and "BEGIN IMMEDIATE" in thread.statements
    assert await store.open_sessions("k", now=1) == 2
    # the cap still holds, whichever connection admitted
    assert (await store.admit("s3", "me", limits, now=1, lease_s=LEASE_S)).code == "too_many_sessions"  # type: ignore[union-attr]
    other.close()
    await store.aclose()


async def test_the_wal_is_checkpointed_in_the_worker_thread_every_so_many_inline_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY_COMMITS", 3)
    store = SqliteStore(tmp_path / "state.sqlite3")
    await store.rebuild("h", {}, [], epoch="e1")
    store._inline_writes = 0
    thread = store._db = _Recording(store._db)  # type: ignore[assignment]
    await store.open_sessions("k", now=1)  # a read writes nothing: not counted
    for i in range(3):
        await store.charge("k", 1.0)
    assert thread.statements == []
    assert await store.spent(["k"]) == {"k": 3.0}  # the next call checkpoints first, in the thread
    assert thread.statements[0] == "PRAGMA wal_checkpoint(PASSIVE)"
    assert store._inline_writes == 0
    await store.charge("k", 1.0)
    assert thread.statements.count("PRAGMA wal_checkpoint(PASSIVE)") == 1  # back on the event loop
    await store.aclose()


async def test_every_further_budget_is_checked_and_the_first_spent_one_refuses_with_its_message(
        store: StateStore) -> None:
    """A key's budget for its period, its team's: accounts of their own, checked with the key's caps."""
    await store.rebuild("log", {}, [], epoch="e1")
    limits = KeyLimits("k", budgets=(("k\x1fp:2026-12-01", 1.0, "key spent"),
                                     ("\x1fteam:t\x1fp:2026-12-01", 2.0, "team spent")))
    assert await store.admit("s1", "o", limits, lease_s=30) is None
    await store.charge("\x1fteam:t\x1fp:2026-12-01", 2.0)
    refused = await store.admit("s2", "o", limits, lease_s=30)
    assert refused is not None and (refused.code, refused.message) == ("budget_exceeded", "team spent")
    await store.charge("k\x1fp:2026-12-01", 1.0)
    refused = await store.admit("s3", "o", limits, lease_s=30)
    assert refused is not None and refused.message == "key spent"
    # another period's accounts are untouched: a new period admits again
    assert await store.admit("s4", "o", KeyLimits("k", budgets=(("k\x1fp:2027-01-01", 1.0, "key spent"),)),
                             lease_s=30) is None
