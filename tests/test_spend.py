"""Spend records written by real sessions through the proxy and the offline model."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, WebSocketConnection

from .audio_fixtures import append_events, said
from .conftest import ADMIN_KEY, LIMITED_KEY, USER_KEY, RunningServer, make_config, start_server
from .fakes import SESSION_CREATED, FakeUpstream
from .helpers import (
    auth_headers,
    events_until,
    expect_error_then_close,
    send_event,
    server_with_fake,
    text_turn,
    user_text,
    ws_connect,
)

TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather for a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


async def wait_records(srv: RunningServer, kind: str, n: int) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while True:
            found = [r for r in srv.records() if r["record"] == kind]
            if len(found) >= n:
                return found
            await trio.sleep(0.01)


async def test_text_turn_record_field_by_field(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers={**auth_headers(USER_KEY), "x-rtproxy-end-user": "u-7",
                                                            "x-rtproxy-tags": "demo,web"}) as ws:
        events = await text_turn(ws, "Hello there")
    (resp,) = await wait_records(server, "response", 1)
    (session,) = await wait_records(server, "session", 1)
    done = events[-1]
    usage = done["response"]["usage"]
    assert resp["response_id"] == done["response"]["id"] and resp["status"] == "completed"
    assert resp["usage"] == usage
    # priced by hand from the provider's usage at gpt-realtime's list prices (USD per 1M tokens)
    d_in, d_out = usage["input_token_details"], usage["output_token_details"]
    cached = d_in.get("cached_tokens_details") or {}
    by_hand = ((d_in["text_tokens"] - cached.get("text_tokens", 0)) * 4.0
               + (d_in["audio_tokens"] - cached.get("audio_tokens", 0)) * 32.0
               + cached.get("text_tokens", 0) * 0.4 + cached.get("audio_tokens", 0) * 0.4
               + d_out["text_tokens"] * 16.0 + d_out["audio_tokens"] * 64.0) / 1e6
    assert by_hand > 0 and resp["cost_usd"] == pytest.approx(by_hand)
    assert set(resp["cost_breakdown"]) == {"input_text", "input_audio", "input_image", "cached_text",
                                           "cached_audio", "cached_image", "output_text", "output_audio"}
    assert (resp["key_name"], resp["model"], resp["provider"], resp["end_user"], resp["tags"]) == \
        ("user", "gpt-realtime", "local", "u-7", ["demo", "web"])
    assert resp["upstream_session_id"].startswith("sess_")  # the offline model's own session id
    assert resp["messages"][-1] == {"role": "user", "content": "Hello there", "source": "text"}
    assert resp["messages"][0]["role"] == "system"
    assert resp["response"]["output_text"] == "You said: Hello there"
    assert resp["proxy_server_request"]["modalities"] == ["text"]
    assert session["session_id"] == resp["session_id"] and session["responses"] == 1
    assert session["usage"]["total_tokens"] == usage["total_tokens"]
    assert session["cost_usd"] == pytest.approx(resp["cost_usd"])
    assert session["close"]["by"] == "client" and session["status"] == "success"
    assert session["client"]["ip"] == "127.0.0.1"


async def test_voice_turn_records_the_transcript(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"transcription": {"model": "whisper-1"},
                      "turn_detection": {"type": "server_vad", "silence_duration_ms": 400}}}}})
        await events_until(ws, "session.updated")
        for append in append_events(said("What is the weather in Paris?")):
            await send_event(ws, append)
        events = await events_until(ws, "response.done")
    transcript = next(e for e in events if e["type"].endswith("transcription.completed"))["transcript"]
    assert transcript == "What is the weather in Paris?"
    (resp,) = await wait_records(server, "response", 1)
    assert {"role": "user", "content": transcript, "source": "transcript"}.items() <= resp["messages"][-1].items()
    assert resp["usage"]["input_token_details"]["audio_tokens"] > 0
    assert resp["usage"]["output_token_details"]["audio_tokens"] > 0
    assert resp["cost_breakdown"]["output_audio"] > 0
    assert resp["response"]["output_transcript"] == f"You said: {transcript}"


async def test_tool_call_round_trip_records_tools_calls_and_outputs(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"],
                                                                    "tools": TOOLS, "tool_choice": "auto"}})
        await send_event(ws, user_text("Call get_weather for Paris"))
        await send_event(ws, {"type": "response.create"})
        first = await events_until(ws, "response.done")
        call = first[-1]["response"]["output"][0]
        await send_event(ws, {"type": "conversation.item.create", "item": {
            "type": "function_call_output", "call_id": call["call_id"], "output": '{"temp_c": 18}'}})
        await send_event(ws, {"type": "response.create"})
        await events_until(ws, "response.done")
    r1, r2 = await wait_records(server, "response", 2)
    (session,) = await wait_records(server, "session", 1)
    assert r1["proxy_server_request"]["tools"] == TOOLS and r1["proxy_server_request"]["tool_choice"] == "auto"
    assert r1["response"]["tool_calls"] == [{"id": call["call_id"], "type": "function",
                                             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
    assert r1["response"]["results"][0]["response"]["output"][0]["call_id"] == call["call_id"]
    assert r2["messages"] == [{"role": "tool", "tool_call_id": call["call_id"], "content": '{"temp_c": 18}'}]
    assert r2["response"]["output_text"] == 'get_weather returned {"temp_c": 18}'
    assert session["tools"] == TOOLS and session["responses"] == 2


async def test_cancelled_response_is_recorded_as_cancelled(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await send_event(ws, user_text(" ".join(["word"] * 400)))
        await send_event(ws, {"type": "response.create"})
        await events_until(ws, "response.output_text.delta")
        await send_event(ws, {"type": "response.cancel"})
        events = await events_until(ws, "response.done")
    assert events[-1]["response"]["status"] == "cancelled"
    (resp,) = await wait_records(server, "response", 1)
    assert resp["status"] == "cancelled" and resp["cost_usd"] > 0
    assert resp["response"]["status_details"]["reason"] == "client_cancelled"


async def test_no_secret_reaches_the_spend_log(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), subprotocols=["realtime", f"openai-insecure-api-key.{USER_KEY}"]) as ws:
        await text_turn(ws)
    async with ws_connect(server.ws_url(listener), headers=auth_headers(ADMIN_KEY)) as ws:
        await text_turn(ws)
    await wait_records(server, "session", 2)
    data = server.gateway.spend.path.read_bytes()
    for secret in (USER_KEY, ADMIN_KEY, server.gateway.local_secret):
        assert secret.encode() not in data


async def test_store_prompts_per_key_override(nursery: trio.Nursery, tmp_path: Path) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "user", "key": USER_KEY, "store_prompts": False}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(USER_KEY)) as ws:
        await text_turn(ws, "private words")
    (resp,) = await wait_records(srv, "response", 1)
    assert resp["messages"] is None and resp["response"] is None and resp["proxy_server_request"] is None
    assert resp["cost_usd"] > 0 and resp["usage"]["total_tokens"] > 0
    assert b"private words" not in srv.gateway.spend.path.read_bytes()


# -- budgets ------------------------------------------------------------------------------------

async def test_budget_is_rebuilt_from_the_log_and_refuses_connects(nursery: trio.Nursery, tmp_path: Path,
                                                                   listener: str) -> None:
    log = tmp_path / "spend.jsonl"
    log.write_text(json.dumps({"record": "response", "id": "rec_old", "key_name": "limited", "cost_usd": 0.5}) + "\n"
                   + "torn line without end\n")
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 0.5}])
    srv = await start_server(nursery, cfg)
    assert (await srv.gateway.limits.store.spent(["limited"]))["limited"] == pytest.approx(0.5)
    with pytest.raises(ConnectionRejected) as info:
        async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)):
            pass
    assert info.value.status_code == 429
    assert json.loads(info.value.body)["error"]["code"] == "budget_exceeded"
    async with ws_connect(srv.ws_url(listener), subprotocols=["realtime", f"openai-insecure-api-key.{LIMITED_KEY}"]) as ws:
        event = json.loads(await ws.get_message())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert event["error"]["code"] == "budget_exceeded" and closed.value.reason.code == 4429


async def test_budget_cuts_a_session_off_mid_way(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_budget_usd": 0.000001}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await text_turn(ws)  # this response takes the key over its budget
        await expect_error_then_close(ws, "budget_exceeded", 4429)
    (session,) = await wait_records(srv, "session", 1)
    assert session["close"]["by"] == "proxy" and session["close"]["code"] == 4429 and session["responses"] == 1


async def test_max_sessions_caps_concurrent_sessions_per_key(nursery: trio.Nursery, tmp_path: Path,
                                                             listener: str) -> None:
    cfg = make_config(tmp_path, keys=[{"name": "limited", "key": LIMITED_KEY, "max_sessions": 1}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        with pytest.raises(ConnectionRejected) as info:
            async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)):
                pass
        assert info.value.status_code == 429
    with trio.fail_after(5):
        while srv.gateway.sessions:
            await trio.sleep(0.01)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")


# -- reading and health -------------------------------------------------------------------------

async def test_spend_logs_endpoint_filters_pages_and_scopes_by_key(server: RunningServer) -> None:
    for key in (USER_KEY, USER_KEY, ADMIN_KEY):
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(key)) as ws:
            await text_turn(ws)
    await wait_records(server, "session", 3)
    async with httpx.AsyncClient(base_url=server.http) as http:
        r = await http.get("/spend/logs")
        assert r.status_code == 401
        mine = (await http.get("/spend/logs", headers=auth_headers(USER_KEY))).json()["data"]
        assert len(mine) == 4 and {r["key_name"] for r in mine} == {"user"}
        r = await http.get("/spend/logs", params={"key_name": "admin"}, headers=auth_headers(USER_KEY))
        assert r.status_code == 403
        everything = (await http.get("/spend/logs", headers=auth_headers(ADMIN_KEY))).json()["data"]
        assert len(everything) == 6
        assert everything[0]["start_time"] >= everything[-1]["start_time"]  # newest first
        sessions = (await http.get("/spend/logs", params={"record": "session"}, headers=auth_headers(ADMIN_KEY))).json()
        assert [r["record"] for r in sessions["data"]] == ["session"] * 3
        page1 = (await http.get("/spend/logs", params={"limit": 4}, headers=auth_headers(ADMIN_KEY))).json()
        assert len(page1["data"]) == 4 and page1["next_cursor"] is not None
        page2 = (await http.get("/spend/logs", params={"limit": 4, "cursor": page1["next_cursor"]},
                                headers=auth_headers(ADMIN_KEY))).json()
        assert len(page2["data"]) == 2 and page2["next_cursor"] is None
        assert {r["id"] for r in page1["data"]} | {r["id"] for r in page2["data"]} == {r["id"] for r in everything}
        one = everything[0]["session_id"]
        by_session = (await http.get("/spend/logs", params={"session_id": one}, headers=auth_headers(ADMIN_KEY))).json()
        assert {r["session_id"] for r in by_session["data"]} == {one}
        future = (await http.get("/spend/logs", params={"since": "2999-01-01T00:00:00Z"},
                                 headers=auth_headers(ADMIN_KEY))).json()
        assert future["data"] == []
        end = page1["end_offset"]
        async with ws_connect(server.ws_url("main"), headers=auth_headers(ADMIN_KEY)) as ws:
            await text_turn(ws)
        await wait_records(server, "session", 4)
        follow = (await http.get("/spend/logs", params={"after": end}, headers=auth_headers(ADMIN_KEY))).json()
        assert [r["record"] for r in follow["data"]] == ["response", "session"]


async def test_unwritable_spend_log_degrades_health_but_sessions_go_on(nursery: trio.Nursery, tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config(tmp_path, spend_log={"path": "/dev/full"})  # every write fails with ENOSPC
    srv = await start_server(nursery, cfg)
    async with httpx.AsyncClient(base_url=srv.http) as http:
        assert (await http.get("/health")).json()["status"] == "ok"
        async with ws_connect(srv.ws_url("realtime"), headers=auth_headers(USER_KEY)) as ws:
            events = await text_turn(ws)
            assert events[-1]["response"]["status"] == "completed"
            await send_event(ws, user_text("still here?"))
            await send_event(ws, {"type": "response.create"})
            assert (await events_until(ws, "response.done"))[-1]["response"]["status"] == "completed"
        health = (await http.get("/health")).json()
    assert health["status"] == "degraded"
    assert health["spend_log"]["failures"] >= 2 and "space" in health["spend_log"]["error"].lower()
    loud = [r for r in caplog.records if r.levelno == logging.ERROR and "cannot write the spend log" in r.getMessage()]
    assert len(loud) == 1  # logged loudly, but once per interval, not once per record


async def test_models_and_endpoints_routes(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.http) as http:
        assert (await http.get("/v1/models")).status_code == 401
        models = (await http.get("/v1/models", headers=auth_headers(USER_KEY))).json()
        assert models["object"] == "list" and [m["id"] for m in models["data"]] == ["gpt-realtime"]
        admin = (await http.get("/v1/models", headers=auth_headers(ADMIN_KEY))).json()
        assert [m["id"] for m in admin["data"]] == ["gpt-realtime", "gpt-realtime-mini"]
        ep = (await http.get("/v1/realtime/endpoints", headers=auth_headers(USER_KEY))).json()
        urls = [entry["url"] for entry in ep["listeners"]]
        assert urls == [f"ws://127.0.0.1:{server.realtime_port}/v1/realtime", f"ws://127.0.0.1:{server.main_port}/v1/realtime"]
        assert ep["models"][0]["price_per_million_tokens"]["output_audio"] == 64.0
        anonymous = (await http.get("/v1/realtime/endpoints")).json()
        assert "models" not in anonymous
        page = await http.get("/health")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


async def test_unpriced_model_gets_null_cost_and_one_warning(nursery: trio.Nursery, tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config(tmp_path, models=[{"name": "custom", "provider": "local", "upstream_model": "my-own-model"}],
                      keys=[{"name": "user", "key": USER_KEY}])
    srv = await start_server(nursery, cfg)
    for _ in range(2):
        async with ws_connect(srv.ws_url("realtime", query="model=custom"), headers=auth_headers(USER_KEY)) as ws:
            await text_turn(ws)
    responses = await wait_records(srv, "response", 2)
    sessions = await wait_records(srv, "session", 2)
    assert [r["cost_usd"] for r in responses + sessions] == [None] * 4
    warnings = [r for r in caplog.records if "has no price" in r.getMessage()]
    assert len(warnings) == 1 and "custom" in warnings[0].getMessage()


async def test_the_global_store_prompts_false_keeps_every_text_out_of_every_record(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    """The operator's `[spend_log] store_prompts = false`, with no per-key override, through the
    whole gateway (not only the collector): no instructions, message, transcript or output text."""
    cfg = make_config(tmp_path, spend_log={"store_prompts": False})
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime",
                                                                     "instructions": "SECRET-INSTRUCTIONS-7"}})
        await text_turn(ws, "SECRET-QUESTION-7")
    (session,) = await wait_records(srv, "session", 1)
    text = srv.gateway.spend.path.read_text()
    for secret in ("SECRET-INSTRUCTIONS-7", "SECRET-QUESTION-7"):
        assert secret not in text
    (response,) = [r for r in srv.records() if r["record"] == "response"]
    assert response["messages"] is None and response["response"] is None and response["proxy_server_request"] is None
    assert response["usage"]["output_tokens"] > 0 and response["cost_usd"] > 0
    assert session["tools"] is None


async def test_an_empty_transcript_is_no_user_message_in_the_record(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    async def hears_nothing(ws: WebSocketConnection, fake: FakeUpstream) -> None:
        await ws.send_message(SESSION_CREATED)
        await ws.get_message()  # the client's response.create
        for event in ({"type": "conversation.item.input_audio_transcription.completed", "item_id": "i1",
                       "content_index": 0, "transcript": ""},
                      {"type": "response.created", "response": {"id": "resp_e"}},
                      {"type": "response.done", "response": {"id": "resp_e", "status": "completed",
                                                             "usage": {"input_tokens": 5, "output_tokens": 1}}}):
            await ws.send_message(json.dumps(event))
        await trio.sleep_forever()

    fake_upstream.behaviour = hears_nothing
    srv = await server_with_fake(nursery, tmp_path, fake_upstream)
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(USER_KEY)) as ws:
        await ws.get_message()
        await send_event(ws, {"type": "response.create"})
        await events_until(ws, "response.done")
    (response,) = await wait_records(srv, "response", 1)
    assert response["messages"] == []


async def test_response_metadata_round_trips_through_the_gateway(server: RunningServer, listener: str) -> None:
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await send_event(ws, user_text("hello"))
        await send_event(ws, {"type": "response.create", "response": {"metadata": {"client_event_id": "ce_7"}}})
        events = await events_until(ws, "response.done")
    created = next(e for e in events if e["type"] == "response.created")
    assert created["response"]["metadata"] == events[-1]["response"]["metadata"] == {"client_event_id": "ce_7"}


async def test_an_image_sent_in_a_session_is_a_placeholder_in_the_record(server: RunningServer, listener: str) -> None:
    image = "data:image/jpeg;base64," + "Q" * 8000
    async with ws_connect(server.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await send_event(ws, {"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "Describe it"}, {"type": "input_image", "image_url": image}]}})
        await send_event(ws, {"type": "response.create"})
        await events_until(ws, "response.done")
    (response,) = await wait_records(server, "response", 1)
    assert {"role": "user", "content": "[image: image/jpeg, about 6,000 bytes]", "source": "image"} in response["messages"]
    assert "Q" * 100 not in server.gateway.spend.path.read_text()
