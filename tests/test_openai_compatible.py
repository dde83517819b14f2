"""``provider = "openai-compatible"``: any server speaking OpenAI Realtime at ``api_base``, with its
own auth header and its own dialect. A fake such server in the beta dialect reads the operator's
key from ``x-api-key`` (never the client's key, anywhere), sends an event type OpenAI's protocol
does not have (forwarded to the client, counted in the session record, never breaking the
collector); a GA client is refused at the handshake. Costs are another test's."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import ConnectionRejected, WebSocketConnection

from rtproxy.protocols.realtime.collector import Collector
from rtproxy.spend.records import SessionEnd, SessionMeta

from .conftest import USER_KEY, make_config, start_server
from .fakes import FakeUpstream
from .helpers import PROVIDER_KEY, auth_headers, events_until, send_event, ws_connect

BETA = {"OpenAI-Beta": "realtime=v1"}
EXTRA = {"type": "vendor.extra_stats", "event_id": "event_v1", "stats": {"queue_ms": 3}}


async def beta_server(ws: WebSocketConnection, fake: FakeUpstream) -> None:
    """A beta-dialect Realtime server: a text answer, with one event of its own among it."""
    await ws.send_message(json.dumps({"type": "session.created", "event_id": "event_1",
                                      "session": {"id": "sess_vllm", "object": "realtime.session", "model": "voxtral"}}))
    while True:
        event = json.loads(await ws.get_message())
        fake.received.append(event)
        if event["type"] == "session.update":
            await ws.send_message(json.dumps({"type": "session.updated", "event_id": "event_2",
                                              "session": {"id": "sess_vllm", **event["session"]}}))
        elif event["type"] == "conversation.item.create":
            await ws.send_message(json.dumps({"type": "conversation.item.created", "event_id": "event_3",
                                              "item": {"id": "item_1", **event["item"]}}))
        elif event["type"] == "response.create":
            ids = {"response_id": "resp_1", "item_id": "item_2", "output_index": 0, "content_index": 0}
            for frame in (
                {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress", "output": []}},
                {"type": "response.text.delta", **ids, "delta": "Hello"},
                EXTRA,
                {"type": "response.text.done", **ids, "text": "Hello"},
                {"type": "response.done", "response": {
                    "id": "resp_1", "status": "completed", "output": [],
                    "usage": {"total_tokens": 7, "input_tokens": 5, "output_tokens": 2,
                              "input_token_details": {"text_tokens": 5, "audio_tokens": 0, "cached_tokens": 0},
                              "output_token_details": {"text_tokens": 2, "audio_tokens": 0}}}},
            ):
                await ws.send_message(json.dumps({"event_id": "event_x", **frame}))


def compatible_config(tmp_path: Path, fake: FakeUpstream, **model: Any) -> Any:
    return make_config(tmp_path, models=[{"name": "vllm", "provider": "openai-compatible", "api_base": fake.url + "/v1",
                                          "api_key": PROVIDER_KEY, "auth_header": "x-api-key", "dialect": "beta",
                                          "upstream_model": "voxtral", **model}],
                       keys=[{"name": "user", "key": USER_KEY}])


async def records(srv: Any) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while not any(r["record"] == "session" for r in srv.records()):
            await trio.sleep(0.05)
    return srv.records()  # type: ignore[no-any-return]


async def test_a_beta_client_talks_to_a_beta_server_with_its_own_auth_header(
        nursery: trio.Nursery, tmp_path: Path, listener: str, fake_upstream: FakeUpstream) -> None:
    fake_upstream.behaviour = beta_server
    srv = await start_server(nursery, compatible_config(tmp_path, fake_upstream))
    async with ws_connect(srv.ws_url(listener, query="model=vllm"), headers={**auth_headers(USER_KEY), **BETA}) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"modalities": ["text"], "instructions": "Hi"}})
        await events_until(ws, "session.updated")
        await send_event(ws, {"type": "conversation.item.create", "item": {
            "type": "message", "role": "user", "content": [{"type": "input_text", "text": "Say hello"}]}})
        await send_event(ws, {"type": "response.create"})
        events = await events_until(ws, "response.done")
    assert EXTRA in events  # forwarded as the server sent it
    assert [e["type"] for e in events if e["type"].startswith("response.text")] == ["response.text.delta",
                                                                                     "response.text.done"]
    (seen,) = fake_upstream.requests
    assert seen.path == "/v1/realtime?model=voxtral"
    assert seen.headers["x-api-key"] == PROVIDER_KEY and seen.headers["openai-beta"] == "realtime=v1"
    assert "authorization" not in seen.headers and "api-key" not in seen.headers
    assert not any(USER_KEY in value for value in seen.headers.values()) and USER_KEY not in seen.path
    assert not any(USER_KEY in json.dumps(e) for e in fake_upstream.received)
    recs = await records(srv)
    (session,) = [r for r in recs if r["record"] == "session"]
    assert session["status"] == "success" and session["provider"] == "openai-compatible"
    assert session["unknown_event_types"] == {"vendor.extra_stats": 1} and session["malformed_frames"] == 0
    (response,) = [r for r in recs if r["record"] == "response"]
    assert response["status"] == "completed" and response["usage"]["total_tokens"] == 7


async def test_a_ga_client_on_a_beta_server_is_refused_at_the_handshake(
        nursery: trio.Nursery, tmp_path: Path, listener: str, fake_upstream: FakeUpstream) -> None:
    srv = await start_server(nursery, compatible_config(tmp_path, fake_upstream))
    with pytest.raises(ConnectionRejected) as refused:
        async with ws_connect(srv.ws_url(listener, query="model=vllm"), headers=auth_headers(USER_KEY)):
            pass
    assert refused.value.status_code == 400
    error = json.loads(refused.value.body)["error"]
    assert error["code"] == "unsupported_dialect"
    assert error["message"] == ("model 'vllm' (openai-compatible) speaks the beta Realtime dialect only, not GA: "
                                "connect with 'OpenAI-Beta: realtime=v1' (or the openai-beta.realtime-v1 subprotocol)")
    assert fake_upstream.requests == []


async def test_a_ga_server_with_no_key_gets_no_credential_and_ga_sessions_pass_through(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream) -> None:
    srv = await start_server(nursery, make_config(tmp_path, models=[
        {"name": "local-llm", "provider": "openai-compatible", "api_base": fake_upstream.url.replace("ws", "http") + "/v1"}],
        keys=[{"name": "user", "key": USER_KEY}]))
    async with ws_connect(srv.ws_url("realtime", query="model=local-llm"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "vendor.ping", "n": 1})  # the fake echoes it: forwarded both ways
        assert (await events_until(ws, "vendor.ping"))[-1] == {"type": "vendor.ping", "n": 1}
    (seen,) = fake_upstream.requests
    assert seen.path == "/v1/realtime?model=local-llm"
    assert not {"authorization", "api-key", "x-api-key", "openai-beta"} & set(seen.headers)


def test_the_collector_counts_event_types_it_does_not_know_and_never_breaks_on_them() -> None:
    meta = SessionMeta(session_id="s", key_name="k", key_hash="h", model="vllm", provider="openai-compatible",
                       upstream_model="voxtral", api_base="ws://x/v1/realtime", store_prompts=True, price=None)
    collector = Collector(meta)
    odd = [EXTRA, {"type": "vendor.extra_stats"}, {"type": 7}, {"type": None}, {"no_type": True}, [1, 2], "text",
           {"type": "x" * 10_000}, {"type": "response.done", "response": "not an object"},
           {"type": "response.created", "response": {"id": 5, "usage": {}}}]
    for event in odd:
        collector.feed("server", json.dumps(event).encode())  # never raises
    record = collector.finish(SessionEnd("client", 1000))
    assert record["unknown_event_types"]["vendor.extra_stats"] == 2
    assert record["status"] == "success" and datetime.now(UTC) >= collector.started_at
