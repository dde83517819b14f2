"""Limits that survive a Redis restart, a Redis outage, a stalled server and a skewed clock
(issue #26, items 2, 4, 7, 8): real `rtproxy serve` processes where a process must stall, a real
redis-server throughout."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected

from rtproxy.auth.keys import VirtualKey
from rtproxy.server.limits import Limits
from rtproxy.state import KeyLimits
from rtproxy.state.redis import RedisStore

from .conftest import LIMITED_KEY, make_config, start_server
from .helpers import auth_headers, events_until, expect_error_then_close, text_turn, ws_connect
from .redis_server import redis_server
from .test_processes import free_port
from .test_shared_limits import limited_config, serving


def _billed(path: Path, key: str) -> float:
    total = 0.0
    for line in path.read_text().splitlines():
        r = json.loads(line)
        if r.get("record") in ("response", "transcription") and r.get("key_name") == key:
            total += r.get("cost_usd") or 0.0
    return total


async def _until(check: Any, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not await check():
            await trio.sleep(0.05)


async def test_a_redis_that_restarts_empty_is_rebuilt_and_the_budget_still_holds(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        cfg = make_config(tmp_path, state={"backend": "redis", "url": redis.url},
                          keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 1e-9}])
        srv = await start_server(nursery, cfg)
        async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(LIMITED_KEY)) as ws:
            await text_turn(ws)
            await expect_error_then_close(ws, "budget_exceeded", 4429)
        charged = _billed(srv.gateway.spend.path, "limited")
        assert charged > 0
        redis.stop()
    with redis_server(tmp_path / "redis") as redis:  # the same address, an empty server
        # the next admission finds no epoch: the totals are rebuilt from the log first
        with pytest.raises(ConnectionRejected) as refused:
            async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(LIMITED_KEY)):
                pass
        assert refused.value.status_code in (429, 503)
        store = RedisStore(redis.url)

        async def rebuilt() -> bool:
            return (await store.spent(["limited"]))["limited"] == pytest.approx(charged)
        await _until(rebuilt)  # within a tick at the latest, even with no admission
        with pytest.raises(ConnectionRejected) as refused:
            async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(LIMITED_KEY)):
                pass
        assert refused.value.status_code == 429 and b"budget_exceeded" in refused.value.body
        assert srv.gateway.limits.rebuilds >= 2  # start-up, and after the restart
        await store.aclose()


async def test_a_redis_emptied_while_idle_is_rebuilt_by_the_periodic_epoch_check(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        log = tmp_path / "spend.jsonl"
        log.write_text(json.dumps({"record": "response", "id": "rec_1", "key_name": "limited", "cost_usd": 0.25})
                       + "\n")
        cfg = make_config(tmp_path, state={"backend": "redis", "url": redis.url},
                          keys=[{"name": "limited", "key": LIMITED_KEY}])
        await start_server(nursery, cfg)
        store = RedisStore(redis.url)
        assert (await store.spent(["limited"]))["limited"] == pytest.approx(0.25)
        await store._call([["FLUSHALL"]])  # as a restart without persistence leaves it

        async def rebuilt() -> bool:
            return (await store.spent(["limited"]))["limited"] == pytest.approx(0.25)
        await _until(rebuilt)
        await store.aclose()


async def test_charges_made_while_redis_is_unreachable_are_applied_once_when_it_answers(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        cfg = make_config(tmp_path, state={"backend": "redis", "url": redis.url, "timeout_s": 0.3},
                          keys=[{"name": "limited", "key": LIMITED_KEY}])
        srv = await start_server(nursery, cfg)
        store = RedisStore(redis.url)
        async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(LIMITED_KEY)) as ws:
            await text_turn(ws)
            os.kill(redis.proc.pid, signal.SIGSTOP)  # down, but back later with its data
            try:
                for _ in range(2):  # the open session goes on; its charges are kept by the gateway
                    await text_turn(ws, fresh=False)

                async def kept() -> bool:
                    return srv.gateway.limits.pending_charges == 2
                await _until(kept)
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
        billed = _billed(srv.gateway.spend.path, "limited")

        async def applied() -> bool:
            return (await store.spent(["limited"]))["limited"] == pytest.approx(billed)
        await _until(applied)
        assert srv.gateway.limits.pending_charges == 0
        # a replay of the same records (another tick, a rebuild) adds nothing
        await srv.gateway.limits.rebuild()
        for _ in range(3):
            await srv.gateway.limits.tick([])
        assert (await store.spent(["limited"]))["limited"] == pytest.approx(billed)
        await store.aclose()


async def test_a_server_stalled_past_its_lease_ends_its_session_when_the_cap_is_taken(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        state = f'backend = "redis"\nurl = "{redis.url}"'
        (pa, ra), (pb, rb) = (free_port(), free_port()), (free_port(), free_port())
        cfg_a = limited_config(tmp_path / "a", pa, ra, state=state, key="max_sessions = 1")
        cfg_b = limited_config(tmp_path / "b", pb, rb, state=state, key="max_sessions = 1")
        async with serving(tmp_path / "b", cfg_b, pb), serving(tmp_path / "a", cfg_a, pa) as proc_a:
            async with ws_connect(f"ws://127.0.0.1:{ra}/v1/realtime?model=gpt-realtime",
                                  headers=auth_headers(LIMITED_KEY)) as ws_a:
                await events_until(ws_a, "session.created")
                os.kill(proc_a.pid, signal.SIGSTOP)  # a VM pause, a long GC
                try:
                    await trio.sleep(3.0 + 0.5)  # past the lease (limited_config: lease_s = 3)
                    async with ws_connect(f"ws://127.0.0.1:{rb}/v1/realtime?model=gpt-realtime",
                                          headers=auth_headers(LIMITED_KEY)) as ws_b:
                        await events_until(ws_b, "session.created")  # the stalled server's lease ran out
                        os.kill(proc_a.pid, signal.SIGCONT)
                        # the cap holds: the stalled server cannot restore its lease and ends its session
                        await expect_error_then_close(ws_a, "session_lease_lost", 4429)
                        events = await text_turn(ws_b, fresh=False)
                        assert events[-1]["response"]["status"] == "completed"
                finally:
                    os.kill(proc_a.pid, signal.SIGCONT)
            async with httpx.AsyncClient() as http:
                health = (await http.get(f"http://127.0.0.1:{pa}/health")).json()
            assert health["state"]["leases_lost"] == 1


async def test_a_stalled_server_restores_its_lease_when_the_cap_is_free(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        port, rt = free_port(), free_port()
        cfg = limited_config(tmp_path, port, rt, state=f'backend = "redis"\nurl = "{redis.url}"',
                             key="max_sessions = 1")
        async with serving(tmp_path, cfg, port) as proc:
            async with ws_connect(f"ws://127.0.0.1:{rt}/v1/realtime?model=gpt-realtime",
                                  headers=auth_headers(LIMITED_KEY)) as ws:
                await events_until(ws, "session.created")
                os.kill(proc.pid, signal.SIGSTOP)
                await trio.sleep(3.0 + 0.5)
                store = RedisStore(redis.url)
                # another admission sweeps the expired lease (and is refused: nothing else is open)
                await store.admit("probe", "probe", KeyLimits("limited", max_sessions=0), lease_s=3.0)
                assert await store.open_sessions("limited") == 0
                os.kill(proc.pid, signal.SIGCONT)

                async def restored() -> bool:
                    return await store.open_sessions("limited") == 1
                await _until(restored)
                events = await text_turn(ws, fresh=False)  # the session went on
                assert events[-1]["response"]["status"] == "completed"
                await store.aclose()


async def test_a_server_whose_clock_runs_ahead_sweeps_no_other_servers_lease(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with redis_server(tmp_path / "redis") as redis:
        cfg = make_config(tmp_path, state={"backend": "redis", "url": redis.url},
                          keys=[{"name": "limited", "key": LIMITED_KEY, "max_sessions": 1}])
        key = VirtualKey(name="limited", sha256="0" * 64, models=("*",), role="user", max_budget_usd=None,
                         max_sessions=1, max_sessions_per_minute=None, store_prompts=None)
        server_a, server_b = Limits(cfg, RedisStore(redis.url)), Limits(cfg, RedisStore(redis.url))
        await server_a.seed(tmp_path / "spend.jsonl")
        await server_b.seed(tmp_path / "spend.jsonl")
        assert await server_a.admit("on-a", key) is None
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() + 40.0)  # server b's clock, 40 s ahead
        refusal = await server_b.admit("on-b", key)
        assert refusal is not None and refusal.code == "too_many_sessions"
        monkeypatch.setattr(time, "time", real)
        await server_a.aclose()
        await server_b.aclose()


async def test_a_store_rebuilt_after_a_rotation_counts_the_rotated_records_from_the_ledger(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """The ledger holds what rotated away: a Redis emptied after the spend log was rotated gets
    the rotated records back (from the ledger, once) and the new log's (from the host), each booked
    to its month."""
    from datetime import datetime, timedelta, timezone

    now = datetime.now(timezone.utc)
    old = (now - timedelta(minutes=30)).isoformat()
    with redis_server(tmp_path / "redis") as redis:
        log = tmp_path / "spend.jsonl"
        log.write_text("".join(json.dumps({"record": "response", "id": f"rec_old_{i}", "key_name": "limited",
                                           "cost_usd": 0.25, "end_time": old}) + "\n" for i in range(4)))
        cfg = make_config(tmp_path, state={"backend": "redis", "url": redis.url},
                          keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 100,
                                 "budget_period": "monthly"}])
        srv = await start_server(nursery, cfg)
        assert await srv.gateway.shipper.flush()  # the four old records are in the ledger
        log.rename(tmp_path / "spend.jsonl.1")  # rotated away, as logrotate does, then SIGHUP
        srv.gateway.reopen_spend_log()
        srv.gateway.spend.write({"record": "response", "id": "rec_new", "key_name": "limited", "cost_usd": 0.5,
                                 "end_time": now.isoformat()})
        months = {f"limited\x1fp:{t.date().replace(day=1).isoformat()}": 0.0
                  for t in (now, now - timedelta(minutes=30))}
        months[f"limited\x1fp:{(now - timedelta(minutes=30)).date().replace(day=1).isoformat()}"] += 1.0
        months[f"limited\x1fp:{now.date().replace(day=1).isoformat()}"] += 0.5  # (one month but on the 1st)
        store = RedisStore(redis.url)
        await store._call([["FLUSHALL"]])

        async def rebuilt() -> bool:
            got = await store.spent(["limited", *months])
            return got["limited"] == pytest.approx(1.5) and all(got[m] == pytest.approx(v) for m, v in months.items())
        await _until(rebuilt)
        await store.aclose()
