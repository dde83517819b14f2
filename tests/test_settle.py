"""Every response is billed, however the client leaves: the settle window and estimated usage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection

from .conftest import LIMITED_KEY, RunningServer, make_config, start_server
from .fakes import SESSION_CREATED, FakeUpstream
from .helpers import PROVIDER_KEY, auth_headers, events_until, send_event, user_text, ws_connect


async def session_record(srv: RunningServer) -> dict[str, Any]:
    with trio.fail_after(15):
        while True:
            sessions = [r for r in srv.records() if r["record"] == "session"]
            if sessions:
                return sessions[-1]
            await trio.sleep(0.02)


async def start_long_text_response(ws: WebSocketConnection) -> None:
    """A text response the client has seen start streaming, but not finish."""
    await events_until(ws, "session.created")
    await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
    await events_until(ws, "session.updated")
    await send_event(ws, user_text("Tell me a long story about the sea, the wind and the ships " * 4))
    await send_event(ws, {"type": "response.create"})
    await events_until(ws, "response.output_text.delta")


@pytest.mark.parametrize("how", ["close", "vanish"])
async def test_a_client_leaving_mid_response_is_billed_as_the_provider_reports(
        nursery: trio.Nursery, tmp_path: Path, listener: str, how: str) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 1e-9}],
                      server={"settle_window_s": 5.0},
                      local={"stream_delay_ms": 30.0})  # a response that takes a while to stream
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await start_long_text_response(ws)
        if how == "vanish":
            await ws._stream.aclose()  # TCP gone, no close frame
    session = await session_record(srv)
    responses = [r for r in srv.records() if r["record"] == "response"]
    assert len(responses) == 1
    assert responses[0]["usage_source"] == "provider" and responses[0]["status"] == "cancelled"
    assert responses[0]["usage"]["output_tokens"] > 0 and responses[0]["cost_usd"] > 0
    assert session["responses_settled"] == 1 and session["responses_estimated"] == 0
    assert session["cost_usd"] == pytest.approx(responses[0]["cost_usd"])
    # the key's budget saw that spend: the next connect is refused
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)):
            pass
    assert refused.value.status_code == 429


async def never_reports(ws: WebSocketConnection, fake: FakeUpstream) -> None:
    """An upstream that streams a response and never answers response.cancel."""
    await ws.send_message(SESSION_CREATED)
    while True:
        event = json.loads(await ws.get_message())
        fake.received.append(event)
        if event["type"] == "response.create":
            await ws.send_message(json.dumps({"type": "response.created", "event_id": "e1",
                                              "response": {"id": "resp_x", "status": "in_progress"}}))
            await ws.send_message(json.dumps({"type": "response.output_text.delta", "response_id": "resp_x",
                                              "item_id": "i", "output_index": 0, "content_index": 0,
                                              "delta": "x" * 400}))
            await ws.send_message(json.dumps({"type": "response.output_audio.delta", "response_id": "resp_x",
                                              "item_id": "i", "output_index": 0, "content_index": 0,
                                              "delta": "A" * 64_000}))  # 48 000 PCM bytes = 1 s


async def test_a_response_the_provider_never_reports_is_billed_by_estimate(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    fake_upstream.behaviour = never_reports
    cfg = make_config(
        tmp_path, server={"settle_window_s": 0.5},
        models=[{"name": "fake", "provider": "openai", "api_base": fake_upstream.url + "/v1", "api_key": PROVIDER_KEY,
                 "upstream_model": "gpt-realtime"}],
        keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 1e-9}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(LIMITED_KEY)) as ws:
        await ws.get_message()
        await send_event(ws, user_text("hi"))
        await send_event(ws, {"type": "response.create"})
        await events_until(ws, "response.output_audio.delta")
    session = await session_record(srv)
    # the gateway asked the provider to finish the response before giving up on it
    assert any(e.get("type") == "response.cancel" and e.get("response_id") == "resp_x"
               for e in fake_upstream.received if isinstance(e, dict))
    [response] = [r for r in srv.records() if r["record"] == "response"]
    assert response["usage_source"] == "estimated" and response["response_id"] == "resp_x"
    usage = response["usage"]
    assert usage["output_token_details"]["text_tokens"] == 100  # 400 characters at 4 per token
    assert usage["output_token_details"]["audio_tokens"] >= 20  # about a second of audio at 20 per second
    # priced at gpt-realtime's list prices: text out $16/M, audio out $64/M, plus the input
    assert response["cost_usd"] >= 100 * 16e-6 + 20 * 64e-6
    assert session["responses_estimated"] == 1 and session["responses_settled"] == 0
    with pytest.raises(ConnectionRejected):
        async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(LIMITED_KEY)):
            pass


async def test_a_response_requested_just_before_the_client_left_is_settled_and_billed(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    """The client sends response.create and leaves at once: the provider starts (and bills) that
    response after the client is gone, so the gateway waits for it, cancels it and bills it."""
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY}], server={"settle_window_s": 5.0},
                      local={"stream_delay_ms": 30.0})
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, user_text("Tell me a long story about the sea " * 4))
        await send_event(ws, {"type": "response.create"})
    session = await session_record(srv)
    [response] = [r for r in srv.records() if r["record"] == "response"]
    assert response["usage_source"] == "provider" and response["response_id"]
    assert response["cost_usd"] > 0
    assert session["responses_settled"] == 1 and session["responses_unestimated"] == 0


async def refuses_responses(ws: WebSocketConnection, fake: FakeUpstream) -> None:
    """An upstream that answers every response.create with an error."""
    await ws.send_message(SESSION_CREATED)
    while True:
        event = json.loads(await ws.get_message())
        fake.received.append(event)
        if event["type"] == "response.create":
            await ws.send_message(json.dumps({"type": "error", "event_id": "e2", "error": {
                "type": "invalid_request_error", "code": "conversation_already_has_active_response",
                "message": "Conversation already has an active response", "param": None, "event_id": None}}))


async def test_a_refused_response_request_does_not_hold_the_session_for_the_settle_window(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    fake_upstream.behaviour = refuses_responses
    cfg = make_config(
        tmp_path, server={"settle_window_s": 60.0},
        models=[{"name": "fake", "provider": "openai", "api_base": fake_upstream.url + "/v1", "api_key": PROVIDER_KEY,
                 "upstream_model": "gpt-realtime"}],
        keys=[{"name": "limited", "key": LIMITED_KEY}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(LIMITED_KEY)) as ws:
        await ws.get_message()
        await send_event(ws, {"type": "response.create"})
    with trio.fail_after(20):  # far inside the 60 s window: the error answered the request
        session = await session_record(srv)
    assert session["responses"] == 0 and session["responses_unestimated"] == 0
    assert not [r for r in srv.records() if r["record"] == "response"]
