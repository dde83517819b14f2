"""OpenAI Realtime clients served by Gemini Live: the official openai SDK through a Gemini-backed
model (the offline model speaking Gemini's protocol), both listeners: every event validates, the
records are priced at Gemini's rates, and a session outlives Google's connection limit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from .conftest import USER_KEY, RunningServer, make_config, start_server

CLIENT = Path(__file__).with_name("sdk_gemini_client.py")
GEMINI = {"name": "gemini-live", "provider": "local", "dialect": "gemini", "upstream_model": "gemini-live-2.5-flash"}
#: gemini-live-2.5-flash's list prices, USD per 1M tokens (genai-prices): text in/out, audio in/out
TEXT_IN, TEXT_OUT, AUDIO_IN, AUDIO_OUT = 0.5, 2.0, 3.0, 12.0


def gemini_config(tmp_path: Path, **local: Any) -> Any:
    return make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"}, GEMINI],
                       keys=[{"name": "user", "key": USER_KEY}], local=local)


async def run_client(srv: RunningServer, listener: str, mode: str) -> dict[str, Any]:
    with trio.fail_after(90):
        result: subprocess.CompletedProcess[bytes] = await trio.run_process(
            [sys.executable, str(CLIENT), str(srv.port(listener)), USER_KEY, "gemini-live", mode],
            capture_stdout=True, capture_stderr=True, check=False)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    out: dict[str, Any] = json.loads(result.stdout)
    assert out["invalid"] == [], out["invalid"]
    return out


async def records(srv: RunningServer, sessions: int = 1) -> list[dict[str, Any]]:
    with trio.fail_after(15):
        while sum(r["record"] == "session" for r in srv.records()) < sessions:
            await trio.sleep(0.05)
    return srv.records()


def by_hand(usage: dict[str, Any]) -> float:
    d_in, d_out = usage["input_token_details"], usage["output_token_details"]
    return (d_in["text_tokens"] * TEXT_IN + d_in["audio_tokens"] * AUDIO_IN
            + d_out["text_tokens"] * TEXT_OUT + d_out["audio_tokens"] * AUDIO_OUT) / 1e6


@pytest.mark.parametrize("mode", ["text", "beta"])
async def test_the_openai_sdk_completes_a_text_turn_on_gemini_and_it_is_billed_at_geminis_rates(
        nursery: trio.Nursery, tmp_path: Path, listener: str, mode: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path, speech="off"))
    out = await run_client(srv, listener, mode)
    assert out["text"] == "You said: Say hi"
    assert out["types"][0] == "session.created" and out["types"][-1] == "response.done"
    recs = await records(srv)
    (resp,) = [r for r in recs if r["record"] == "response"]
    (session,) = [r for r in recs if r["record"] == "session"]
    assert resp["provider"] == "local" and resp["model"] == "gemini-live" and resp["status"] == "completed"
    assert resp["usage"]["input_tokens"] > 0 and resp["cost_usd"] == pytest.approx(by_hand(resp["usage"]))
    assert resp["response"]["output_text"] == "You said: Say hi"
    assert session["status"] == "success" and session["reconnections"] == 0


async def test_a_spoken_question_is_transcribed_answered_in_audio_and_billed_as_audio(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path))
    out = await run_client(srv, listener, "voice")
    assert out["status"] == ["completed"] and out["audio_deltas"] > 0 and out["said"]
    (resp,) = [r for r in await records(srv) if r["record"] == "response"]
    usage = resp["usage"]
    assert usage["input_token_details"]["audio_tokens"] > 0 and usage["output_token_details"]["audio_tokens"] > 0
    assert resp["cost_usd"] == pytest.approx(by_hand(usage))


async def test_a_tool_round_trip_through_gemini(nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path))
    out = await run_client(srv, listener, "tool")
    assert out["calls"] and out["calls"][0][0] == "get_weather"
    assert out["status"] == ["completed", "completed"] and out["answer"]
    recs = [r for r in await records(srv) if r["record"] == "response"]
    calls = [c for r in recs for c in (r["response"] or {}).get("tool_calls") or []]
    assert calls and calls[0]["function"]["name"] == "get_weather"
    assert all(r["cost_usd"] == pytest.approx(by_hand(r["usage"])) for r in recs if r.get("usage"))


async def test_barge_in_cancels_the_answer_being_spoken_and_the_next_one_completes(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, gemini_config(tmp_path, stream_delay_ms=20.0))
    out = await run_client(srv, "realtime", "bargein")
    assert out["status"][0] == "completed" and out["status"][1:] == ["cancelled", "completed"]
    recs = [r for r in await records(srv) if r["record"] == "response"]
    assert [r["status"] for r in recs].count("cancelled") == 1


async def test_a_session_outlives_geminis_connection_limit_with_no_event_lost_or_doubled(
        nursery: trio.Nursery, tmp_path: Path) -> None:
    """The offline model cuts each connection after 3 s (goAway 1.5 s before): the gateway moves
    the session to a new connection with the newest resumption handle between turns; the client
    notices nothing, every turn is answered and billed once."""
    from .helpers import auth_headers, events_until, send_event, user_text, ws_connect

    srv = await start_server(nursery, gemini_config(tmp_path, speech="off", gemini_connection_limit_s=3.0,
                                                    gemini_go_away_lead_s=1.5))
    answers: list[str] = []
    response_ids: list[str] = []
    async with ws_connect(srv.ws_url("realtime", query="model=gemini-live"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await events_until(ws, "session.updated")
        (session,) = srv.gateway.sessions
        for turn in range(3):
            await send_event(ws, user_text(f"turn number {turn}"))
            await send_event(ws, {"type": "response.create"})
            events = await events_until(ws, "response.done", timeout_s=20)
            done = events[-1]["response"]
            assert done["status"] == "completed", events[-1]
            response_ids.append(done["id"])
            answers.append("".join(e["delta"] for e in events if e["type"] == "response.output_text.delta"))
            if turn < 2:  # wait for the move to a new connection (goAway comes 1.5 s into each one)
                with trio.fail_after(10):
                    while session._upstream.reconnections < turn + 1:  # type: ignore[union-attr]
                        await trio.sleep(0.05)
    assert answers == [f"You said: turn number {t}" for t in range(3)]
    assert len(set(response_ids)) == 3
    recs = await records(srv)
    responses = [r for r in recs if r["record"] == "response"]
    assert sorted(r["response_id"] for r in responses) == sorted(response_ids)  # each billed once
    (session_record,) = [r for r in recs if r["record"] == "session"]
    assert session_record["reconnections"] >= 2 and session_record["status"] == "success"
