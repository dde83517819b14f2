"""The state store's rules, the same for every backend: caps, rates, budgets, leases, seeding."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from rtproxy.state import KeyLimits, MemoryStore, SqliteStore, StateStore, StateStoreError
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


async def test_spend_is_seeded_once_and_then_only_grows(store: StateStore) -> None:
    assert await store.seed_spend({"k": 2.0, "j": 1.0}) is True
    await store.charge("k", 1.0)
    assert await store.seed_spend({"k": 0.0}) is False  # a second instance starting later
    assert await store.spent(["k", "j"]) == {"k": pytest.approx(3.0), "j": pytest.approx(1.0)}


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
        assert await store.admit("s1", "me", KeyLimits("k", max_sessions=1), now=1, lease_s=LEASE_S) is None
    with pytest.raises(StateStoreError):
        await store.admit("s2", "me", KeyLimits("k", max_sessions=1), now=1, lease_s=LEASE_S)
    with redis_server(tmp_path / "r"):
        # a new, empty Redis: the connection is dialled again and the script loaded again
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
