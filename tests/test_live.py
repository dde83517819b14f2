"""GPT-Live through the gateway, end to end on both listeners: the official SDK's
``client.live.connect()`` as the client, the offline model's Live upstream; admission from the
first frame, seconds and delegated tokens billed, transcripts, tools and the session record."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from rtproxy.config import Config, ModelConfig
from rtproxy.spend.pricing import price_for, price_responses_usage

from .conftest import USER_KEY, RunningServer, make_config

CLIENT = Path(__file__).with_name("sdk_live_client.py")
OTHER_KEY = "sk-other-0123456789abcdef"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, models=[
        {"name": "gpt-realtime", "provider": "local"},
        {"name": "gpt-live-1", "provider": "local", "api": "live"},
    ], keys=[{"name": "user", "key": USER_KEY},
             {"name": "no-live", "key": OTHER_KEY, "models": ["gpt-realtime"]}],
        local={"live_usage_interval_ms": 50.0})


async def run_client(port: int, mode: str, key: str = USER_KEY, model: str = "gpt-live-1"
                     ) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process([sys.executable, str(CLIENT), str(port), key, mode, model],
                                      capture_stdout=True, capture_stderr=True, check=False)


async def session_records(server: RunningServer) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while not any(r["record"] == "session" for r in server.records()):
            await trio.sleep(0.02)
    return server.records()


async def test_a_voice_turn_is_billed_by_the_second_and_its_transcript_recorded(server: RunningServer,
                                                                               listener: str) -> None:
    result = await run_client(server.port(listener), "voice")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout)
    assert out["closed"]["reason"] == "close_requested" and out["closed"]["seconds"] >= 2
    records = await session_records(server)
    usage = [r for r in records if r["record"] == "usage"]
    (session,) = [r for r in records if r["record"] == "session"]
    rate = 3.0 / 3600  # gpt-live-1: $0.05 a minute, billed per second
    assert usage and usage[-1]["seconds"] == out["closed"]["seconds"] == session["seconds"]
    assert [u["seconds"] for u in usage] == sorted({u["seconds"] for u in usage})  # each a rise, never summed
    assert sum(u["cost_usd"] for u in usage) == pytest.approx(session["seconds"] * rate)
    assert session["voice_cost_usd"] == pytest.approx(session["seconds"] * rate)
    assert session["cost_usd"] == pytest.approx(session["voice_cost_usd"])
    assert (session["api"], session["seconds_source"], session["closed_reason"]) == \
        ("live", "session.closed", "close_requested")
    assert session["upstream_session_id"] == out["session_id"] and session["model"] == "gpt-live-1"
    messages = [m for r in records for m in (r.get("messages") or [])]
    said = [m["content"] for m in messages if m["role"] == "assistant" and m["source"] == "transcript"]
    heard = [m["content"] for m in messages if m["role"] == "user" and m["source"] == "transcript"]
    assert heard and heard[0].startswith("(spoken, ")
    assert said == ["One moment. It is sunny in Paris."]  # one assistant turn: no 2 s silence between
    (delegation,) = session["delegations"]
    assert delegation["target"] == "client"
    assert {"role": "tool", "tool_call_id": delegation["id"], "content": "It is sunny in Paris.",
            "source": "commentary"} in messages


async def test_delegated_responses_and_a_tool_round_trip_are_billed_by_token(server: RunningServer,
                                                                           listener: str) -> None:
    result = await run_client(server.port(listener), "delegated")
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out = json.loads(result.stdout)
    records = await session_records(server)
    responses = [r for r in records if r["record"] == "response"]
    assert [r["response_id"] for r in responses] == [r["id"] for r in out["responses"]]
    price = price_for(ModelConfig("gpt-5.6-luna", "openai"))
    for record, seen in zip(responses, out["responses"]):
        assert record["usage"] == seen["usage"] and record["response_model"] == "gpt-5.6-luna"
        assert record["cost_usd"] == pytest.approx(price_responses_usage(seen["usage"], price)[0])
    (call,) = responses[0]["response"]["tool_calls"]
    assert call == {"id": out["calls"][0]["call_id"], "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
    assert responses[0]["proxy_server_request"]["tools"][0]["name"] == "get_weather"
    assert {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c": 18}'} in responses[1]["messages"]
    assert responses[0]["messages"][0] == {"role": "user", "content": "What is the weather in Paris? use get_weather",
                                           "source": "text"}
    assert responses[1]["response"]["output_text"] == 'get_weather returned {"temp_c": 18}'
    (session,) = [r for r in records if r["record"] == "session"]
    assert session["delegated_cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in responses))
    assert session["cost_usd"] == pytest.approx(session["delegated_cost_usd"] + session["voice_cost_usd"])
    assert session["responses"] == 2 and session["tools"][0]["name"] == "get_weather"


async def test_a_key_not_allowed_the_live_model_is_refused_before_anything_goes_upstream(
        server: RunningServer, listener: str) -> None:
    result = await run_client(server.port(listener), "voice", key=OTHER_KEY)
    assert result.returncode == 3, result.stderr.decode()[-2000:]
    refused = json.loads(result.stdout)
    assert refused["close_code"] == 4403 and refused["types"] == ["error"]
    error = refused["error"]
    assert (error["code"], error["param"], error["type"]) == ("model_not_allowed", "session.model",
                                                              "invalid_request_error")
    unknown = await run_client(server.port(listener), "voice", model="gpt-live-9")
    assert unknown.returncode == 3 and json.loads(unknown.stdout)["error"]["code"] == "model_not_found"
    assert server.records() == []  # nothing went upstream: no session, nothing billed


async def raw_start(url: str, *, subprotocols: list[str] | None = None, headers: dict[str, str] | None = None,
                    first: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], int | None, str | None]:
    """Open a Live socket, send one first frame, read until the socket closes or session.started."""
    from trio_websocket import ConnectionClosed

    from .helpers import ws_connect

    events: list[dict[str, Any]] = []
    async with ws_connect(url, headers=headers, subprotocols=subprotocols) as ws:
        if first is not None:
            await ws.send_message(json.dumps(first))
        try:
            with trio.fail_after(15):
                while True:
                    events.append(json.loads(await ws.get_message()))
                    if events[-1]["type"] == "session.started":
                        return events, None, ws.subprotocol
        except ConnectionClosed as exc:
            return events, exc.reason.code, ws.subprotocol


START = {"type": "session.start", "event_id": "c1", "session": {"model": "gpt-live-1"}}


async def test_a_browser_opens_a_live_session_with_an_ephemeral_token(server: RunningServer, listener: str) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        minted = (await http.post(server.http + "/v1/realtime/client_secrets", json={"session": {"model": "gpt-live-1"}},
                                  headers={"Authorization": f"Bearer {USER_KEY}"})).json()
        refused = await http.post(server.http + "/v1/realtime/client_secrets", json={"session": {
            "model": "gpt-live-1", "instructions": "x"}}, headers={"Authorization": f"Bearer {USER_KEY}"})
    assert minted["session"]["type"] == "live" and refused.status_code == 400
    events, code, echoed = await raw_start(server.ws_url(listener, "/v1/live/sessions", ""), first=START,
                                           subprotocols=["realtime", f"openai-insecure-api-key.{minted['value']}"])
    assert echoed == "realtime" and code is None and events[-1]["type"] == "session.started"
    # the token opens its model only
    other = dict(START, session={"model": "gpt-realtime"})
    events, code, _ = await raw_start(server.ws_url(listener, "/v1/live/sessions", ""), first=other,
                                      subprotocols=["realtime", f"openai-insecure-api-key.{minted['value']}"])
    assert code == 4404 and events[0]["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("first, code, error", [
    ({"type": "session.update", "session": {}}, 4400, "session_not_started"),
    ({"type": "session.start", "session": {}}, 4400, "missing_required_parameter"),
    ({"type": "session.start", "session": {"model": "gpt-realtime"}}, 4404, "model_not_found"),
    ({"type": "session.start", "event_id": "c7", "session": {"model": "gpt-live-1", "delegation": {
        "type": "responses", "responses": {"model": "gpt-9-secret"}}}}, 4403, "model_not_allowed"),
    (None, 4408, "session_start_timeout"),
])
async def test_a_first_frame_that_cannot_start_a_session_gets_the_apis_error_and_a_close(
        nursery: trio.Nursery, tmp_path: Path, listener: str, first: dict[str, Any] | None, code: int,
        error: str) -> None:
    from .conftest import start_server

    cfg = make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"},
                                        {"name": "gpt-live-1", "provider": "local", "api": "live"}],
                      keys=[{"name": "user", "key": USER_KEY, "delegation_models": ["gpt-5.6-luna"]}],
                      server={"live_start_timeout_s": 0.3})
    srv = await start_server(nursery, cfg)
    events, closed, _ = await raw_start(srv.ws_url(listener, "/v1/live/sessions", ""), first=first,
                                        headers={"Authorization": f"Bearer {USER_KEY}"})
    assert closed == code and len(events) == 1
    assert events[0]["type"] == "error" and events[0]["error"]["code"] == error
    if first and first.get("event_id"):
        assert events[0]["error"]["client_event_id"] == first["event_id"]
    assert srv.records() == []
    srv.stop.set()


async def test_azures_live_path_and_its_api_key_header_open_a_session(server: RunningServer, listener: str) -> None:
    events, code, _ = await raw_start(server.ws_url(listener, "/openai/v1/live/sessions", ""), first=START,
                                      headers={"api-key": USER_KEY})
    assert code is None and events[-1]["type"] == "session.started"
    assert events[-1]["session"]["model"] == "gpt-live-1"  # the provider's name, rewritten by the gateway
