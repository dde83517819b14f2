"""A key's audio minutes (issue #28, item 4): `max_audio_minutes` counts the audio the gateway
measured both ways on every provider, cuts a session off mid-way like the budget, refuses new
sessions after, and audio streamed with no response to put it on still counts. Real servers over
loopback, the offline model upstream, both listeners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected

import rtproxy.relay.session as session_module
from rtproxy.spend.budgets import audio_account

from .audio_fixtures import append_events, said, silence
from .conftest import ADMIN_KEY, LIMITED_KEY, RunningServer, make_config, start_server
from .helpers import auth_headers, events_until, expect_error_then_close, send_event, ws_connect


def limited(tmp_path: Path, minutes: float) -> Any:
    return make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_audio_minutes": minutes},
                                       {"name": "admin", "key": ADMIN_KEY, "role": "admin"}])


async def records_of(srv: RunningServer, kind: str, n: int) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while len(found := [r for r in srv.records() if r["record"] == kind]) < n:
            await trio.sleep(0.02)
    return found


async def test_a_key_over_its_audio_minutes_is_cut_off_after_the_turn_and_refused_after(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, limited(tmp_path, 0.02))  # 1.2 s of audio
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        for event in append_events(said("what time is it in tokyo")):  # about 2.5 s, server VAD
            await send_event(ws, event)
        await events_until(ws, "response.done", timeout_s=20)
        message = await expect_error_then_close(ws, "audio_minutes_exceeded", 4429)
    assert "minutes of audio" in message
    (response,) = await records_of(srv, "response", 1)
    assert response["audio_in_ms"] > 1200 and response["audio_out_ms"] > 0
    assert response["billing_unit"] == "tokens" and response["usage_source"] == "provider"
    used = (await srv.gateway.limits.store.spent([audio_account("limited")]))[audio_account("limited")]
    (session,) = await records_of(srv, "session", 1)
    # every millisecond the session measured is on a billed record, and charged once
    billed = sum(r.get("audio_in_ms", 0) + r.get("audio_out_ms", 0) for r in srv.records()
                 if r["record"] in ("response", "usage"))
    assert used == pytest.approx(billed) and billed == session["audio_in_ms"] + session["audio_out_ms"]
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)):
            pass
    assert refused.value.status_code == 429 and b"audio_minutes_exceeded" in (refused.value.body or b"")


@pytest.mark.parametrize("chatty", [False, True])
async def test_audio_streamed_with_no_response_counts_and_cuts_the_session_off(
        nursery: trio.Nursery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chatty: bool) -> None:
    # audio with no response goes on a "usage" record once the key's minutes would run out
    # (or a minute of it accrues), checked every METER_CHECK_S whether or not other events flow
    monkeypatch.setattr(session_module, "METER_CHECK_S", 0.05)
    srv = await start_server(nursery, limited(tmp_path, 0.01))  # 600 ms
    async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"turn_detection": None}}}})
        await events_until(ws, "session.updated")
        with trio.fail_after(10):
            try:
                for i, event in enumerate(append_events(silence(4000))):  # manual turns, never committed
                    await send_event(ws, event)
                    if chatty and i % 5 == 0:  # events that keep the collector busy
                        await send_event(ws, {"type": "session.update", "session": {"type": "realtime",
                                                                                    "instructions": f"n{i}"}})
                    await trio.sleep(0.005)
                await expect_error_then_close(ws, "audio_minutes_exceeded", 4429)
            except ConnectionClosed as closed:  # cut off while still sending
                assert closed.reason.code == 4429 and "minutes of audio" in (closed.reason.reason or "")
    usage = await records_of(srv, "usage", 1)
    assert usage[0]["source"] == "audio_without_response" and usage[0]["audio_in_ms"] >= 600
    assert sum(u["audio_in_ms"] for u in usage) < 4000  # cut off mid-stream, not at the end
    assert not [r for r in srv.records() if r["record"] == "response"]
