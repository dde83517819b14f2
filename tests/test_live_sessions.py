"""GPT-Live sessions over their whole life through the gateway: the sideband and forks only for
the key that opened the session (remembered in the state store, so across instances), delegated
models checked mid-session, budgets against the running total of seconds, and a client that
vanishes billed its final seconds. Both listeners; one shared offline Live upstream."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection

from rtproxy.offline.server import serve_offline_model

from .conftest import ADMIN_KEY, USER_KEY, RunningServer, make_config, start_server
from .helpers import send_event, ws_connect

AUTH = {"Authorization": f"Bearer {USER_KEY}"}
OTHER = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
async def upstream_port(nursery: trio.Nursery) -> int:
    """One offline Live model both gateways reach as their provider (as two servers reach OpenAI)."""
    return await nursery.start(functools.partial(serve_offline_model, "127.0.0.1", 0, None, 0.001,
                                                 live_usage_interval_s=0.02))


def live_config(tmp_path: Path, upstream_port: int, **server: Any) -> Any:
    return make_config(tmp_path, models=[
        {"name": "gpt-realtime", "provider": "local"},
        {"name": "gpt-live-1", "provider": "openai", "api": "live", "api_key": "sk-upstream-0123456789",
         "api_base": f"ws://127.0.0.1:{upstream_port}/v1"},
    ], keys=[{"name": "user", "key": USER_KEY, "delegation_models": ["gpt-5.6-luna"]},
             {"name": "admin", "key": ADMIN_KEY, "role": "admin"}],
        server={"state_dir": str(tmp_path.parent / "shared-state"), "settle_window_s": 2.0, **server})


async def next_of(ws: WebSocketConnection, etype: str) -> dict[str, Any]:
    with trio.fail_after(10):
        while True:
            event = json.loads(await ws.get_message())
            if event["type"] in (etype, "error"):
                return event


START = {"type": "session.start", "session": {"model": "gpt-live-1"}}


async def started(ws: WebSocketConnection, **session: Any) -> str:
    await send_event(ws, {"type": "session.start", "session": {"model": "gpt-live-1", **session}})
    event = await next_of(ws, "session.started")
    assert event["type"] == "session.started", event
    return str(event["session"]["id"])


async def records_of(server: RunningServer, sessions: int = 1) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while sum(r["record"] == "session" for r in server.records()) < sessions:
            await trio.sleep(0.02)
    return server.records()


async def test_only_the_opening_key_may_attach_a_sideband_or_fork_even_on_another_instance(
        nursery: trio.Nursery, tmp_path: Path, upstream_port: int, listener: str) -> None:
    a = await start_server(nursery, live_config(tmp_path / "a", upstream_port))
    b = await start_server(nursery, live_config(tmp_path / "b", upstream_port))
    async with ws_connect(a.ws_url(listener, "/v1/live/sessions", ""), headers=AUTH) as primary:
        live_id = await started(primary)
        # the same key, through the other instance: admitted, and it controls the session
        async with ws_connect(b.ws_url(listener, f"/v1/live/sessions/{live_id}/attach", ""), headers=AUTH) as side:
            await send_event(side, {"type": "session.instructions.append", "event_id": "s1", "delegation_id": None,
                                    "content": "Speak slowly."})
            acked = await next_of(side, "session.instructions.appended")
            assert acked["type"] == "session.instructions.appended" and acked["client_event_id"] == "s1"
        async with ws_connect(b.ws_url(listener, f"/v1/live/sessions/{live_id}/fork", ""), headers=AUTH) as fork:
            await send_event(fork, {"type": "session.start", "session": {}})
            forked = await next_of(fork, "session.started")
            assert forked["session"]["id"] != live_id and forked["session"]["model"] == "gpt-live-1"
        for path in (f"/v1/live/sessions/{live_id}/attach", f"/openai/v1/live/sessions/{live_id}/fork"):
            with pytest.raises(ConnectionRejected) as refused:  # another key: never
                async with ws_connect(b.ws_url(listener, path, ""), headers=OTHER):
                    pass
            assert refused.value.status_code == 403
        with pytest.raises(ConnectionRejected) as unknown:
            async with ws_connect(a.ws_url(listener, "/v1/live/sessions/live_nobody/attach", ""), headers=AUTH):
                pass
        assert unknown.value.status_code == 404
    records = await records_of(a)
    (session,) = [r for r in records if r["record"] == "session"]
    assert session["upstream_session_id"] == live_id
    a.stop.set()
    b.stop.set()


async def test_a_session_update_naming_a_delegated_model_the_key_may_not_use_never_reaches_the_provider(
        nursery: trio.Nursery, tmp_path: Path, upstream_port: int, listener: str) -> None:
    srv = await start_server(nursery, live_config(tmp_path, upstream_port))
    async with ws_connect(srv.ws_url(listener, "/v1/live/sessions", ""), headers=AUTH) as ws:
        await started(ws, delegation={"type": "responses", "responses": {"model": "gpt-5.6-luna"}})
        await send_event(ws, {"type": "session.update", "event_id": "u1", "session": {
            "delegation": {"type": "responses", "responses": {"model": "gpt-9-secret"}}}})
        refusal = await next_of(ws, "session.updated")
        assert refusal["type"] == "error" and refusal["error"]["code"] == "model_not_allowed"
        assert refusal["error"]["client_event_id"] == "u1"
        await send_event(ws, {"type": "session.update", "session": {
            "delegation": {"type": "responses", "responses": {"instructions": "Be terse."}}}})
        updated = await next_of(ws, "session.updated")
        assert updated["session"]["delegation"]["responses"]["model"] == "gpt-5.6-luna"
    srv.stop.set()


async def speak(ws: WebSocketConnection, seconds: float) -> None:
    from .audio_fixtures import append_events, utterance

    for append in append_events(utterance(speech_ms=int(seconds * 1000) - 1100)):
        await send_event(ws, {"type": "session.input_audio.append", "audio": append["audio"]})


async def test_a_vanished_client_is_billed_its_final_seconds_from_session_closed(
        nursery: trio.Nursery, tmp_path: Path, upstream_port: int, listener: str) -> None:
    srv = await start_server(nursery, live_config(tmp_path, upstream_port))
    async with ws_connect(srv.ws_url(listener, "/v1/live/sessions", ""), headers=AUTH) as ws:
        await started(ws)
        await speak(ws, 3.0)
        await next_of(ws, "session.usage.updated")
    # the socket closed without session.close: the gateway closes the session upstream and bills it
    records = await records_of(srv)
    (session,) = [r for r in records if r["record"] == "session"]
    assert session["seconds_source"] == "session.closed" and session["closed_reason"] == "close_requested"
    assert session["seconds"] == 3 and session["close"]["by"] == "client"
    usage = [r for r in records if r["record"] == "usage"]
    assert usage[-1]["seconds"] == 3
    assert sum(r["cost_usd"] for r in usage) == pytest.approx(3 * 3.0 / 3600)
    srv.stop.set()


async def test_a_budget_is_held_against_the_running_total_of_seconds(
        nursery: trio.Nursery, tmp_path: Path, upstream_port: int, listener: str) -> None:
    cfg = make_config(
        tmp_path, models=[{"name": "gpt-realtime", "provider": "local"},
                          {"name": "gpt-live-1", "provider": "openai", "api": "live", "api_key": "sk-upstream-0123456789",
                           "api_base": f"ws://127.0.0.1:{upstream_port}/v1"}],
        keys=[{"name": "user", "key": USER_KEY, "max_budget_usd": 0.0015}],  # 1.8 seconds at $0.05 a minute
        server={"settle_window_s": 2.0})
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener, "/v1/live/sessions", ""), headers=AUTH) as ws:
        await started(ws)
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(10):
            await speak(ws, 4.0)  # the cut-off comes while the user is still talking
            while True:
                await ws.get_message()
        assert closed.value.reason.code == 4429
    records = await records_of(srv)
    (session,) = [r for r in records if r["record"] == "session"]
    assert session["seconds_source"] == "session.closed"  # the cut-off still bills the final seconds
    assert session["cost_usd"] == pytest.approx(session["seconds"] * 3.0 / 3600)
    with pytest.raises(ConnectionRejected) as refused:  # and the key can open no more
        async with ws_connect(srv.ws_url(listener, "/v1/live/sessions", ""), headers=AUTH):
            pass
    assert refused.value.status_code == 429
    srv.stop.set()



async def test_the_session_record_shows_the_clients_user_agent(
        nursery: trio.Nursery, tmp_path: Path, upstream_port: int, listener: str) -> None:
    # the listener frees the upgrade's headers on accept, before session.start names the model
    srv = await start_server(nursery, live_config(tmp_path, upstream_port))
    async with ws_connect(srv.ws_url(listener, "/v1/live/sessions", ""),
                          headers={**AUTH, "User-Agent": "live-agent/1.0"}) as ws:
        await started(ws)
        await send_event(ws, {"type": "session.close"})
    (session,) = [r for r in await records_of(srv) if r["record"] == "session"]
    assert session["client"]["user_agent"] == "live-agent/1.0"
    srv.stop.set()
