"""Limits that hold across worker processes (the embedded store) and across servers (Redis),
tried with real `rtproxy serve` processes and a real redis-server."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import trio
from trio_websocket import ConnectionRejected

from .conftest import LIMITED_KEY
from .helpers import auth_headers, events_until, expect_error_then_close, text_turn, write_server_config, ws_connect
from .redis_server import redis_get, redis_server
from .test_processes import BIN, free_port, server_process


def limited_config(directory: Path, port: int, rt_port: int, *, state: str = "", key: str = "") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    cfg = write_server_config(directory, port, rt_port)
    cfg.write_text(cfg.read_text() + f"""
[[keys]]
name = "limited"
key = "env:TEST_LIMITED_KEY"
{key}
[state]
lease_s = 3.0
{state}
""")
    return cfg


@asynccontextmanager
async def serving(directory: Path, cfg: Path, port: int, *extra: str) -> AsyncIterator[trio.Process]:
    async with server_process([str(BIN / "rtproxy"), "serve", "--config", str(cfg), *extra], directory, port,
                              extra_env={"TEST_LIMITED_KEY": LIMITED_KEY}) as proc:
        yield proc


async def connect_many(urls: list[str], n: int, hold: trio.Event) -> tuple[int, list[int]]:
    """Open ``n`` sessions at once (round robin over ``urls``) and keep the accepted ones open
    until ``hold`` is set; returns (accepted, statuses of the refused)."""
    accepted = 0
    refused: list[int] = []
    all_tried = trio.Event()
    tried = 0

    async def one(url: str) -> None:
        nonlocal accepted, tried
        try:
            async with ws_connect(url, headers=auth_headers(LIMITED_KEY)) as ws:
                await ws.get_message()  # session.created: the session is open
                accepted += 1
                tried += 1
                if tried == n:
                    all_tried.set()
                await hold.wait()
        except ConnectionRejected as exc:
            refused.append(exc.status_code)
            tried += 1
            if tried == n:
                all_tried.set()

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, urls[i % len(urls)])
        with trio.fail_after(30):
            await all_tried.wait()
        result = (accepted, sorted(refused))
        hold.set()
    return result


async def test_four_workers_hold_a_key_to_exactly_max_sessions(tmp_path: Path) -> None:
    port, rt_port = free_port(), free_port()
    cfg = limited_config(tmp_path, port, rt_port, key="max_sessions = 2")
    async with serving(tmp_path, cfg, port, "--workers", "4"):
        accepted, refused = await connect_many([f"ws://127.0.0.1:{rt_port}/v1/realtime?model=gpt-realtime"],
                                               20, trio.Event())
    assert accepted == 2 and refused == [429] * 18


async def test_two_servers_sharing_redis_hold_caps_rates_and_budgets(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        ports = [(free_port(), free_port()) for _ in range(2)]
        state = f'backend = "redis"\nurl = "{redis.url}"'
        async with AsyncExitStack() as stack:
            for i, (port, rt) in enumerate(ports):
                cfg = limited_config(tmp_path / f"s{i}", port, rt, state=state,
                                     key="max_sessions = 2\nmax_sessions_per_minute = 6\nmax_budget_usd = 0.0000001")
                await stack.enter_async_context(serving(tmp_path / f"s{i}", cfg, port))
            urls = [f"ws://127.0.0.1:{rt}/v1/realtime?model=gpt-realtime" for _, rt in ports]
            accepted, refused = await connect_many(urls, 20, trio.Event())
            assert accepted == 2 and refused == [429] * 18
            # rate: 2 opened above; 4 more fit in the minute, wherever they go, then no more
            opened = 0
            for i in range(8):
                try:
                    async with ws_connect(urls[i % 2], headers=auth_headers(LIMITED_KEY)) as ws:
                        await ws.get_message()
                        opened += 1
                        if opened == 1:
                            await text_turn(ws, fresh=False)  # spends: over the tiny budget now
                            # the charge lands in Redis just after the record is written, which
                            # is just after the client saw response.done: wait for it
                            with trio.fail_after(10):
                                while redis_get(redis.socket, "rtproxy:spend:limited") is None:
                                    await trio.sleep(0.02)
                except ConnectionRejected as exc:
                    refused.append(exc.status_code)
            assert opened == 1  # the first spent the budget, on server 0; both servers then refuse
            async with httpx.AsyncClient() as http:
                for port, _ in ports:
                    assert (await http.get(f"http://127.0.0.1:{port}/health")).json()["state"]["backend"] == "redis"


async def test_a_killed_server_frees_its_sessions_within_the_lease(tmp_path: Path) -> None:
    with redis_server(tmp_path / "redis") as redis:
        state = f'backend = "redis"\nurl = "{redis.url}"'
        (pa, ra), (pb, rb) = (free_port(), free_port()), (free_port(), free_port())
        cfg_a = limited_config(tmp_path / "a", pa, ra, state=state, key="max_sessions = 1")
        cfg_b = limited_config(tmp_path / "b", pb, rb, state=state, key="max_sessions = 1")
        async with serving(tmp_path / "b", cfg_b, pb):
            async with serving(tmp_path / "a", cfg_a, pa) as proc_a:
                url_b = f"ws://127.0.0.1:{rb}/v1/realtime?model=gpt-realtime"
                async with ws_connect(f"ws://127.0.0.1:{ra}/v1/realtime?model=gpt-realtime",
                                      headers=auth_headers(LIMITED_KEY)) as ws_a:
                    await ws_a.get_message()
                    try:
                        async with ws_connect(url_b, headers=auth_headers(LIMITED_KEY)):
                            raise AssertionError("server b admitted a second session for the key")
                    except ConnectionRejected as exc:
                        assert exc.status_code == 429
                    os.kill(proc_a.pid, signal.SIGKILL)
                    await proc_a.wait()
            # within the lease (3 s) the dead server's session stops counting
            with trio.fail_after(3.0 + 2.0):
                while True:
                    try:
                        async with ws_connect(url_b, headers=auth_headers(LIMITED_KEY)) as ws:
                            await ws.get_message()
                            break
                    except ConnectionRejected:
                        await trio.sleep(0.2)


async def test_a_stopped_redis_fails_closed_and_health_says_so(tmp_path: Path) -> None:
    port, rt = free_port(), free_port()
    with redis_server(tmp_path / "redis") as redis:
        cfg = limited_config(tmp_path, port, rt, state=f'backend = "redis"\nurl = "{redis.url}"\ntimeout_s = 0.5')
        async with serving(tmp_path, cfg, port):
            url = f"ws://127.0.0.1:{rt}/v1/realtime?model=gpt-realtime"
            async with ws_connect(url, headers=auth_headers(LIMITED_KEY)) as open_ws:
                await open_ws.get_message()
                redis.stop()
                try:
                    async with ws_connect(url, headers=auth_headers(LIMITED_KEY)):
                        raise AssertionError("admitted without its state store")
                except ConnectionRejected as exc:
                    assert exc.status_code == 503 and b"state_store_unavailable" in exc.body
                # the open session goes on
                events = await text_turn(open_ws, fresh=False)
                assert events[-1]["response"]["status"] == "completed"
                async with httpx.AsyncClient() as http:
                    health = (await http.get(f"http://127.0.0.1:{port}/health")).json()
                assert health["status"] == "degraded" and health["state"]["ok"] is False
                assert health["state"]["policy"] == "fail_closed"


async def test_fail_open_admits_on_local_limits_while_redis_is_down(tmp_path: Path) -> None:
    port, rt = free_port(), free_port()
    with redis_server(tmp_path / "redis") as redis:
        cfg = limited_config(tmp_path, port, rt, key="max_sessions = 1",
                             state=f'backend = "redis"\nurl = "{redis.url}"\ntimeout_s = 0.5\n'
                                   'on_unavailable = "fail_open"')
        redis.stop()
        async with serving(tmp_path, cfg, port):
            url = f"ws://127.0.0.1:{rt}/v1/realtime?model=gpt-realtime"
            async with ws_connect(url, headers=auth_headers(LIMITED_KEY)) as ws:
                await ws.get_message()
                try:  # this process's own cap still holds
                    async with ws_connect(url, headers=auth_headers(LIMITED_KEY)):
                        raise AssertionError("the local cap did not hold")
                except ConnectionRejected as exc:
                    assert exc.status_code == 429


async def test_a_token_minted_on_one_server_opens_on_the_other_through_redis(tmp_path: Path) -> None:
    """A large session config is kept in the shared store: a token minted by one instance works
    on the other (they share the signing secret and the Redis)."""
    with redis_server(tmp_path / "redis") as redis:
        ports = [(free_port(), free_port()) for _ in range(2)]
        state = f'backend = "redis"\nurl = "{redis.url}"'
        async with AsyncExitStack() as stack:
            for i, (port, rt) in enumerate(ports):
                cfg = limited_config(tmp_path / f"s{i}", port, rt, state=state)
                cfg.write_text(cfg.read_text().replace("[server]\n", '[server]\ntoken_secret = "a-shared-signing-secret-0123"\n'))
                await stack.enter_async_context(serving(tmp_path / f"s{i}", cfg, port))
            instructions = "Answer in one short sentence. " * 400
            async with httpx.AsyncClient() as http:
                r = await http.post(f"http://127.0.0.1:{ports[0][0]}/v1/realtime/client_secrets",
                                    json={"session": {"type": "realtime", "model": "gpt-realtime",
                                                      "instructions": instructions}},
                                    headers=auth_headers(LIMITED_KEY))
            token = r.json()["value"]
            assert len(token) <= 2048
            async with ws_connect(f"ws://127.0.0.1:{ports[1][1]}/v1/realtime",
                                  subprotocols=["realtime", f"openai-insecure-api-key.{token}"]) as ws:
                events = await events_until(ws, "session.updated")
            assert events[-1]["session"]["instructions"] == instructions


async def test_spend_by_another_process_cuts_an_open_session_off(nursery: trio.Nursery, tmp_path: Path,
                                                                 listener: str) -> None:
    """Another worker (here: another connection to the same SQLite file, as a worker has) pushes
    the key over its budget: the session open in this process is cut off by the refresh."""
    from rtproxy.state.sqlite import SqliteStore

    from .conftest import make_config, start_server

    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 0.5}]))
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        other_worker = SqliteStore(srv.gateway.limits.store.path)  # type: ignore[attr-defined]
        try:
            await other_worker.charge("limited", 0.75)
        finally:
            await other_worker.aclose()
        await expect_error_then_close(ws, "budget_exceeded", 4429)
