"""openai-agents' realtime runner (a real client library) through a Gemini-backed model (the
offline model speaking Gemini's protocol; the gateway translates), both listeners: a text turn, a
function tool round trip, a spoken turn with its transcripts, barge-in. The SDK accepts every
event it receives (it reports one it rejects as an error event: none), and the records are
priced at Gemini's rates."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio

from .conftest import USER_KEY, RunningServer, start_server
from .test_gemini_translated import GEMINI, by_hand, gemini_config, records
from .test_openai_agents import CLIENTS_PYTHON

CLIENT = Path(__file__).with_name("agents_gemini_client.py")


async def run_agent(srv: RunningServer, listener: str, mode: str) -> dict[str, Any]:
    url = srv.ws_url(listener, query="model=gemini-live")
    with trio.fail_after(90):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [str(CLIENTS_PYTHON), str(CLIENT), url, USER_KEY, mode],
            capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out: dict[str, Any] = json.loads(result.stdout.splitlines()[-1])
    assert out["errors"] == [], out["errors"]
    assert out["types"][0] == "session.created" and "error" not in out["types"]
    return out


def billed_at_geminis_rates(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each response record names the Gemini-backed model and is priced at Gemini's rates; the
    session costs what its responses do (Gemini bills input transcription inside them: each
    transcription record is priced, at nothing). The response records, for more checks."""
    responses = [r for r in recs if r["record"] == "response"]
    assert responses
    for r in responses:
        assert (r["provider"], r["model"], r["upstream_model"]) == ("local", "gemini-live", GEMINI["upstream_model"])
        assert r["usage"]["total_tokens"] > 0 and r["cost_usd"] > 0
        assert r["cost_usd"] == pytest.approx(by_hand(r["usage"]))
    for t in [r for r in recs if r["record"] == "transcription"]:
        assert t["transcription_model"] == GEMINI["upstream_model"] and t["cost_usd"] == 0
    (session,) = [r for r in recs if r["record"] == "session"]
    assert session["status"] == "success" and session["reconnections"] == 0
    assert session["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in responses))
    return responses


async def test_an_agents_sdk_text_turn_on_gemini_is_answered_and_billed_at_geminis_rates(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path, speech="off"))
    out = await run_agent(srv, listener, "text")
    assert out["status"] == ["completed"] and out["replies"] == ["You said: Say hi"]
    # the SDK's own conversation
    assert out["history"] == [{"role": "user", "content": [{"type": "input_text", "words": "Say hi"}]},
                              {"role": "assistant", "content": [{"type": "text", "words": "You said: Say hi"}]}]
    (resp,) = billed_at_geminis_rates(await records(srv))
    assert resp["status"] == "completed" and resp["response"]["output_text"] == "You said: Say hi"


async def test_an_agents_sdk_function_tool_runs_on_gemini_and_its_output_reaches_the_answer(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path, speech="off"))
    out = await run_agent(srv, listener, "tool")
    assert out["tools"] == [{"name": "get_weather", "output": "sunny in Paris"}]
    assert out["status"] == ["completed", "completed"]
    assert out["replies"] == ["", "get_weather returned sunny in Paris"]
    assert out["history"][1:] == [
        {"type": "function_call", "name": "get_weather", "output": "sunny in Paris"},
        {"role": "assistant", "content": [{"type": "text", "words": "get_weather returned sunny in Paris"}]}]
    call, reply = billed_at_geminis_rates(await records(srv))
    (tool_call,) = call["response"]["tool_calls"]
    assert tool_call["function"]["name"] == "get_weather"
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris"}
    assert reply["response"]["output_text"] == "get_weather returned sunny in Paris"


async def test_an_agents_sdk_spoken_question_on_gemini_is_transcribed_and_answered_in_audio(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path))
    out = await run_agent(srv, listener, "voice")
    assert out["status"] == ["completed"] and out["audio_bytes"] > 0
    (transcript,) = out["transcripts"]
    assert transcript and out["said"].startswith("You said: ")
    # the SDK's own conversation has both transcripts
    assert out["history"] == [{"role": "user", "content": [{"type": "input_audio", "words": transcript}]},
                              {"role": "assistant", "content": [{"type": "audio", "words": out["said"]}]}]
    recs = await records(srv)
    (resp,) = billed_at_geminis_rates(recs)
    usage = resp["usage"]
    assert usage["input_token_details"]["audio_tokens"] > 0 and usage["output_token_details"]["audio_tokens"] > 0
    (transcription,) = [r for r in recs if r["record"] == "transcription"]
    assert transcription["transcript"] == transcript


async def test_barge_in_on_gemini_stops_the_agents_sdk_playback_and_cancels_the_answer_talked_over(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path, stream_delay_ms=20.0))
    out = await run_agent(srv, listener, "bargein")
    assert out["status"] == ["cancelled", "completed"] and out["interrupted"] == 1
    assert out["replies"][1].startswith("You said: ")
    # the SDK's conversation: the question, the answer cut short, the interruption, its answer
    messages = [(m["role"], m["content"][0]["type"]) for m in out["history"]]
    assert messages == [("user", "input_audio"), ("assistant", "audio")] * 2
    assert all(m["content"][0]["words"] for m in out["history"])
    cancelled, completed = billed_at_geminis_rates(await records(srv))
    assert (cancelled["status"], completed["status"]) == ("cancelled", "completed")
    # what was said before the barge-in is billed with the cancelled response
    assert cancelled["usage"]["output_token_details"]["audio_tokens"] > 0
