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
    ], keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-realtime"]}])


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
