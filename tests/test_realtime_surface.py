"""The rest of the Realtime surface end to end, through both listeners, with the official openai
SDK as the client and the offline model upstream: transcription sessions, MCP tools, images.
Each test checks what the client saw and what the spend log recorded and billed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from rtproxy.config import Config, ModelConfig
from rtproxy.spend.pricing import price_for, price_usage

from .conftest import USER_KEY, RunningServer, make_config

CLIENT = Path(__file__).with_name("sdk_surface_client.py")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return make_config(tmp_path, models=[
        {"name": "gpt-realtime", "provider": "local"},
        {"name": "gpt-4o-transcribe", "provider": "local", "api": "transcription"},
        {"name": "whisper-1", "provider": "local", "api": "transcription"},
    ], keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-realtime"], "transcription_models": ["*"]}])


async def run_client(port: int, mode: str) -> dict[str, Any]:
    with trio.fail_after(60):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [sys.executable, str(CLIENT), str(port), USER_KEY, mode], capture_stdout=True, capture_stderr=True,
            check=False)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


async def settled_records(server: RunningServer, kind: str) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while not any(r["record"] == "session" for r in server.records()):
            await trio.sleep(0.02)
    return [r for r in server.records() if r["record"] == kind]


async def test_a_transcription_session_is_admitted_transcribed_billed_and_recorded(
        server: RunningServer, listener: str) -> None:
    out = await run_client(server.port(listener), "transcription")
    assert out["created_type"] == "transcription"
    assert out["types"][-1] == "conversation.item.input_audio_transcription.completed"
    (record,) = await settled_records(server, "transcription")
    assert record["call_type"] == "transcription" and record["transcription_model"] == "gpt-4o-transcribe"
    assert out["transcript"] == "What is the weather in Paris?"  # heard by the offline model's recognizer
    assert record["transcript"] == out["transcript"] and record["usage"]["type"] == "tokens"
    expected, _ = price_usage(record["usage"], price_for(ModelConfig("gpt-4o-transcribe", "openai")))
    assert record["cost_usd"] == pytest.approx(expected) and expected > 0
    (session,) = [r for r in server.records() if r["record"] == "session"]
    assert session["model"] == "gpt-4o-transcribe" and session["transcriptions"] == 1
    assert session["cost_usd"] == pytest.approx(expected) and session["responses"] == 0


async def test_mcp_tool_lists_approvals_and_calls_reach_the_record_without_credentials(
        server: RunningServer, listener: str) -> None:
    out = await run_client(server.port(listener), "mcp")
    assert out == {"listed": ["session.created", "session.updated", "mcp_list_tools.in_progress", "conversation.item.added",
                              "mcp_list_tools.completed"],
                   "request": "mcp_approval_request", "call": "mcp_call", "output": "hello world"}
    first, second = await settled_records(server, "response")
    kinds = [[c["type"] for c in r["response"]["tool_calls"]] for r in (first, second)]
    assert kinds == [["mcp_list_tools", "mcp_approval_request"], ["mcp_approval_response", "mcp_call"]]
    call = second["response"]["tool_calls"][1]["mcp"]
    assert (call["server_label"], call["name"], call["output"]) == ("docs", "echo", "hello world")
    assert "s3cret" not in Path(server.gateway.spend.path).read_text()


async def test_image_input_is_priced_and_recorded_as_a_placeholder(server: RunningServer, listener: str) -> None:
    out = await run_client(server.port(listener), "image")
    assert out["image_tokens"] == 256
    (record,) = await settled_records(server, "response")
    assert record["cost_breakdown"]["input_image"] == pytest.approx(256 * 5e-6)
    image, _ = record["messages"][-2:]
    assert image["source"] == "image" and image["content"].startswith("[image: image/png, about ")
    assert "iVBORw0KGgo" not in Path(server.gateway.spend.path).read_text()


async def test_a_session_update_naming_a_transcription_model_the_key_may_not_use_never_reaches_the_provider(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    from .conftest import start_server
    from .helpers import events_until, send_event, ws_connect

    cfg = make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"},
                                        {"name": "whisper-1", "provider": "local", "api": "transcription"}],
                      keys=[{"name": "user", "key": USER_KEY, "transcription_models": ["whisper-1"]}])
    srv = await start_server(nursery, cfg)
    async with ws_connect(srv.ws_url(listener, query="intent=transcription"),
                          headers={"Authorization": f"Bearer {USER_KEY}"}) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "event_id": "e1", "session": {"type": "transcription",
                              "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}})
        (refusal,) = await events_until(ws, "error")
        assert refusal["error"]["code"] == "model_not_allowed" and refusal["error"]["event_id"] == "e1"
        await send_event(ws, {"type": "session.update", "session": {"type": "transcription",
                              "audio": {"input": {"transcription": {"model": "whisper-1"}}}}})
        (updated,) = await events_until(ws, "session.updated")
        assert updated["session"]["audio"]["input"]["transcription"]["model"] == "whisper-1"
    srv.stop.set()


async def test_transcription_costs_count_in_the_keys_budget_live_and_when_rebuilt_from_the_log(
        server: RunningServer) -> None:
    from rtproxy.spend.budgets import spend_totals

    await run_client(server.port("realtime"), "transcription")
    (record,) = await settled_records(server, "transcription")
    assert server.gateway.limits.spent["user"] == pytest.approx(record["cost_usd"])
    assert spend_totals(server.gateway.spend.path) == {"user": pytest.approx(record["cost_usd"])}


@pytest.mark.parametrize("endpoint", ["/v1/realtime/client_secrets", "/v1/realtime/transcription_sessions"])
async def test_a_browser_opens_a_transcription_session_with_an_ephemeral_token(
        server: RunningServer, listener: str, endpoint: str) -> None:
    import httpx

    from .audio_fixtures import append_events, utterance
    from .helpers import events_until, send_event, ws_connect

    ga = endpoint.endswith("client_secrets")
    transcription = {"model": "whisper-1"}
    body = ({"session": {"type": "transcription", "audio": {"input": {"transcription": transcription}}}} if ga
            else {"input_audio_transcription": transcription})
    async with httpx.AsyncClient() as http:
        minted = (await http.post(server.http + endpoint, json=body,
                                  headers={"Authorization": f"Bearer {USER_KEY}"})).json()
    token = minted["value"] if ga else minted["client_secret"]["value"]
    assert (minted["session"]["type"] if ga else minted["object"]) == ("transcription" if ga
                                                                       else "realtime.transcription_session")
    subprotocols = ["realtime", f"openai-insecure-api-key.{token}"] + ([] if ga else ["openai-beta.realtime-v1"])
    async with ws_connect(server.ws_url(listener, query="intent=transcription"), subprotocols=subprotocols) as ws:
        assert ws.subprotocol == "realtime"
        await events_until(ws, "session.created")
        updated = (await events_until(ws, "session.updated" if ga else "transcription_session.updated"))[-1]
        assert (updated["session"]["audio"]["input"]["transcription"] if ga
                else updated["session"]["input_audio_transcription"]) == transcription
        for append in append_events(utterance(speech_ms=900)):
            await send_event(ws, append)
        await events_until(ws, "conversation.item.input_audio_transcription.completed")
    (record,) = await settled_records(server, "transcription")
    (session,) = [r for r in server.records() if r["record"] == "session"]
    assert session["credential"] == "ephemeral_token" and record["key_name"] == "user"
    assert record["transcription_model"] == "whisper-1" and record["usage"]["type"] == "duration"


async def test_a_conversation_token_cannot_open_a_transcription_session_nor_the_reverse(
        server: RunningServer) -> None:
    import httpx

    from .helpers import events_until, ws_connect

    async with httpx.AsyncClient() as http:
        conversation = (await http.post(server.http + "/v1/realtime/client_secrets",
                                        json={"session": {"type": "realtime", "model": "gpt-realtime"}},
                                        headers={"Authorization": f"Bearer {USER_KEY}"})).json()["value"]
        refused = await http.post(server.http + "/v1/realtime/client_secrets", json={"session": {
            "type": "transcription", "audio": {"input": {"transcription": {"model": 7}}}}},
            headers={"Authorization": f"Bearer {USER_KEY}"})
    assert refused.status_code == 403
    # the token opens what it was minted for: intent=transcription in the URL changes nothing
    async with ws_connect(server.ws_url("realtime", query="intent=transcription"),
                          subprotocols=["realtime", f"openai-insecure-api-key.{conversation}"]) as ws:
        (created,) = await events_until(ws, "session.created")
        assert created["session"]["type"] == "realtime"


async def test_the_model_list_names_each_models_api(server: RunningServer) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        listed = (await http.get(server.http + "/v1/models", headers={"Authorization": f"Bearer {USER_KEY}"})).json()
    assert [(m["id"], m["api"]) for m in listed["data"]] == [
        ("gpt-realtime", "realtime"), ("gpt-4o-transcribe", "transcription"), ("whisper-1", "transcription")]


async def test_a_spoken_question_is_heard_calls_the_tool_and_lands_in_the_record_with_its_words(
        server: RunningServer, listener: str) -> None:
    """The offline model hears espeak-ng speech (pocketsphinx): the input transcript holds the
    words, "the weather" picks get_weather, "Paris" fills its city, and the gateway's records
    keep the words next to the call."""
    out = await run_client(server.port(listener), "spoken")
    assert out["transcript"] == "What is the weather in Paris?"
    assert out["call"] == {"type": "function_call", "name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert out["reply"] == "get_weather returned sunny" and out["reply_audio_bytes"] > 24000  # > 0.5 s of speech
    responses = await settled_records(server, "response")
    asked, answered = responses
    assert {"role": "user", "content": "What is the weather in Paris?"}.items() <= asked["messages"][-1].items()
    (call,) = asked["response"]["tool_calls"]
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert answered["response"]["output_transcript"] == "get_weather returned sunny"
